"""Is a rating model's gap to a late fusion only scale? Fit stars ≈ a·predicted + b on each run's
validation predictions (as promptrec-ensemble fits its weights), apply it to test, and compare.

    python bench/rating_calibration.py docs/results/runs/study_cfxd_score_rating_s*

Reads each run folder's val_predictions.csv and predictions.csv; nothing is re-trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def rmse(stars: pd.Series, predicted) -> float:
    return float(np.sqrt(np.mean((stars - predicted) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="rating run folders")
    args = parser.parse_args()
    print("| run | a | b | test RMSE | calibrated on validation |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        files = [run / "val_predictions.csv", run / "predictions.csv"]
        if not all(f.is_file() for f in files):
            sys.exit(f"{run} lacks val_predictions.csv or predictions.csv (a rating run's tables)")
        val, test = (pd.read_csv(f) for f in files)
        a, b = np.polyfit(val["predicted"], val["rating"], 1)
        calibrated = np.clip(a * test["predicted"] + b, 1, 5)
        print(f"| {run.name} | {a:.3f} | {b:+.3f} | {rmse(test['rating'], test['predicted']):.4f} | "
              f"{rmse(test['rating'], calibrated):.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
