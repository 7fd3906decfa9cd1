"""Read run folders into one table, with or without W&B.

A run folder holds everything needed to compare it: ``.hydra/config.yaml`` (what ran),
``metrics.json`` (what it scored and cost), ``run.json`` (finished or failed) and
``csv/metrics.csv`` (its training curves). W&B is a mirror of these, never the source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from promptrec.errors import ConfigError
from promptrec.runtime.tracking import load_run_record

# Config settings that never change *what* was run, only where files went and how it was logged.
IGNORED_GROUPS = ("paths.", "logger.", "callbacks.", "hydra.")
IGNORED_KEYS = {"trainer.default_root_dir", "trainer.enable_progress_bar", "ckpt_path", "tags",
                "task_name", "train", "test", "data.data_dir", "data.cache_dir", "data.num_workers"}  # fmt: skip
# Settings added to the schema after runs were published, with the value those older runs ran
# with, so that a run from before and one from after pool when nothing else differs. Each applies
# to a run whose config has the setting's section (a run without collaborative tokens has no
# prompt.collaborative.drop).
ADDED_LATER = {
    "trainer.max_steps": -1,  # no step limit: Lightning's default before it was typed
    "prompt.collaborative.drop": 0.0,  # no modality dropout: every example saw the ID signal
    "model.init_from": None,  # started from the pretrained backbone
    "model.ids": True,  # SASRec's items had id vectors (model.ids=false: text alone)
}


def find_runs(paths: list[Path | str]) -> list[Path]:
    """Every run folder (one with ``.hydra/config.yaml``) at or below the given paths."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"{path} does not exist: pass a run folder or a multirun folder.")
        configs = [path / ".hydra" / "config.yaml"] if (path / ".hydra").is_dir() else []
        configs += sorted(path.glob("**/.hydra/config.yaml"))
        found += [c.parent.parent for c in configs]
    runs = sorted(dict.fromkeys(r.resolve() for r in found))
    if not runs:
        raise ConfigError(
            f"no run folders under {', '.join(map(str, paths))}: a run folder has .hydra/config.yaml "
            "(promptrec-train writes one per run; a multirun writes one per job)."
        )
    return runs


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node) if isinstance(node, list) else node}


def run_status(folder: Path, metrics: dict) -> str:
    """finished | failed | running (or killed): run.json says. Without one, a folder with test
    metrics is a finished run from before run.json existed, and one without is a job that failed
    before it started (e.g. a config value out of range)."""
    record = load_run_record(folder)
    if record is not None:
        return record.get("status", "unknown")
    return "finished" if any(k.startswith("test/") for k in metrics) else "failed"


def labels(folder: Path) -> dict:
    """How the user asked for this run: the config-group options (``choice/prompt``: cloze) and
    the plain key overrides (``override/tuning.lr``: 0.001), from Hydra's saved files. These
    name a configuration readably; the full config still decides which runs pool together."""
    hydra_file, overrides_file = (
        folder / ".hydra" / "hydra.yaml",
        folder / ".hydra" / "overrides.yaml",
    )
    choices = (
        OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices")
        if hydra_file.is_file()
        else None
    )
    out = {f"choice/{g}": str(o) for g, o in (choices or {}).items() if not g.startswith("hydra")}
    for override in OmegaConf.load(overrides_file) if overrides_file.is_file() else []:
        key, _, value = str(override).lstrip("+~").partition("=")
        if (
            key not in (choices or {})
            and not key.startswith(IGNORED_GROUPS)
            and key not in IGNORED_KEYS
        ):
            out[f"override/{key}"] = value
    return out


def has_section(config: dict, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict)


def load_run(folder: Path) -> dict:
    config = OmegaConf.to_container(
        OmegaConf.load(folder / ".hydra" / "config.yaml"), resolve=False
    )
    settings = {
        f"cfg/{k}": v
        for k, v in flatten(config).items()
        if not k.startswith(IGNORED_GROUPS) and k not in IGNORED_KEYS
    }
    for key, value in ADDED_LATER.items():
        if has_section(config, key.rsplit(".", 1)[0]):
            settings.setdefault(f"cfg/{key}", value)
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    for group in [k for k, v in metrics.items() if isinstance(v, dict)]:  # counts, chosen_on_val
        metrics.update({f"{group}/{k}": v for k, v in metrics.pop(group).items()})
    record = load_run_record(folder) or {}
    return {"run": str(folder), "status": run_status(folder, metrics), "error": record.get("error"),
            "wandb_id": record.get("wandb_id"), **labels(folder), **settings, **metrics}  # fmt: skip


def load_runs(paths: list[Path | str]) -> pd.DataFrame:
    """One row per run folder: status, every config setting (``cfg/…``) and every metric."""
    return pd.DataFrame([load_run(folder) for folder in find_runs(paths)])


def offline_wandb_runs(runs: pd.DataFrame) -> list[Path]:
    """W&B runs that were logged offline and can be uploaded with ``wandb sync``."""
    return sorted(p for run in runs["run"] for p in Path(run).glob("wandb/offline-run-*"))
