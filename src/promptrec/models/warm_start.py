"""``model.init_from``: start a language model from a finished run's trained weights.

Why: a model that adds collaborative tokens to a text prompt learns its text part again from
scratch, on the same examples it must also learn the ID signal from, and its text part ends up
weaker than the text run it could have started from (bench/collaborative_diagnostics.py measures
it). Warm-started from that run, it begins with the text model's full signal and spends its
budget on what the ID signal adds.

Every trained weight of the source run is copied into the weight of the same name and shape. An
embedding table this run widened (the collaborative marker tokens) gets the rows both have; the
new parts (marker rows, projector) start as they would without a source. The source must be a run
of the same task, head, backbone, tuning mode and frozen cut (``SAME``), on the same split (a run
of another split has trained on this run's test interactions).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from promptrec.errors import ConfigError

SAME = ("task.name", "task.head", "model.name_or_path", "tuning.mode", "tuning.freeze_layers")
CHECKPOINT = Path("checkpoints") / "best.ckpt"  # in the source run's folder


def check_source(run: str | Path, cfg) -> None:
    """Start-up check (no data needed): the source is a finished run with this run's settings."""
    folder = Path(run)
    config, metrics = folder / ".hydra" / "config.yaml", folder / "metrics.json"
    checkpoint = folder / CHECKPOINT
    for needed in (config, metrics, checkpoint):
        if not needed.is_file():
            raise ConfigError(
                f"model.init_from={str(run)!r} has no {needed.relative_to(folder)}: point it to the "
                "folder of a finished language-model run that kept its checkpoints (e.g. "
                "outputs/results/study_lm_preference_s42), or set model.init_from=null."
            )
    source = OmegaConf.load(config)
    for key in SAME:
        theirs, ours = OmegaConf.select(source, key), OmegaConf.select(cfg, key)
        if theirs != ours:
            raise ConfigError(
                f"model.init_from={str(run)!r} was trained with {key}={theirs}, this run has "
                f"{key}={ours}: its weights do not fit this model. Set {key}={theirs}, or start "
                "from a run with this run's settings."
            )


def source_checkpoint(run: str | Path, split_hash: str) -> Path:
    """The source run's best checkpoint, once the data shows it was trained on this run's split
    (``check_source`` ran at start-up: models/build.py's check_model)."""
    theirs = json.loads((Path(run) / "metrics.json").read_text()).get("data/split_hash")
    if theirs != split_hash:
        raise ConfigError(
            f"model.init_from={str(run)!r} was trained on split {theirs}, this run uses split "
            f"{split_hash}: its weights saw interactions this run tests on. Start from a run with "
            "this run's data.* settings."
        )
    return Path(run) / CHECKPOINT


@torch.no_grad()
def warm_start(model: nn.Module, checkpoint: Path) -> dict[str, int]:
    """Copy the checkpoint's weights into ``model`` (the module a RecModule wraps). Returns how
    many tensors were copied whole and how many widened tables got their shared rows."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    copied = widened = 0
    for key, value in saved.items():
        name = key.removeprefix("model.")
        target = own.get(name)
        wider = (
            target is not None and target.shape[1:] == value.shape[1:] and len(target) > len(value)
        )
        if target is not None and target.shape == value.shape:
            target.copy_(value)
            copied += 1
        elif wider:
            target[: len(value)].copy_(value)  # a vocabulary this run widened: the shared rows
            widened += 1
        else:
            found = "no such weight" if target is None else f"shape {tuple(target.shape)}"
            raise ConfigError(
                f"model.init_from: {checkpoint} holds {name} {tuple(value.shape)}, this model has "
                f"{found}: the source run used another head, task or prompt strategy. Start from "
                "a run of the same task and head."
            )
    for part in model.modules():  # the run's start line names the source, not "new head"
        if getattr(part, "fresh_parts", None):
            part.fresh_parts = []
    model.started_from = str(checkpoint.parent.parent)
    return {"copied": copied, "widened": widened}
