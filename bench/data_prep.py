"""Data preparation time of a first run (empty cache) against a second run (cache hit).

    .venv/bin/python bench/data_prep.py                        # default job
    .venv/bin/python bench/data_prep.py task=next_item         # any train override

Each run is a fresh process that builds the default job's data module (read the source files,
split, build examples, render and tokenise every prompt) into a new, empty cache folder, then a
second fresh process builds it again from that cache. Only ``build_datamodule`` is timed: the
interpreter start and imports are the same in both. Results go to ``outputs/bench/data_prep.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_once(cache_dir: str, overrides: list[str]) -> float:
    from train_speed import compose_train

    from promptrec.runtime.build import build_datamodule

    cfg = compose_train(["logger=csv", f"paths.cache_dir={cache_dir}", *overrides])
    start = time.perf_counter()
    datamodule = build_datamodule(cfg)
    seconds = time.perf_counter() - start
    assert len(datamodule.prepared.datasets["train"]) > 0
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", metavar="CACHE_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/data_prep.json"))
    parser.add_argument("overrides", nargs="*", help="promptrec-train overrides")
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"seconds": build_once(args.child, args.overrides)}))
        return
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for which in ("first (empty cache)", "second (cache hit)"):
            done = subprocess.run([sys.executable, __file__, "--child", cache, *args.overrides],
                                  check=True, capture_output=True, text=True)  # fmt: skip
            seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            runs.append(seconds)
            print(f"{which}: {seconds:.2f} s", flush=True)
    result = {"first_s": runs[0], "second_s": runs[1], "speedup": runs[0] / runs[1],
              "overrides": args.overrides}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
