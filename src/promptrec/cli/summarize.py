"""Compare runs: ``promptrec-summarize outputs/train/multiruns/<sweep> [more run folders]``
(experiments/report.py says what it writes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptrec.cli.entry import run_main
from promptrec.errors import PromptRecError
from promptrec.experiments.report import __doc__ as DOC
from promptrec.experiments.report import report
from promptrec.experiments.results import update_page


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
    parser.add_argument("--wandb", action="store_true",
                        help="log a summary run into the sweep's W&B group and write its workspace (workspace.json)")  # fmt: skip
    parser.add_argument("--sync", action="store_true", help="upload offline W&B runs (wandb sync)")
    parser.add_argument("--results", type=Path, metavar="PAGE",
                        help="rewrite PAGE's generated tables (docs/results.md) from the run folders")  # fmt: skip
    parser.add_argument("--check", action="store_true",
                        help="with --results: change nothing, exit 1 if PAGE is out of date")  # fmt: skip
    args = parser.parse_args(argv)
    run_main(results if args.results else report, args)


def results(args: argparse.Namespace) -> None:
    if len(args.paths) != 1:
        raise PromptRecError("--results takes one folder of run folders, e.g. docs/results/runs.")
    current = update_page(args.results, args.paths[0], check=args.check)
    if args.check and not current:
        print(f"{args.results} differs from the tables its run folders give: run `make results`.")
        sys.exit(1)
    print(f"{args.results}: {'up to date' if current else 'tables regenerated'}")


if __name__ == "__main__":
    main()
