"""RecBole 1.2.1 itself, run on PromptRec's own leave-one-out split: the reference figures that
docs/results.md sets beside this project's baselines (``docs/results/recbole_reference.json``).

RecBole is not a dependency of PromptRec. Install it beside the project, never into .venv:

    .venv/bin/pip install --target /tmp/recbole --no-deps recbole==1.2.1 colorlog==4.7.2 \
        colorama texttable thop tabulate tensorboard absl-py plotly
    PYTHONPATH=/tmp/recbole .venv/bin/python bench/recbole_reference.py \
        --out docs/results/recbole_reference.json

Why re-time the data: PromptRec's split keeps tied timestamps in file order, while RecBole sorts
them with an unstable sort, so on RecBole's own split some users get another test item (the JSON
counts them). ``--split promptrec`` replaces each timestamp by the interaction's position in
PromptRec's per-user timeline, so RecBole's leave-one-out ("LS", valid_and_test, full ranking,
training and validation items masked at test) picks exactly PromptRec's validation and test items;
``--split recbole`` keeps the original timestamps. Everything else is RecBole at its defaults.
Each run is a fresh process (RecBole seeds globally).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "ml-100k-atomic"
METRICS = {"hit@10": "test/hr@10", "ndcg@10": "test/ndcg@10", "mrr@10": "test/mrr@10"}
MODEL_SETTINGS = {"SASRec": {"train_neg_sample_args": None}}  # CE over the catalogue


def write_dataset(folder: Path, split: str) -> dict:
    """ml-100k atomic files under ``folder/ml100k`` (another name: RecBole replaces the data path
    of a dataset called ml-100k by its bundled copy). Returns PromptRec's test item per user."""
    sys.path.insert(0, str(ROOT / "src"))
    from promptrec.data.splits import leave_one_out

    raw = pd.read_csv(DATA / "ml-100k.inter", sep="\t")
    columns = [c.split(":")[0] for c in raw.columns]
    frame = raw.set_axis(columns, axis=1).astype({"user_id": str, "item_id": str})
    ours = leave_one_out(frame)
    if split == "promptrec":  # leave_one_out keeps the file's rows; its order is the timeline
        raw = ours[["user_id", "item_id", "rating", "position"]]
        raw.columns = list(pd.read_csv(DATA / "ml-100k.inter", sep="\t", nrows=0).columns)
    (folder / "ml100k").mkdir(parents=True, exist_ok=True)
    raw.to_csv(folder / "ml100k" / "ml100k.inter", sep="\t", index=False)
    test = ours[ours["split"] == "test"]
    return dict(zip(test["user_id"], test["item_id"]))


def run_one(model_name: str, split: str, seed: int) -> dict:
    """One RecBole training and test; the metrics under PromptRec's names."""
    # RecBole 1.2.1 predates numpy 2 (it aliases these names at start-up) and torch's
    # weights_only default (its own checkpoint holds its config)
    np.float_, np.complex_, np.unicode_ = np.float64, np.complex128, np.str_
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # RecBole writes log_tensorboard/ into the working directory
        our_test = write_dataset(Path(tmp), split)
        settings = {
            "data_path": tmp, "seed": seed, "use_gpu": False, "show_progress": False,
            "checkpoint_dir": f"{tmp}/saved", "metrics": ["Hit", "NDCG", "MRR"], "topk": [10],
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                          "mode": "full"},
            **MODEL_SETTINGS.get(model_name, {}),
        }  # fmt: skip
        dataset_yaml = (
            Path(sys.modules["recbole"].__file__).parent / "properties/dataset/ml-100k.yaml"
        )
        config = Config(model=model_name, dataset="ml100k", config_file_list=[str(dataset_yaml)],
                        config_dict=settings)  # fmt: skip
        init_seed(seed, config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        init_seed(seed, config["reproducibility"])
        model = get_model(model_name)(config, train.dataset)
        trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
        start = time.perf_counter()
        best_valid, _ = trainer.fit(train, valid, verbose=False, saved=True)
        result = trainer.evaluate(test, load_best_model=True)
        seconds = time.perf_counter() - start
        users = dataset.id2token(dataset.uid_field, test.dataset.inter_feat[dataset.uid_field])
        items = dataset.id2token(dataset.iid_field, test.dataset.inter_feat[dataset.iid_field])
        differing = sum(our_test.get(u) != i for u, i in zip(users, items))
    return {
        "model": model_name, "split": split, "seed": seed,
        **{ours: round(float(result[theirs]), 4) for theirs, ours in METRICS.items()},
        "valid/mrr@10": round(float(best_valid), 4), "test_users": len(users),
        "test_items_differing_from_promptrec": int(differing), "seconds": round(seconds, 1),
        "torch": torch.__version__,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["BPR", "ItemKNN"])
    parser.add_argument("--splits", nargs="+", default=["promptrec", "recbole"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 42, 1, 2])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/bench/recbole_reference.json"),
        help="JSON file; runs of other models, splits or seeds in it are kept",
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("MODEL", "SPLIT", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]))))
        return
    runs = []
    for model in args.models:
        seeds = args.seeds if model != "ItemKNN" else args.seeds[:1]  # nothing random in it
        for split in args.splits:
            for seed in seeds:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", model, split, str(seed)],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"RecBole {model} {split} seed {seed} failed:\n{done.stderr[-3000:]}")
                runs.append(json.loads(line[len("RESULT ") :]))
                print(json.dumps(runs[-1]), flush=True)

    def key(run: dict) -> tuple:
        return run["model"], run["split"], run["seed"]

    if args.out.is_file():  # keep earlier runs of other models, splits and seeds
        new = {key(r) for r in runs}
        runs = [r for r in json.loads(args.out.read_text())["runs"] if key(r) not in new] + runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"recbole": "1.2.1", "runs": runs}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
