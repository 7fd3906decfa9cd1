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

An ID model knows the pairs it trained on far better than new ones, so with ``crossfit=true``
each training pair reads the vectors of a fold run that never saw it (``promptrec-crossfit``:
experiments/crossfit.py); validation and test pairs read the full run's. ``score=true`` then
adds MF's own score for (user, target) to the output with a learnt weight starting at 1: the
model starts as MF and its text learns what MF misses.

Trained beside MF's score, the text part learns only what MF misses on the training pairs, and
it ends up a weaker complement than a text model trained alone (bench/collaborative_diagnostics.py
measures it). ``drop`` (modality dropout) hides the ID signal, vectors and score, from that share
of the training examples, so the same text part must also stand on its own.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import OmegaConf

from promptrec.data.examples import fold_of
from promptrec.errors import ConfigError
from promptrec.prompts.encoder import Slot

USER_TOKEN, ITEM_TOKEN, TARGET_TOKEN = "[USER_CF]", "[ITEM_CF]", "[TARGET_CF]"
ID_VECTORS = "id_vectors.pt"  # runtime/reporting.py writes it into an ID baseline's run folder
CROSSFIT = "crossfit"  # experiments/crossfit.py: <ID run>/crossfit/fold_<k>/ and folds.json
SCORED_TASKS = ("preference", "rating")  # one output per example, which the ID score joins


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
    if settings.get("score") and not settings.get("crossfit"):
        raise ConfigError(
            "prompt.collaborative.score=true needs prompt.collaborative.crossfit=true: MF's score "
            "of a pair it trained on is far better than on a new pair, and a model that learns "
            "from it over-trusts it on test. Run `promptrec-crossfit <ID run>` first, then set both."
        )
    if settings.get("score") and cfg.task.name not in SCORED_TASKS:
        raise ConfigError(
            f"prompt.collaborative.score=true adds one score per example (task=preference or "
            f"rating), not to task={cfg.task.name}'s catalogue: remove it."
        )
    drop = settings.get("drop", 0.0)
    if not isinstance(drop, (int, float)) or isinstance(drop, bool) or not 0 <= drop < 1:
        raise ConfigError(
            f"prompt.collaborative.drop={drop!r} must be a number in [0, 1): the share of training "
            "examples that hide the ID signal, e.g. prompt.collaborative.drop=0.5 (0: none hide it)."
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


def load_folds(run: str | Path, saved: dict) -> list[dict]:
    """The fold runs' tables of a cross-fitted ID run (``promptrec-crossfit``), checked to share
    the full run's split and ids."""
    folder = Path(run) / CROSSFIT
    if not (folder / "folds.json").is_file():
        raise ConfigError(
            f"prompt.collaborative.crossfit=true, but {run} has no finished cross-fit "
            f"({folder}/folds.json). Run `promptrec-crossfit {run} --folds 5` first (K more "
            "trainings of that ID run, each without one fold of the training pairs)."
        )
    names = json.loads((folder / "folds.json").read_text())["runs"]
    folds = [load_id_vectors(folder / name) for name in names]
    for name, fold in zip(names, folds):
        same = [fold["split_hash"] == saved["split_hash"], fold["item_ids"] == saved["item_ids"],
                fold.get("user_ids") == saved.get("user_ids")]  # fmt: skip
        if not all(same):
            raise ConfigError(f"{folder / name} was trained on another split or catalogue than "
                              f"{run}; run promptrec-crossfit {run} again.")  # fmt: skip
    return folds


def id_scores(users: np.ndarray, items: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """MF's score from its tables' rows (vector, then bias): p_u·q_i + b_u + b_i + b."""
    return (users[:, :-1] * items[:, :-1]).sum(1) + users[:, -1] + items[:, -1] + bias


def in_block(rows: np.ndarray, block: np.ndarray, n: int) -> np.ndarray:
    """Rows of the full run's table (1 … n; 0 = none) moved into each example's block of n."""
    offset = (block * n).reshape(-1, *[1] * (rows.ndim - 1))
    return np.where(rows > 0, rows + offset, 0)


class CollaborativeVectors(nn.Module):
    """The ID tables (row 0: none; then the full run's rows, then each fold run's) and the
    projector into the backbone's hidden size; with ``score``, the weight of the ID score."""

    def __init__(self, saved: dict, hidden: int, marker_ids: dict[str, int], train_ids: bool,
                 score: bool = False, drop: float = 0.0):  # fmt: skip
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
        self.score_weight = nn.Parameter(torch.ones(1)) if score else None
        self.drop = drop
        self.hidden = False  # true: no example sees it (the text-only view a diagnosis scores)

    def seen(self, batch: dict) -> torch.Tensor | None:
        """Which examples see the ID signal (None: all). In training, ``drop`` of them do not."""
        ids = batch["input_ids"]
        if self.hidden:
            return torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        if not self.training or self.drop <= 0:
            return None
        return torch.rand(ids.shape[0], device=ids.device) >= self.drop

    def with_score(self, outputs: torch.Tensor, batch: dict,
                   seen: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The model's outputs plus the weighted ID score (``score=true``), else as they are."""
        if self.score_weight is None:
            return outputs
        score = batch["cf_score"].float() * (1.0 if seen is None else seen)
        return outputs + self.score_weight * score[:, None]

    def forward(self, states: torch.Tensor, batch: dict,
                seen: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``states`` (batch, tokens, hidden) with each marker's projected vector added (not to
        the examples ``seen`` leaves out)."""
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
        if seen is not None:
            added = added * seen[:, None, None]
        return states + added


class CollaborativeInput:
    """``prompt.collaborative`` in a run: its markers, its tables and the batch columns."""

    def __init__(self, cfg, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.saved = load_id_vectors(cfg.run)
        self.has_users = self.saved.get("users") is not None
        self.folds = load_folds(cfg.run, self.saved) if cfg.get("crossfit") else []
        self.score = bool(cfg.get("score"))
        if self.score and "bias" not in self.saved:
            raise ConfigError(f"prompt.collaborative.score=true needs MF's tables with its global "
                              f"bias; {cfg.run} ({self.saved.get('model')}) has none: train "
                              "experiment=baseline_mf again and cross-fit it.")  # fmt: skip
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

    @functools.cached_property
    def tables(self) -> dict[str, torch.Tensor | None]:
        """The full run's rows, then each fold run's (one block per run, same order of ids)."""
        runs = [self.saved, *self.folds]
        users = torch.cat([r["users"] for r in runs]) if self.has_users else None
        return {"items": torch.cat([r["items"] for r in runs]), "users": users}

    def columns(
        self, examples: pd.DataFrame, width: int, shows_target: bool, which: str = "test"
    ) -> dict[str, np.ndarray]:
        """Per example: the user's row, the shown history items' rows (oldest first, as the
        template writes them; 0 pads) and the target's row (none where the target is the
        answer), in the tables (+1; 0 = none); with ``crossfit``, a training pair's rows are in
        the block of the fold run that left it out. With ``score``, MF's score of the pair."""
        n_users, n_items = len(self.saved.get("user_ids") or []), len(self.saved["item_ids"])
        users = {u: i + 1 for i, u in enumerate(self.saved.get("user_ids") or [])}
        items = {x: i + 1 for i, x in enumerate(self.saved["item_ids"])}
        block = np.zeros(len(examples), dtype=np.int64)  # 0: the full run
        if self.folds and which == "train":
            block = fold_of(examples["user_id"], examples["item_id"], len(self.folds)) + 1
        history = np.zeros((len(examples), max(1, width)), dtype=np.int64)
        for row, (shown, kept) in enumerate(
            zip(examples["history_items"], examples["n_history_kept"])
        ):
            ids = [items.get(x, 0) for x in list(shown)[len(shown) - int(kept) :]] if kept else []
            history[row, : len(ids)] = ids
        target = examples["item_id"].map(items).fillna(0).astype("int64").to_numpy()
        if not shows_target:
            target = np.zeros_like(target)
        user = examples["user_id"].map(users).fillna(0).astype("int64").to_numpy()
        columns = {"cf_user": in_block(user, block, n_users),
                   "cf_history": in_block(history, block, n_items),
                   "cf_target": in_block(target, block, n_items)}  # fmt: skip
        if self.score:
            tables = {k: torch.cat([torch.zeros(1, v.shape[1]), v]).numpy()
                      for k, v in self.tables.items()}  # fmt: skip
            bias = np.array([float(r["bias"][0]) for r in [self.saved, *self.folds]])
            columns["cf_score"] = id_scores(tables["users"][columns["cf_user"]],
                                            tables["items"][columns["cf_target"]],
                                            bias[block]).astype("float32")  # fmt: skip
        return columns

    def build(self, hidden: int) -> CollaborativeVectors:
        return CollaborativeVectors(self.tables, hidden, self.marker_ids,
                                    bool(self.cfg.train_ids), self.score,
                                    float(self.cfg.get("drop", 0.0)))  # fmt: skip
