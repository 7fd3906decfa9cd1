"""Re-run a run from its saved config and check every number: ``promptrec-reproduce RUN_DIR``.

The new run uses the saved ``.hydra/config.yaml`` as it is (same data settings, so the same
content-hashed split manifest; same prompt; same seed) and writes into a new folder
(``--out``, default ``<log_dir>/reproduce/<run name>_<time>``). Each metric of the original
``metrics.json`` is compared: bit-for-bit on CPU (tolerance 0), within ``--atol`` (default 1e-4)
when the original ran on a GPU, whose kernels are not deterministic. Exit code 1 on any mismatch.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from promptrec.errors import ConfigError
from promptrec.runtime.resume import saved_run_config
from promptrec.runtime.tracking import load_run_record
from promptrec.runtime.training import train

# What must match: the scores, and what pins the inputs (split, prompt, parameter counts).
COMPARED = ("test/", "val/", "train/loss", "params/", "data/", "prompt/")
GPU_TOLERANCE = 1e-4


def saved_config(run_dir: Path):
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file() or not (run_dir / "metrics.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a finished run folder: it needs .hydra/config.yaml and metrics.json "
            "(promptrec-train writes both; a run that failed or is still running has no metrics)."
        )
    return saved_run_config(run_dir)


def compare(original: dict, reproduced: dict, atol: float) -> pd.DataFrame:
    rows = []
    for key in sorted(k for k in original if k.startswith(COMPARED)):
        a, b = original[key], reproduced.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            diff = abs(float(a) - float(b))
            same = diff <= atol or (math.isnan(a) and math.isnan(b))
        else:
            diff, same = float("nan"), a == b
        rows.append(
            {"metric": key, "original": a, "reproduced": b, "abs_diff": diff, "match": same}
        )
    return pd.DataFrame(rows)


def reproduce(run_dir: Path, out: Path | None = None, atol: float | None = None) -> pd.DataFrame:
    """Train again from ``run_dir``'s config; return the metric-by-metric comparison."""
    run_dir = Path(run_dir).resolve()
    record = load_run_record(run_dir) or {}
    on_gpu = str(record.get("device", "cpu")).startswith("cuda")
    atol = (GPU_TOLERANCE if on_gpu else 0.0) if atol is None else atol
    cfg = saved_config(run_dir)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(out or Path(cfg.paths.log_dir) / "reproduce" / f"{run_dir.name}_{stamp}")
    cfg.paths.output_dir = str(out)
    original = json.loads((run_dir / "metrics.json").read_text())
    reproduced, _ = train(cfg)
    table = compare(original, reproduced, atol)
    table.to_csv(out / "reproduction.csv", index=False)
    if record.get("git/commit") and record.get("git/commit") != reproduced.get("git/commit"):
        print(f"note: the original ran at commit {record['git/commit'][:12]}, this run at "
              f"{str(reproduced.get('git/commit'))[:12]}")  # fmt: skip
    return table.assign(tolerance=atol, out=str(out))


def print_comparison(table: pd.DataFrame) -> None:
    view = Table(title=f"reproduction (tolerance {table['tolerance'].iloc[0]:g})")
    for column in ("metric", "original", "reproduced", "abs_diff", "match"):
        view.add_column(column, justify="left" if column == "metric" else "right")
    for row in table.itertuples():
        view.add_row(row.metric, str(row.original), str(row.reproduced), f"{row.abs_diff:.3g}",
                     "[green]yes[/]" if row.match else "[bold red]NO[/]")  # fmt: skip
    Console().print(view)
    mismatched = int((~table["match"]).sum())
    verdict = (
        "reproduced: every metric matches" if not mismatched else f"{mismatched} metrics differ"
    )
    Console().print(f"{verdict}; new run in {table['out'].iloc[0]}", highlight=False)
