"""Collaborative tokens (the CoLLM / LLaRA idea, on a BERT): an ID baseline's user vector and each
shown item's vector enter the prompt beside the text.

An input option any classifier prompt can take (``prompt.collaborative``), like soft prompts. The
prompt gets marker tokens: ``[USER_CF]`` in front (when the ID model has user vectors),
``[ITEM_CF]`` after each history title and ``[TARGET_CF]`` after the target's title. The markers
are ordinary tokens up to the cut (``tuning.freeze_layers``), so the frozen layers' states stay
cacheable; where the trainable layers begin, each marker's state gets its vector, mapped by a
small trainable projector, added to it. The projector's last layer starts at zero, so training
starts from the text-only model and learns how much of the ID signal to use.

The vectors come from ``id_vectors.pt``, which an ID baseline's run writes (MF for preference and
rating; BPR or SASRec for next item). They must have been trained on this run's split: a run of
another split saw this run's test interactions in training, so it is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from promptrec.errors import ConfigError
from promptrec.prompts.encoder import Slot

USER_TOKEN, ITEM_TOKEN, TARGET_TOKEN = "[USER_CF]", "[ITEM_CF]", "[TARGET_CF]"
ID_VECTORS = "id_vectors.pt"  # runtime/reporting.py writes it into an ID baseline's run folder


SERVED_BY = ("classifier",)  # strategies whose wrapper adds the vectors (strategies/classifier.py)


def check_collaborative(cfg, strategy: str) -> None:
    """Start-up checks of ``prompt.collaborative`` (the file itself is read when the run builds)."""
    settings = cfg.prompt.collaborative
    if OmegaConf.is_missing(settings, "run") or not settings.run:
        raise ConfigError(
            "prompt.collaborative.run is not set: give the run folder of an ID baseline trained "
            "on this split, e.g. prompt.collaborative.run=outputs/mf after `promptrec-train "
            "experiment=baseline_mf hydra.run.dir=outputs/mf`."
        )
    if strategy not in SERVED_BY:
        raise ConfigError(
            f"prompt.collaborative works with the {', '.join(SERVED_BY)} strategy (a head on the "
            f"[CLS] vector, or the catalog head for next item), not with {strategy}: use "
            "prompt=collaborative, or remove prompt.collaborative."
        )


def load_id_vectors(run: str | Path) -> dict:
    """The saved tables of an ID baseline's run folder (or the file itself)."""
    path = Path(run)
    path = path / ID_VECTORS if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(
            f"prompt.collaborative.run={run!r} holds no {ID_VECTORS}. Point it to the run folder of "
            "an ID baseline trained on the same split, e.g. first `promptrec-train "
            "experiment=baseline_mf hydra.run.dir=outputs/mf` (task=preference or rating; "
            "experiment=baseline_bpr for next item), then prompt.collaborative.run=outputs/mf."
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not torch's traceback
        raise ConfigError(f"{path} is not a readable {ID_VECTORS} ({type(exc).__name__}: {exc}); "
                          "train its ID baseline again.") from None  # fmt: skip
    if not {"split_hash", "item_ids", "items"} <= set(saved):
        raise ConfigError(f"{path} lacks the split hash, item ids or item vectors; train its ID "
                          "baseline again.")  # fmt: skip
    return saved


class CollaborativeVectors(nn.Module):
    """The ID tables (row 0: none) and the projector into the backbone's hidden size."""

    def __init__(self, saved: dict, hidden: int, marker_ids: dict[str, int], train_ids: bool):
        super().__init__()

        def table(vectors: torch.Tensor) -> nn.Embedding:
            rows = torch.cat([torch.zeros(1, vectors.shape[1]), vectors.float()])
            return nn.Embedding.from_pretrained(rows, freeze=not train_ids, padding_idx=0)

        self.items = table(saved["items"])
        self.users = table(saved["users"]) if saved.get("users") is not None else None
        width = self.items.embedding_dim
        self.project = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        nn.init.zeros_(self.project[2].weight)  # starts as the text-only model
        nn.init.zeros_(self.project[2].bias)
        self.marker_ids = marker_ids

    def forward(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        """``states`` (batch, tokens, hidden) with each marker's projected vector added."""
        ids = batch["input_ids"]
        added = torch.zeros_like(states)
        wanted = [
            ("item", self.items, batch["cf_history"]),
            ("target", self.items, batch["cf_target"][:, None]),
        ]
        if self.users is not None:
            wanted.append(("user", self.users, batch["cf_user"][:, None]))
        for role, table, rows in wanted:
            at, present = ids == self.marker_ids[role], rows > 0
            if not torch.equal(at.sum(1), present.sum(1)):
                raise ConfigError(
                    f"a prompt shows {int(at.sum())} {role} markers where {int(present.sum())} "
                    f"{role} vectors were prepared: the template must write each history title "
                    "(and the target's) exactly once, e.g. through the macros rated(history), "
                    "movie(target)."
                )
            if present.any():  # row-major on both sides: the k-th marker of a row, its k-th id
                added[at] = self.project(table(rows[present])).to(states.dtype)
        return states + added


class CollaborativeInput:
    """``prompt.collaborative`` in a run: its markers, its tables and the batch columns."""

    def __init__(self, cfg, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.saved = load_id_vectors(cfg.run)
        self.has_users = self.saved.get("users") is not None
        tokens = [USER_TOKEN, ITEM_TOKEN, TARGET_TOKEN]
        tokenizer.add_tokens(tokens, special_tokens=True)  # one token each, never split
        self.marker_ids = dict(
            zip(["user", "item", "target"], tokenizer.convert_tokens_to_ids(tokens))
        )
        fix = f"prompt.collaborative puts {USER_TOKEN} in front of the text; do not write it"
        self.slot = Slot(USER_TOKEN, self.marker_ids["user"], int(self.has_users), fix)

    def place(self, text: str) -> str:
        return f"{USER_TOKEN} {text}" if self.has_users else text

    @property
    def title_marks(self) -> dict[str, str]:
        """What follows each title in the prompt (prompts/context.py writes it)."""
        return {"history": ITEM_TOKEN, "target": TARGET_TOKEN}

    def check_split(self, split_hash: str) -> None:
        if self.saved["split_hash"] != split_hash:
            raise ConfigError(
                f"prompt.collaborative.run={self.cfg.run!r} was trained on split "
                f"{self.saved['split_hash']}, this run uses split {split_hash}. Its vectors saw "
                "interactions this run tests on (or lacks ones it trains on); train the ID "
                "baseline with this run's data.* settings and point to that run."
            )

    def columns(
        self, examples: pd.DataFrame, width: int, shows_target: bool
    ) -> dict[str, np.ndarray]:
        """Per example: the user's row, the shown history items' rows (oldest first, as the
        template writes them; 0 pads) and the target's row (none where the target is the
        answer), in the saved tables (+1; 0 = none)."""
        users = {u: i + 1 for i, u in enumerate(self.saved.get("user_ids") or [])}
        items = {x: i + 1 for i, x in enumerate(self.saved["item_ids"])}
        history = np.zeros((len(examples), max(1, width)), dtype=np.int64)
        for row, (shown, kept) in enumerate(
            zip(examples["history_items"], examples["n_history_kept"])
        ):
            ids = [items.get(x, 0) for x in list(shown)[len(shown) - int(kept) :]] if kept else []
            history[row, : len(ids)] = ids
        target = examples["item_id"].map(items).fillna(0).astype("int64").to_numpy()
        if not shows_target:
            target = np.zeros_like(target)
        return {"cf_user": examples["user_id"].map(users).fillna(0).astype("int64").to_numpy(),
                "cf_history": history, "cf_target": target}  # fmt: skip

    def build(self, hidden: int) -> CollaborativeVectors:
        return CollaborativeVectors(self.saved, hidden, self.marker_ids, bool(self.cfg.train_ids))
