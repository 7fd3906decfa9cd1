"""Compare runs: ``promptrec-summarize outputs/train/multiruns/<sweep> [more run folders]``
(experiments/report.py says what it writes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptrec.cli.entry import run_main
from promptrec.experiments.report import __doc__ as DOC
from promptrec.experiments.report import report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="promptrec-summarize", description=DOC.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="multirun folders or run folders")
    parser.add_argument("--out", type=Path, help="where to write (default: the first path)")
    parser.add_argument(
        "--metric", help="the metric of the figures (default: the test counterpart of task.monitor)"
    )
    parser.add_argument(
        "--extra", nargs="*", default=[], help="more metrics for the table, e.g. test/hr@20"
    )
    parser.add_argument("--sync", action="store_true", help="upload offline W&B runs (wandb sync)")
    args = parser.parse_args(argv)
    run_main(report, args)


if __name__ == "__main__":
    main()
