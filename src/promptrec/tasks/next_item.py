"""Next-item recommendation: rank the whole catalogue for the user's held-out next item.

``task.head=catalog``: one output per catalogue item on the [CLS] representation, softmax
cross-entropy; one forward pass scores every item. ``task.head=two_tower``: the same BERT encodes
the prompt and each item's text (``prompt.templates.item``), see ``strategies/two_tower.py``; it can
score items that never occur in training. At evaluation, every item the user interacted
with before the target is excluded from the ranking, for every model, sequential ones included.
RecBole masks them for general recommenders (BPR, ItemKNN) but not for sequential ones (SASRec):
``task.mask_history=false`` ranks the whole catalogue, as RecBole does there. The prompt never sees the
target: a template that uses ``target`` fails for this task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from promptrec.data.catalog import Catalog
from promptrec.data.negatives import load_or_draw
from promptrec.errors import ConfigError
from promptrec.metrics.ranking import TopKMetrics, rank_catalogue
from promptrec.tasks.base import Task, example_table, interaction_examples
from promptrec.tasks.settings import NextItemConfig

HEADS = ("catalog", "two_tower")
ITEM_INITS = ("none", "text")  # strategies/classifier.py: ClassifierStrategy.initialise


class NextItemTask(Task):
    name = "next_item"
    Config = NextItemConfig
    headline = ("hr@10", "ndcg@10", "mrr@10", "coverage@10")
    predictions_file = "topk.csv"
    shows_target = False

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.head not in HEADS:
            raise ConfigError(
                f"task.head={cfg.head!r} is not a next-item head; choose one of {HEADS}."
            )
        if cfg.get("item_init", "none") not in ITEM_INITS:  # saved configs may predate it
            raise ConfigError(
                f"task.item_init={cfg.item_init!r} is invalid; choose one of {ITEM_INITS}."
            )
        self.ks = sorted(int(k) for k in cfg.ks)
        if not self.ks or self.ks[0] <= 0:
            raise ConfigError(
                f"task.ks={list(cfg.ks)} must be a non-empty list of positive cut-offs, e.g. [5, 10, 20]."
            )
        self.item_ids: list[str] = []

    def prepare(self, catalog: Catalog, split: pd.DataFrame, folder: Path | None = None) -> None:
        self.item_ids, self.index, self.popularity = (
            catalog.item_ids,
            catalog.item_index,
            catalog.popularity,
        )
        self.negatives = {}
        if (
            self.cfg.eval_negatives is not None
        ):  # sampled evaluation: the same candidates for every run
            args = (
                catalog,
                self.cfg.eval_negatives,
                self.cfg.negative_sampler,
                self.cfg.negative_seed,
                folder,
            )
            self.negatives = {which: load_or_draw(split, which, *args) for which in ("val", "test")}

    def _excluded(
        self, stage: str, examples: pd.DataFrame, targets: torch.Tensor
    ) -> list[torch.Tensor]:
        """Items that may not be ranked: the user's earlier items (full ranking), or everything but
        the target and its saved negatives (sampled ranking). A re-consumed target stays rankable."""
        if not self.negatives and not self.cfg.mask_history:
            return [torch.empty(0, dtype=torch.long)] * len(examples)
        if not self.negatives:  # vectorised: ~100 seen items for each of 943 users
            seen = examples["seen_items"]
            lengths = seen.map(len).to_numpy()  # may be read-only: torch.tensor copies it
            counts = torch.tensor(lengths, dtype=torch.long)
            flat = np.concatenate([np.asarray(x, dtype=object) for x in seen]) if len(seen) else []
            items = torch.as_tensor(pd.Index(self.item_ids).get_indexer(flat), dtype=torch.long)
            rows = torch.repeat_interleave(torch.arange(len(seen)), counts)
            keep = items != targets[rows]
            kept = torch.bincount(rows[keep], minlength=len(seen)).tolist()
            return list(torch.split(items[keep], kept))
        excluded = []
        for user, position, t in zip(examples["user_id"], examples["position"], targets.tolist()):
            keep = torch.ones(len(self.item_ids), dtype=torch.bool)
            keep[[self.index[i] for i in self.negatives[stage][f"{user}:{position}"]] + [t]] = False
            excluded.append(keep.nonzero().flatten())
        return excluded

    explained = "log p(target)"

    def explained_score(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Log-probability of the held-out item under a softmax over the whole catalogue."""
        return outputs.float().log_softmax(-1).gather(1, labels.long().view(-1, 1))[:, 0]

    @property
    def verbalizer_classes(self) -> int:
        return self.num_outputs  # one label word per item: its title

    @property
    def num_outputs(self) -> int:
        if not self.item_ids:
            raise RuntimeError("NextItemTask.prepare() must run before the model is built")
        return len(self.item_ids)

    def examples(self, split: pd.DataFrame, which: str, history_len: int) -> pd.DataFrame:
        frame = interaction_examples(split, which, history_len, seen=which != "train")
        if which == "train" and self.cfg.targets_per_user is not None:
            # the most recent training interactions of each user become targets
            last = frame.groupby("user_id", sort=False)["position"].rank(
                ascending=False, method="first"
            )
            frame = frame[last <= self.cfg.targets_per_user].reset_index(drop=True)
            frame["example_id"] = np.arange(len(frame), dtype=np.int64)
        return frame.assign(labels=frame["item_id"].map(self.index).astype("int64"))

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, labels.long())

    def evaluate(
        self, stage: str, outputs: torch.Tensor, examples: pd.DataFrame
    ) -> tuple[dict, pd.DataFrame]:
        targets = torch.tensor(examples["labels"].to_numpy(), dtype=torch.long)
        exclude = self._excluded(stage, examples, targets)
        scores = outputs.float().cpu()
        items, valid = rank_catalogue(scores, exclude, max(self.ks))
        metric = TopKMetrics(self.ks, self.popularity, prefix=f"{stage}/", sync_on_compute=False)
        metric.update(items, valid, targets, torch.arange(len(targets)))
        ids = np.asarray(self.item_ids + [""], dtype=object)  # index -1 → ""
        top_scores = torch.gather(scores, 1, items.clamp(min=0)).masked_fill(~valid, float("nan"))
        table = example_table(examples, ["example_id", "user_id", "item_id"]).rename(
            columns={"item_id": "target"}
        )
        table = table.assign(
            items=[" ".join(ids[row][ok]) for row, ok in zip(items.numpy(), valid.numpy())],
            scores=[
                " ".join(f"{s:.6g}" for s in row[ok])
                for row, ok in zip(top_scores.numpy(), valid.numpy())
            ],
        )
        return metric.compute(), table
