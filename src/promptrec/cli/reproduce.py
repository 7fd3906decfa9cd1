"""Re-run a run from its saved config and check every number: ``promptrec-reproduce RUN_DIR``
(experiments/reproduce.py says what is compared and how closely)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promptrec.cli.entry import run_main
from promptrec.experiments.reproduce import __doc__ as DOC
from promptrec.experiments.reproduce import print_comparison, reproduce


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="promptrec-reproduce", description=DOC.split("\n")[0])
    parser.add_argument(
        "run_dir", type=Path, help="a finished run folder (outputs/train/runs/<run>)"
    )
    parser.add_argument("--out", type=Path, help="the new run's folder")
    parser.add_argument(
        "--atol", type=float, help="allowed absolute difference (default: 0 on CPU, 1e-4 on GPU)"
    )
    args = parser.parse_args(argv)
    table = run_main(reproduce, args.run_dir, args.out, args.atol)
    print_comparison(table)
    sys.exit(0 if table["match"].all() else 1)


if __name__ == "__main__":
    main()
