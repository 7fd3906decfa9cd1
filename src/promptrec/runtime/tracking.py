"""Who a run is and how it ended: its W&B name, group and tags, its code version, and ``run.json``.

A sweep's jobs must be told apart at a glance (named from the choices the sweep varies), traced to
the code that made them (git commit), and a failed job must say so in its folder and in W&B while
the rest of the sweep goes on. ``run.json`` is that record; it also keeps the W&B run id, so a
resumed run continues the same W&B run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from promptrec.atomic import write_atomic

RUN_RECORD = "run.json"


def git_state(where: Path | None = None) -> dict:
    """The commit of the code that ran, and whether tracked files had uncommitted changes."""
    where = where or Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git/commit": commit or "unknown", "git/dirty": bool(dirty)}


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_choices() -> tuple[str, list[str]] | None:
    """In a Hydra multirun: the sweep's folder name and this job's values of the swept keys,
    e.g. ``("2026-11-29_10-00-00_000000", ["prompt=cloze", "tuning=lora", "seed=2"])``.

    Swept keys are those given several values on the command line (``prompt=a,b``) or searched
    by a sweeper (``hydra.sweeper.params``), read from the sweep's own ``multirun.yaml``.
    """
    if not in_multirun():
        return None
    hydra_cfg = HydraConfig.get()
    sweep_dir = Path(hydra_cfg.sweep.dir)
    parser = OverridesParser.create()
    swept: list[str] = []
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        saved = OmegaConf.load(multirun)
        for override in parser.parse_overrides(list(saved.hydra.overrides.task)):
            if override.is_sweep_override():
                swept.append(override.key_or_group)
        swept += [str(k) for k in (OmegaConf.select(saved, "hydra.sweeper.params") or {})]
    job = parser.parse_overrides(list(hydra_cfg.overrides.task))
    values = {o.key_or_group: f"{o.key_or_group}={o.value()}" for o in job}
    choices = [values[k] for k in dict.fromkeys(swept) if k in values]
    return sweep_dir.name, choices or [str(hydra_cfg.job.override_dirname)]


def wandb_identity(cfg: DictConfig, node: DictConfig) -> dict:
    """W&B name, group and tags. A sweep job is named by its choices and grouped by its sweep;
    a single run by task, prompt, tuning mode and seed. A name or group set in the logger's
    config ``node`` wins."""
    tags = {*cfg.tags, cfg.prompt.name, cfg.tuning.mode, cfg.task.name}
    sweep = sweep_choices()
    if sweep:
        group, choices = sweep
        name = ",".join(choices)
        tags |= {c[:64] for c in choices}  # W&B limits a tag to 64 characters
    else:
        group = cfg.task.name
        name = f"{cfg.task.name}-{cfg.prompt.name}-{cfg.tuning.mode}-seed{cfg.seed}"
    return {"name": node.get("name") or name, "group": node.get("group") or group,
            "tags": sorted(tags)}  # fmt: skip


class RunRecord:
    """``run.json`` in the run folder: status (running → finished | failed | interrupted), times,
    W&B id, git.

    Written atomically at each change, so a reader (summarize, resume) never sees half a file.
    """

    def __init__(self, run_dir: Path, write: bool = True, **facts):
        self.path, self.write = Path(run_dir) / RUN_RECORD, write  # write=False: other DDP ranks
        previous = load_run_record(run_dir) or {}
        self.data = {**previous, **facts, "status": "running", "started": time.time()}
        self.data.pop("error", None)
        self._write()

    def update(self, **facts) -> None:
        self.data.update(facts)
        self._write()

    def finished(self) -> None:
        self.update(status="finished", ended=time.time())

    def interrupted(self) -> None:
        self.update(status="interrupted", ended=time.time())

    def failed(self, exc: BaseException) -> None:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        self.update(status="failed", ended=time.time(), error=last)

    def _write(self) -> None:
        if self.write:
            write_atomic(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


def load_run_record(run_dir: Path) -> dict | None:
    path = Path(run_dir) / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def remove_startup_folder(run_dir: Path) -> None:
    """Remove the folder of a run that a user's mistake (config, data, model path) stopped before
    it built anything (Hydra's config, the run record, empty logs): a run that never ran should
    not sit among the runs as one that failed."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        empty_log = entry.suffix == ".log" and entry.is_file() and entry.stat().st_size == 0
        if entry.name not in (".hydra", RUN_RECORD) and not empty_log:
            return
    shutil.rmtree(run_dir, ignore_errors=True)
