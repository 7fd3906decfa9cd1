"""Figures a run leaves in its folder (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def reliability_diagram(scores: np.ndarray, labels: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Observed like-rate against mean predicted probability per bin: calibrated = on the diagonal."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    mean_p = np.bincount(which, weights=scores, minlength=bins)[filled] / counts[filled]
    rate = np.bincount(which, weights=labels, minlength=bins)[filled] / counts[filled]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.plot(mean_p, rate, "o-", label="model")
    top.set_ylabel("observed like-rate")
    top.set_title(f"Reliability diagram ({len(scores)} examples)")
    top.legend(loc="upper left")
    bottom.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / bins, edgecolor="white")
    bottom.set_xlabel("predicted P(like)")
    bottom.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
