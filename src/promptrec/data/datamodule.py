"""Examples → prompts → token ids (``datasets``, cached on disk) → dynamically padded batches.

The cache key covers everything that changes the tokens (source files, split, template, tokenizer,
task, history/token budgets, cap and seed), so a changed template or file never reuses stale
tokens. Without a tokenizer (ID-based baselines) batches hold user and item indices built from the
same split and the same task examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import datasets
import lightning as L
import numpy as np
import pandas as pd
import torch
from filelock import FileLock
from lightning.pytorch.accelerators import CUDAAccelerator
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, RandomSampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from promptrec.data.batching import LengthGroupedSampler
from promptrec.data.catalog import Catalog
from promptrec.data.examples import cap_examples, few_shot
from promptrec.data.loaders import InteractionData
from promptrec.data.sources import open_source, sha256_file
from promptrec.data.splits import load_or_build_split, select_users
from promptrec.errors import ConfigError
from promptrec.metrics.slices import Slicer
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.encoder import PromptEncoder, task_templates
from promptrec.prompts.template import DEFAULT_ITEM_TEMPLATE, ITEM_FIELDS, PromptTemplate
from promptrec.tasks import Task

CACHE_VERSION = "5"  # bump when example building or rendering changes meaning
SPLITS = ("train", "val", "test")
TEXT_COLUMNS = ["input_ids", "attention_mask", "labels", "example_id"]
ID_COLUMNS = ["user_idx", "item_idx", "history_idx", "labels", "example_id"]


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _left_padded(history, index: dict[str, int], width: int) -> list[int]:
    """Item ids + 1 (0 is padding), most recent last, left-padded to ``width`` (sequence models)."""
    ids = [index[i] + 1 for i in history][-width:]
    return [0] * (width - len(ids)) + ids


def _file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in a cache entry (a few MB: milliseconds)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "done")
    return {str(p.relative_to(folder)): sha256_file(p) for p in files}


def _cache_intact(folder: Path) -> bool:
    """A token cache entry is used only if it is complete and every file still has the digest
    recorded when it was written; anything else (a crash, a disk error, an edit) rebuilds it."""
    try:
        recorded = json.loads((folder / "done").read_text())
    except (OSError, ValueError):
        return False
    if recorded == _file_digests(folder):
        return True
    print(f"token cache {folder.name} does not match its checksums: rebuilding it")
    return False


@dataclass
class PreparedData:
    """What the rest of a run needs to know about the data it trained and tested on."""

    split_hash: str
    datasets: dict[str, datasets.Dataset]  # model inputs, one per split
    examples: dict[str, pd.DataFrame]  # per split: ids, rating, labels (+ text, n_history_kept, …)
    slicer: Slicer  # user groups and item-popularity buckets for per-group test metrics
    catalog: Catalog  # user/item indices and training popularity
    item_texts: list[str] | None = None  # two-tower models: every item's text, catalogue order
    item_tokens: dict[str, torch.Tensor] | None = None  # … and its padded token ids
    label_words: list[list[str]] | None = None  # cloze prompts: the verbalizer's words per class
    encoder: PromptEncoder | None = None  # language models: encodes further (edited) examples


class RecDataModule(L.LightningDataModule):
    def __init__(
        self, data_cfg, task: Task, prompt_cfg, tokenizer: PreTrainedTokenizerBase | None, seed: int
    ):
        super().__init__()
        self.cfg, self.task, self.seed, self.tokenizer = data_cfg, task, seed, tokenizer
        self.template: PromptTemplate | None = None
        self.collate = None  # ID batches: torch's default collation
        if tokenizer is not None:
            self.templates, self.slots = task_templates(prompt_cfg, task, tokenizer)
            self.template = self.templates[0]
            self.seen = [int(k) for k in (prompt_cfg.get("seen") or [0])]
            if not self.seen or not all(0 <= k < len(self.templates) for k in self.seen):
                raise ConfigError(
                    f"prompt.seen={self.seen} must list template indices in 0..{len(self.templates) - 1} "
                    f"(0 = prompt.templates.{task.name}, 1.. = prompt.pool.{task.name})."
                )
            # one hash for every template this run can render, and which ones it trains on
            hashes = [t.content_hash for t in self.templates]
            self.prompt_hash = (
                self.template.content_hash if len(hashes) == 1 else _digest(hashes, self.seen)[:12]
            )
            self.collate = DataCollatorWithPadding(tokenizer)
            if task.item_tower:
                text = prompt_cfg.templates.get("item", DEFAULT_ITEM_TEMPLATE)
                self.item_template = PromptTemplate(prompt_cfg.name, text, "item", ITEM_FIELDS)
        self.verbalizer = (prompt_cfg.get("verbalizer") or {}) if tokenizer is not None else {}
        self.prepared: PreparedData | None = None

    # -- building (rank 0 in DDP) and loading (every rank) share one cached function --------------
    def prepare_data(self) -> None:
        if self.prepared is None:  # train/eval prepare before fitting; Lightning calls this again
            self.prepared = self._build()

    def setup(self, stage: str | None = None) -> None:
        if self.prepared is None:  # DDP ranks other than 0 load the cache rank 0 wrote
            self.prepared = self._build()

    def _build(self) -> PreparedData:
        """Under a file lock on the cache folder: ranks that torchrun or SLURM start together,
        and jobs of concurrent sweeps, take turns, so only the first builds each cache entry and
        the others load it."""
        Path(self.cfg.cache_dir).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(self.cfg.cache_dir) / ".build.lock")):
            return self._build_unlocked()

    def _build_unlocked(self) -> PreparedData:
        cfg = self.cfg
        files, data = open_source(cfg)
        settings = {"name": cfg.split, "min_user_interactions": cfg.min_user_interactions,
                    "ratios": list(cfg.split_ratios), "seed": cfg.split_seed}  # fmt: skip
        key = _digest([sha256_file(f) for f in files], cfg.max_users, settings)
        interactions = select_users(data.interactions, cfg.max_users)
        split, split_hash = load_or_build_split(interactions, Path(cfg.cache_dir), key, **settings)
        self._split_folder = Path(cfg.cache_dir) / f"split-{key}"
        catalog = Catalog.build(data.items, split)
        self.task.prepare(catalog, split, self._split_folder)
        slicer = Slicer(data.users, split, self.task.cfg.slice_min_examples)
        if self.tokenizer is None:
            loaded, examples = self._indexed(split, catalog)
            return PreparedData(split_hash, loaded, examples, slicer, catalog)
        encoder = self.prompt_encoder(data)
        loaded, examples = self._tokenised(encoder, split, split_hash)
        prepared = PreparedData(split_hash, loaded, examples, slicer, catalog, encoder=encoder)
        if self.task.item_tower:
            prepared.item_texts, prepared.item_tokens = self._item_inputs(encoder.contexts, catalog)
        if self.verbalizer:
            prepared.label_words = self._label_words(encoder.contexts, catalog)
        return prepared

    def _label_words(self, contexts: ContextBuilder, catalog: Catalog) -> list[list[str]]:
        """The verbalizer's words per class; ``titles`` makes each item's title its label word."""
        spec, task = self.verbalizer[self.task.name], self.task
        field = f"prompt.verbalizer.{task.name}"
        if spec == "titles":
            if task.name != "next_item":
                raise ConfigError(f"{field}=titles names items; it only fits task=next_item.")
            return [[contexts.item(i)["title"]] for i in catalog.item_ids]
        if isinstance(spec, str) or len(spec) != task.verbalizer_classes:
            raise ConfigError(
                f"{field} must list label words for {task.verbalizer_classes} classes (one list "
                f"per class, in class order), got {spec!r}."
            )
        spec = OmegaConf.to_container(spec) if OmegaConf.is_config(spec) else spec
        return [[w] if isinstance(w, str) else [str(x) for x in w] for w in spec]

    def _item_inputs(self, contexts: ContextBuilder, catalog: Catalog) -> tuple[list, dict]:
        """Every catalogue item as text and token ids (cheap: one short text per item)."""
        texts = [self.item_template.render({"target": contexts.item(i)}) for i in catalog.item_ids]
        tokens = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                                max_length=self.task.cfg.item_max_tokens)  # fmt: skip
        return texts, {k: tokens[k] for k in ("input_ids", "attention_mask")}

    def _examples(self, split: pd.DataFrame, which: str) -> pd.DataFrame:
        frame = self.task.examples(split, which, self.cfg.history_len)
        k, seed = self.cfg.few_shot, self.seed
        if k is not None and which in ("train", "val"):  # TALLRec-style: K to train, K to validate
            return few_shot(
                frame,
                k,
                seed,
                self._split_folder / f"fewshot-{self.task.name}-K{k}-seed{seed}-{which}.json",
            )
        return cap_examples(frame, self.cfg.max_train_examples, seed) if which == "train" else frame

    def _indexed(self, split: pd.DataFrame, catalog: Catalog) -> tuple[dict, dict]:
        """User and item indices per split (cheap: built in memory every run)."""
        loaded, examples, width = {}, {}, max(1, self.cfg.history_len)
        for which in SPLITS:
            frame = self._examples(split, which)
            frame = frame.assign(
                user_idx=frame["user_id"].map(catalog.user_index).astype("int64"),
                item_idx=frame["item_id"].map(catalog.item_index).astype("int64"),
                history_idx=[
                    _left_padded(h, catalog.item_index, width) for h in frame["history_items"]
                ],
            )
            loaded[which] = datasets.Dataset.from_pandas(frame[ID_COLUMNS], preserve_index=False)
            loaded[which].set_format("torch", columns=ID_COLUMNS)
            examples[which] = frame
        return loaded, examples

    def _tokenised(
        self, encoder: PromptEncoder, split: pd.DataFrame, split_hash: str
    ) -> tuple[dict, dict]:
        """Prompt tokens per split, from the on-disk cache when its key matches."""
        cfg = self.cfg
        tok_id = [self.tokenizer.name_or_path, type(self.tokenizer).__name__, len(self.tokenizer)]
        task_id = OmegaConf.to_container(self.task.cfg, resolve=True)
        key = _digest(CACHE_VERSION, split_hash, self.prompt_hash, tok_id, task_id,
                      cfg.history_len, cfg.max_tokens, cfg.max_train_examples, cfg.few_shot, self.seed)  # fmt: skip
        folder = Path(cfg.cache_dir) / f"tokens-{key}"
        if not _cache_intact(folder):
            self._tokenise_all(encoder, split, folder)
        loaded = {s: datasets.load_from_disk(str(folder / s)) for s in SPLITS}
        examples = {
            s: loaded[s].remove_columns(["input_ids", "attention_mask"]).to_pandas() for s in SPLITS
        }
        for ds in loaded.values():
            ds.set_format("torch", columns=TEXT_COLUMNS)
        return loaded, examples

    def prompt_encoder(self, data: InteractionData) -> PromptEncoder:
        """The example → tokens path of this run (also used to inspect and explain prompts)."""
        return PromptEncoder(self.templates, self.slots, ContextBuilder(data.items, data.users),
                             self.tokenizer, self.cfg.max_tokens, self.task.name,
                             hide_target=not self.task.shows_target)  # fmt: skip

    def _tokenise_all(self, encoder: PromptEncoder, split: pd.DataFrame, folder: Path) -> None:

        def render(batch):
            out = {
                "text": [],
                "input_ids": [],
                "n_tokens": [],
                "n_history_kept": [],
                "n_history": [],
            }
            for u, i, hi, hr in zip(
                batch["user_id"], batch["item_id"], batch["history_items"], batch["history_ratings"]
            ):
                text, ids, kept = encoder.encode(u, i, hi, hr)
                out["text"].append(text)
                out["input_ids"].append(ids)
                out["n_tokens"].append(len(ids))
                out["n_history_kept"].append(kept)
                out["n_history"].append(len(hi))
            out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
            return out

        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for n, which in enumerate(SPLITS):
            frame = self._examples(split, which)
            # training and validation prompts use the seen templates (one drawn per example);
            # test prompts use template 0, and promptrec-robustness scores every template
            seen = self.seen if which != "test" else [0]
            rng = np.random.default_rng([self.seed, n])
            frame = frame.assign(
                template=rng.choice(seen, len(frame)) if len(seen) > 1 else seen[0]
            )
            ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
            ds = ds.map(render, batched=True,  # history lists stay: explanations edit them
                        new_fingerprint=f"{folder.name}-{which}", desc=f"prompts ({which})")  # fmt: skip
            ds.save_to_disk(str(staging / which))
        (staging / "done").write_text(json.dumps(_file_digests(staging), indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)  # publish complete caches only

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, which: str) -> DataLoader:
        train = which == "train"
        batch = self.cfg.batch_size if train else self.cfg.eval_batch_size
        dataset = self.prepared.datasets[which]
        lengths = self.prepared.examples[which].get("n_tokens")  # prompts; ID batches have none
        if lengths is not None and self.cfg.length_grouped:
            sampler = LengthGroupedSampler(lengths.to_numpy(), batch, self.seed, shuffle=train)
        else:
            sampler = RandomSampler(dataset) if train else None  # global, seeded RNG
        return DataLoader(dataset, batch_size=batch, sampler=sampler, collate_fn=self.collate,
                          num_workers=self.cfg.num_workers, pin_memory=self._pin_memory())  # fmt: skip

    def _pin_memory(self) -> bool:
        setting = str(self.cfg.pin_memory).lower()
        if setting != "auto":
            return setting == "true"
        return self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")
