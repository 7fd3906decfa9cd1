"""Examples → prompts → token ids (cached on disk) → dynamically padded batches.

Data flows one way: sources → split (data/) → the task's examples (tasks/) → the strategy's
prompts and token ids (prompts/, strategies/, token_cache.py) → batches. Without a strategy
(ID-based baselines) batches hold user and item indices built from the same split and the same
task examples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import datasets
import lightning as L
import pandas as pd
from filelock import FileLock
from lightning.pytorch.accelerators import CUDAAccelerator
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, RandomSampler
from transformers import DataCollatorWithPadding

from promptrec.data.catalog import Catalog
from promptrec.data.duplicates import duplicate_items, merge_duplicate_items
from promptrec.data.loaders import InteractionData
from promptrec.data.sources import open_source, sha256_file
from promptrec.data.splits import load_or_build_split, select_users
from promptrec.pipeline.batching import LengthGroupedSampler
from promptrec.pipeline.examples import ExampleBuilder, indexed
from promptrec.pipeline.hidden_cache import (
    HiddenCollator,
    load_hidden_cache,
    storage_for,
    write_hidden_cache,
)
from promptrec.pipeline.token_cache import (
    CACHE_VERSION,
    TEXT_COLUMNS,
    cache_intact,
    digest,
    load_token_cache,
    write_token_cache,
)
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.encoder import PromptEncoder, PromptSet
from promptrec.strategies import Strategy
from promptrec.tasks import Task


@dataclass
class PreparedData:
    """What the rest of a run needs to know about the data it trained and tested on."""

    split_hash: str
    datasets: dict[str, datasets.Dataset]  # model inputs, one per split
    examples: dict[str, pd.DataFrame]  # per split: ids, rating, labels (+ text, n_history_kept, …)
    catalog: Catalog  # user/item indices and training popularity
    split: pd.DataFrame  # every interaction with its split (per-group test metrics read it)
    users: pd.DataFrame  # user profiles (per-group test metrics read them)
    items: pd.DataFrame | None = None  # titles, years, genres (the FM's side features)
    duplicates: dict | None = None  # a film's second item id → its first (data/duplicates.py)
    encoder: PromptEncoder | None = None  # language models: encodes further (edited) examples


class RecDataModule(L.LightningDataModule):
    def __init__(self, data_cfg, task: Task, seed: int, strategy: Strategy | None = None):
        super().__init__()
        self.cfg, self.task, self.seed, self.strategy = data_cfg, task, seed, strategy
        self.tokenizer = strategy.tokenizer if strategy is not None else None
        self.prompts: PromptSet | None = None  # ID baselines render no prompt
        self.collate = None  # ID batches: torch's default collation
        if strategy is not None:
            self.prompts = PromptSet.from_config(
                strategy.cfg.prompt, task.name, strategy.template_text
            )
            self.collate = DataCollatorWithPadding(self.tokenizer)
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
        copies = duplicate_items(data.items)
        settings = {"name": cfg.split, "min_user_interactions": cfg.min_user_interactions,
                    "ratios": list(cfg.split_ratios), "seed": cfg.split_seed}  # fmt: skip
        if cfg.get("merge_duplicate_items"):  # in the key only when on: old splits keep theirs
            data, settings["merge_duplicate_items"] = merge_duplicate_items(data, copies), True
        key = digest([sha256_file(f) for f in files], cfg.max_users, settings)
        interactions = select_users(data.interactions, cfg.max_users)
        split, split_hash = load_or_build_split(interactions, Path(cfg.cache_dir), key, **settings)
        examples = ExampleBuilder(
            self.task, cfg, self.seed, split, Path(cfg.cache_dir) / f"split-{key}"
        )
        catalog = Catalog.build(data.items, split)
        self.task.prepare(catalog, split, examples.split_folder)
        facts = {"split_hash": split_hash, "catalog": catalog, "split": split, "users": data.users,
                 "items": data.items, "duplicates": {} if cfg.get("merge_duplicate_items") else copies}  # fmt: skip
        if self.strategy is None:
            return PreparedData(**facts, **indexed(examples, catalog, cfg.history_len))
        encoder = self.prompt_encoder(data)
        self.strategy.prepare(catalog, encoder.contexts)
        return PreparedData(
            **facts, **self._tokenised(encoder, examples, split_hash), encoder=encoder
        )

    def _tokenised(self, encoder: PromptEncoder, examples: ExampleBuilder, split_hash: str) -> dict:
        """Prompt tokens per split, from the on-disk cache when its key matches."""
        cfg, tokenizer = self.cfg, self.tokenizer
        tok_id = [tokenizer.name_or_path, type(tokenizer).__name__, len(tokenizer)]
        task_id = OmegaConf.to_container(self.task.cfg, resolve=True)
        marks = self.strategy.title_marks()  # in the key only when there are any
        held = cfg.get("holdout_fold")  # likewise
        key = digest(CACHE_VERSION, split_hash, self.prompts.hash, tok_id, task_id, cfg.history_len,
                     cfg.max_tokens, cfg.max_train_examples, cfg.few_shot, self.seed,
                     *([marks] if marks else []), *([list(held)] if held else []))  # fmt: skip
        self._token_key = key
        folder = Path(cfg.cache_dir) / f"tokens-{key}"
        if not cache_intact(folder):
            write_token_cache(folder, encoder, examples, self.prompts.seen, self.seed)
        loaded, examples = load_token_cache(folder)
        if self.strategy.collaborative is not None:
            self._add_collaborative_rows(loaded, examples, split_hash)
        return {"datasets": loaded, "examples": examples}

    def _add_collaborative_rows(self, loaded: dict, examples: dict, split_hash: str) -> None:
        """Each example's rows in the ID model's tables (strategies/collaborative.py), as batch
        columns beside its tokens."""
        collaborative = self.strategy.collaborative
        collaborative.check_split(split_hash)
        for which, ds in loaded.items():
            columns = collaborative.columns(
                examples[which], self.cfg.history_len, self.task.shows_target, which
            )
            for name, values in columns.items():
                ds = ds.add_column(name, list(values))
            ds.set_format("torch", columns=TEXT_COLUMNS + list(columns))
            loaded[which] = ds

    def use_hidden_states(self, lower, precision: str) -> None:
        """Batches carry every prompt's states at a ``tuning.freeze_layers`` cut, read from the
        on-disk cache (built here on first use, by the frozen lower layers, in the run's
        precision). The key adds the lower layers' weights, the cut, the precision and the
        attention code."""
        storage = storage_for(precision)
        weights = hashlib.sha256()
        for name, tensor in sorted(lower.state_dict().items()):
            weights.update(name.encode() + tensor.float().numpy().tobytes())
        attention = getattr(lower.config, "_attn_implementation", None)  # its rounding differs
        key = digest(self._token_key, weights.hexdigest(), len(lower.layers), storage, attention)
        folder = Path(self.cfg.cache_dir) / f"hidden-{key}"
        tokens, examples = self.prepared.datasets, self.prepared.examples
        with FileLock(str(Path(self.cfg.cache_dir) / ".build.lock")):
            loaded = load_hidden_cache(folder, tokens, examples)
            if loaded is None:
                write_hidden_cache(
                    folder, tokens, examples, lower, storage, self.cfg.eval_batch_size
                )
                loaded = load_hidden_cache(folder, tokens, examples)
        self.prepared.datasets = loaded
        self.collate = HiddenCollator(self.collate)

    def prompt_encoder(self, data: InteractionData) -> PromptEncoder:
        """The example → tokens path of this run (also used to inspect and explain prompts)."""
        contexts = ContextBuilder(data.items, data.users, self.strategy.title_marks())
        return PromptEncoder(self.prompts.templates, self.strategy.slots(), contexts, self.tokenizer,
                             self.cfg.max_tokens, self.task.name,
                             hide_target=not self.task.shows_target)  # fmt: skip

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
