"""Fuse finished runs of one split: ``promptrec-ensemble RUN_A RUN_B [...] [--out FOLDER]``
(experiments/ensemble.py says how)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptrec.cli.entry import run_main
from promptrec.experiments.ensemble import __doc__ as DOC
from promptrec.experiments.ensemble import default_out, ensemble
from promptrec.runtime.reporting import print_metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="promptrec-ensemble", description=DOC.split("\n\n")[0])
    parser.add_argument(
        "runs", nargs="+", type=Path, help="finished run folders of one split and task"
    )
    parser.add_argument(
        "--out", type=Path, help="the new run folder (default: outputs/ensemble/<time>)"
    )
    args = parser.parse_args(argv)
    out = args.out or default_out()
    metrics = run_main(ensemble, args.runs, out)
    fitted = metrics["ensemble"]
    print_metrics({k: v for k, v in metrics.items() if k.startswith("test/")}, "test metrics")
    print(
        "weights fitted on validation: "
        + ", ".join(
            f"{Path(m).name} {w:+.3f}" for m, w in zip(fitted["members"], fitted["weights"])
        )
    )
    print(f"run folder: {out}")


if __name__ == "__main__":
    main()
