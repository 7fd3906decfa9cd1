"""Full-catalogue next-item evaluation time: every ML-100K test user ranked over all 1,682 items.

    .venv/bin/python bench/catalogue_eval.py                    # CPU, default model
    .venv/bin/python bench/catalogue_eval.py trainer=gpu        # any train override

Times ``trainer.test`` of the default model (MiniLM-L6, untrained head: the cost does not depend
on the weights) for ``task=next_item`` with the catalog head (one forward pass per user scores
every item), the same with plain (not length-sorted) evaluation batches, and the two-tower head
(which also encodes all 1,682 item texts). The time includes the metrics (HR, NDCG, MRR, MAP,
P, R, coverage … @5/10/20, per-group gaps) and writing the top-K tables. Results go to
``outputs/bench/catalogue_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from train_speed import compose_train

from promptrec.runtime.build import build_run

VARIANTS = {
    "catalog head": [],
    "catalog head, unsorted batches": ["data.length_grouped=false"],
    "two-tower head": ["task.head=two_tower"],
}


def markdown(files: list[Path]) -> str:
    """Seconds per head (rows) and results file (columns): ``--markdown A.json B.json``."""
    runs = [json.loads(f.read_text()) for f in files]
    lines = ["| head | " + " | ".join(f.stem for f in files) + " |", "|---|" + "---|" * len(files)]
    for head in runs[0]:
        cells = [
            f"{r[head]['seconds']:.1f} s (NDCG@10 {r[head]['test/ndcg@10']:.4f})" for r in runs
        ]
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/catalogue_eval.json"))
    parser.add_argument("--markdown", type=Path, nargs="+", help="print a table of results files")
    parser.add_argument("overrides", nargs="*", help="promptrec-train overrides")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(args.markdown), end="")
        return
    results = {}
    for name, extra in VARIANTS.items():
        cfg = compose_train(["task=next_item", "logger=csv", "trainer.enable_progress_bar=false",
                             f"paths.output_dir={args.out.parent / 'catalogue_eval_run'}",
                             *extra, *args.overrides])  # fmt: skip
        run = build_run(cfg)
        start = time.perf_counter()
        metrics = run.trainer.test(run.module, datamodule=run.datamodule, verbose=False)[0]
        seconds = time.perf_counter() - start
        users = run.module.test_predictions["user_id"].nunique()
        results[name] = {"seconds": seconds, "users": int(users),
                         "items": int(len(run.datamodule.prepared.catalog.item_ids)),
                         "test/ndcg@10": metrics.get("test/ndcg@10")}  # fmt: skip
        print(name, json.dumps(results[name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
