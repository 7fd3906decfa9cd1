"""Tasks: what is predicted. Each builds its examples, its loss and its evaluation.
A task object is the only place that knows what a label means, so the data module, the
LightningModule and the output writers stay the same for preference, rating and next-item.

The tasks import torch; their settings (``tasks/settings.py``) do not, so reading a config
(start-up checks, ``--help``, tab completion) loads the tasks only when a run builds one.
"""

from __future__ import annotations

import importlib

from promptrec.tasks.settings import TASK_SCHEMAS

LAZY = ("TASKS", "Task", "build_task", "task_class")  # from tasks/registry.py, on first use


def __getattr__(name: str):
    if name in LAZY:
        return getattr(importlib.import_module("promptrec.tasks.registry"), name)
    raise AttributeError(f"module 'promptrec.tasks' has no attribute {name!r}")


__all__ = ["TASK_SCHEMAS", *LAZY]
