"""Each task's settings (``conf/task/<name>.yaml`` is checked against them), apart from the tasks
themselves: reading a config needs these dataclasses, not torch (start-up, ``--help``, completion)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class TaskConfig:
    """Settings every task has; each task's own schema (``Task.Config``) adds its fields."""

    name: str = MISSING  # preference | rating | next_item
    monitor: str = MISSING  # checkpointing, early stopping and the sweeper's objective
    monitor_mode: str = "${metric_direction:${task.monitor}}"  # the metric's own direction
    slice_min_examples: int = 20  # smaller test slices report their size but no metrics


@dataclass
class PreferenceConfig(TaskConfig):
    like_threshold: float = 4.0  # label = rating ≥ this


@dataclass
class RatingConfig(TaskConfig):
    head: str = "regression"  # regression | classes
    rating_levels: int = 5  # head=classes: one class per star


@dataclass
class NextItemConfig(TaskConfig):
    head: str = "catalog"  # catalog | two_tower (strategies/two_tower.py)
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])  # top-K cut-offs
    targets_per_user: int | None = None  # latest training targets per user; null = all
    eval_negatives: int | None = None  # rank among N sampled negatives (null = full catalogue)
    negative_sampler: str = "uniform"  # uniform | popularity
    negative_seed: int = 0
    temperature: float = 0.05  # two_tower: cosine / temperature = score
    sampled_negatives: int = 0  # two_tower: uniform items added to in-batch candidates
    item_max_tokens: int = 32  # two_tower: item texts are cut to this many tokens
    mask_history: bool = True  # full ranking without the user's earlier items; false = all items
    item_init: str = "none"  # catalog head: none (random rows) | text (rows from each item's text)


TASK_SCHEMAS = {"preference": PreferenceConfig, "rating": RatingConfig,
                "next_item": NextItemConfig}  # fmt: skip
