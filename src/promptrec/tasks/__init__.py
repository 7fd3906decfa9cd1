"""Tasks: what is predicted. Each builds its examples, its loss and its evaluation.

A task object is the only place that knows what a label means, so the data module, the
LightningModule and the output writers stay the same for preference, rating and next-item.
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from promptrec.errors import ConfigError
from promptrec.tasks.base import Task
from promptrec.tasks.next_item import NextItemTask
from promptrec.tasks.preference import PreferenceTask
from promptrec.tasks.rating import RatingTask

TASKS: dict[str, type[Task]] = {
    "preference": PreferenceTask,
    "rating": RatingTask,
    "next_item": NextItemTask,
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ConfigError(
            f"task.name={name!r} is unknown; choose one of {sorted(TASKS)} (task=<name>)."
        )
    return TASKS[name]


def build_task(cfg) -> Task:
    return task_class(cfg.name)(cfg)


def task_config(node) -> DictConfig:
    """A saved ``task`` node on its task's own schema. Run folders written before each task had
    its own schema carry every task's fields; the ones this task does not have are dropped."""
    schema = task_class(node.name).Config
    known = {f.name for f in dataclasses.fields(schema)}
    saved = OmegaConf.to_container(node, resolve=False)
    return OmegaConf.merge(
        OmegaConf.structured(schema), {k: v for k, v in saved.items() if k in known}
    )


__all__ = ["TASKS", "Task", "build_task", "task_class", "task_config"]
