"""Evaluation-time perturbations of a prompt's history, seeded per example so reruns match.

A model that read its prompt as a recommender should care which items a user rated, less in
which order the prompt lists them; these edits measure both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from promptrec.errors import ConfigError


def shuffle_history(items: list, ratings: list, rng: np.random.Generator, fraction: float):
    """The same items and ratings in a random order (``fraction`` unused)."""
    order = rng.permutation(len(items))
    return [items[i] for i in order], [ratings[i] for i in order]


def drop_history(items: list, ratings: list, rng: np.random.Generator, fraction: float):
    """Leave out round(fraction × n) randomly chosen items; the rest keep their order."""
    drop = set(rng.choice(len(items), round(fraction * len(items)), replace=False).tolist())
    keep = [i for i in range(len(items)) if i not in drop]
    return [items[i] for i in keep], [ratings[i] for i in keep]


PERTURBATIONS: dict[str, Callable] = {
    "shuffle_history": shuffle_history,
    "drop_history": drop_history,
}


def get_perturbation(name: str, fraction: float) -> Callable:
    if name not in PERTURBATIONS:
        raise ConfigError(
            f"perturbations name={name!r} is unknown; choose one of {sorted(PERTURBATIONS)}."
        )
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"perturbations fraction={fraction} must be in [0, 1].")
    return lambda items, ratings, rng: PERTURBATIONS[name](items, ratings, rng, fraction)
