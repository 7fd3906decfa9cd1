"""Continue a stopped run in its own folder and W&B run: ``promptrec-train ckpt_path=<run folder>``.

``ckpt_path=last`` picks the newest unfinished run of this task. The run's saved config is used
as it was (today's ``conf/`` must not change a half-trained model); training restarts from the
newest end-of-epoch checkpoint, whose random-generator states make the rest of the run identical
to one that never stopped. A plain checkpoint file as ``ckpt_path`` keeps Lightning's meaning:
start a new run from those weights and optimizer state.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from promptrec.errors import ConfigError
from promptrec.runtime.config import OPTION_KEYS, TrainConfig, on_own_schema
from promptrec.runtime.tracking import load_run_record

LAST = "last.ckpt"


def _newest_unfinished(cfg: DictConfig) -> Path:
    runs = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    candidates = [
        ckpt.parent.parent
        for ckpt in runs.glob(f"*/checkpoints/{LAST}")
        if (load_run_record(ckpt.parent.parent) or {}).get("status") != "finished"
    ]
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last found no unfinished run with checkpoints/{LAST} under {runs}. "
            "Pass the run folder itself (ckpt_path=outputs/train/runs/<run>, also for a multirun "
            "job's folder), or drop ckpt_path to start a new run."
        )
    return max(candidates, key=lambda run: (run / "checkpoints" / LAST).stat().st_mtime)


def run_to_resume(cfg: DictConfig) -> Path | None:
    """The run folder ``cfg.ckpt_path`` asks to continue, or None for a fresh run."""
    if cfg.ckpt_path is None:
        return None
    if str(cfg.ckpt_path) == "last":
        return _newest_unfinished(cfg)
    path = Path(cfg.ckpt_path)
    if not path.exists():
        raise ConfigError(
            f"ckpt_path={str(path)!r} does not exist. Give a run folder to resume it "
            "(ckpt_path=outputs/train/runs/<run>), ckpt_path=last for the newest unfinished run, "
            "or a .ckpt file to start from its weights."
        )
    if not path.is_dir():
        return None
    if (
        not (path / ".hydra" / "config.yaml").is_file()
        or not (path / "checkpoints" / LAST).is_file()
    ):
        raise ConfigError(
            f"ckpt_path={str(path)!r} is a folder but not a resumable run: it needs "
            f".hydra/config.yaml and checkpoints/{LAST} (written at the end of every epoch by "
            "callbacks.latest_checkpoint). A run killed before its first epoch ended has nothing "
            "to resume from; start it again."
        )
    if (load_run_record(path) or {}).get("status") == "finished":
        raise ConfigError(
            f"ckpt_path={str(path)!r} is a finished run: there is nothing to resume. "
            f"`promptrec-reproduce {path}` trains it again from its config and compares every "
            f"metric; `promptrec-eval ckpt_path={path}` tests its best checkpoint again."
        )
    return path.resolve()


# Classes that moved when the package was layered: run folders saved before name them.
MOVED = {"promptrec.costs.": "promptrec.runtime.costs.",
         "promptrec.callbacks.": "promptrec.runtime.callbacks.",
         "promptrec.csv_log.": "promptrec.runtime.csv_log."}  # fmt: skip


def _moved_targets(node):
    if isinstance(node, dict):
        return {k: _moved_targets(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_moved_targets(v) for v in node]
    if isinstance(node, str):
        return next(
            (new + node[len(old) :] for old, new in MOVED.items() if node.startswith(old)), node
        )
    return node


def saved_run_config(run_dir: Path) -> DictConfig:
    """A run's own ``.hydra/config.yaml`` on the training schema (keys added since get their
    defaults), as resume and promptrec-reproduce re-run it."""
    saved = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    saved = OmegaConf.create(_moved_targets(OmegaConf.to_container(saved, resolve=False)))
    for group in OPTION_KEYS:  # each on the schema of the option it names
        saved[group] = on_own_schema(group, saved[group])
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)


def resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The run's own saved config, pointed back at its folder and its last checkpoint."""
    resumed = saved_run_config(run_dir)
    resumed.paths.output_dir = str(run_dir)
    resumed.ckpt_path = str(run_dir / "checkpoints" / LAST)
    resumed.train, resumed.test = cfg.train, cfg.test
    return resumed
