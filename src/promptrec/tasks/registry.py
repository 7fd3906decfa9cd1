"""Tasks: what is predicted. Each builds its examples, its loss and its evaluation.

A task object is the only place that knows what a label means, so the data module, the
LightningModule and the output writers stay the same for preference, rating and next-item.
"""

from __future__ import annotations

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


__all__ = ["TASKS", "Task", "build_task", "task_class"]
