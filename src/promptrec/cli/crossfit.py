"""Cross-fit an ID baseline's run: ``promptrec-crossfit RUN [--folds 5]``
(experiments/crossfit.py says why)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptrec.cli.entry import run_main
from promptrec.experiments.crossfit import __doc__ as DOC
from promptrec.experiments.crossfit import crossfit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="promptrec-crossfit", description=DOC.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished ID baseline run folder (e.g. MF)")
    parser.add_argument(
        "--folds", type=int, default=5, help="K: runs, each without 1/K of the training pairs"
    )
    args = parser.parse_args(argv)
    run_main(crossfit, args.run, args.folds)
    print(f"then: promptrec-train prompt=collaborative prompt.collaborative.run={args.run} "
          "prompt.collaborative.crossfit=true [prompt.collaborative.score=true]")  # fmt: skip


if __name__ == "__main__":
    main()
