"""The hidden states of every prompt at a ``tuning.freeze_layers`` cut, on disk and memory-mapped.

Below the cut nothing trains, so a prompt's states there never change: they are computed once by
the frozen lower layers (models/frozen.py) and read back for every epoch. One flat file per split
holds every prompt's states one after another (tokens × hidden size, in the run's precision:
bf16 halves it), and the token counts say where each prompt starts. The key is the token cache's
key plus the model, the cut and the precision, so a changed template, model, k or precision
builds a new entry; an entry is published whole and checked against its checksums before use.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from promptrec.pipeline.token_cache import SPLITS, cache_intact, file_digests

STORAGE = {
    "bf16": (np.int16, torch.bfloat16),
    "fp32": (np.float32, torch.float32),
}  # bf16 bits as int16


def storage_for(precision: str) -> str:
    return "bf16" if "bf16" in str(precision) else "fp32"


@torch.inference_mode()
def _write_split(
    path: Path, dataset, lengths: np.ndarray, lower, storage: str, batch_size: int
) -> int:
    """Every prompt's states at the cut, in dataset order; returns the hidden size."""
    hidden = lower.config.hidden_size
    np_type, torch_type = STORAGE[storage]
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np_type, shape=(int(np.sum(lengths)), hidden)
    )
    starts = np.concatenate([[0], np.cumsum(lengths)])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if storage == "bf16" else nullcontext()
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    for chunk in np.array_split(order, max(1, len(order) // batch_size)):
        rows = [dataset[int(i)]["input_ids"] for i in chunk]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)], mask[j, : len(r)] = torch.as_tensor(r), 1
        with autocast:
            states = lower(ids, mask).to(torch_type)
        for j, i in enumerate(chunk):
            n = lengths[i]
            bits = states[j, :n].view(torch.int16) if storage == "bf16" else states[j, :n]
            out[starts[i] : starts[i] + n] = bits.numpy()
    out.flush()
    return hidden


def _lengths(examples: dict, which: str) -> np.ndarray:
    """Tokens per prompt, in dataset order (the token cache's ``n_tokens`` column)."""
    return examples[which]["n_tokens"].to_numpy()


def write_hidden_cache(
    folder: Path, datasets: dict, examples: dict, lower, storage: str, batch_size: int = 64
) -> None:
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for which in SPLITS:
        lengths = _lengths(examples, which)
        _write_split(staging / f"{which}.npy", datasets[which], lengths, lower, storage, batch_size)
    (staging / "storage.json").write_text(json.dumps({"storage": storage}))
    (staging / "done").write_text(json.dumps(file_digests(staging), indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


class WithHiddenStates(Dataset):
    """A token dataset whose rows also carry their cached states at the cut (``hidden``)."""

    def __init__(self, dataset, lengths: np.ndarray, states_file: Path, storage: str):
        self.dataset, self.storage, self.states_file = dataset, storage, Path(states_file)
        self.starts = np.concatenate([[0], np.cumsum(lengths)])
        self._states = None

    @property
    def states(self) -> np.ndarray:
        """Opened on first use in each process: on disk, paged in as batches need it."""
        if self._states is None:
            self._states = np.load(self.states_file, mmap_mode="r")
        return self._states

    def __getstate__(
        self,
    ) -> dict:  # ddp_spawn pickles the data module: send the path, not the data
        return {**self.__dict__, "_states": None}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        row = dict(self.dataset[i])
        rows = np.array(self.states[self.starts[i] : self.starts[i + 1]])
        states = torch.from_numpy(rows)
        row["hidden"] = states.view(torch.bfloat16) if self.storage == "bf16" else states
        return row


def load_hidden_cache(folder: Path, datasets: dict, examples: dict) -> dict | None:
    """The token datasets with their states, or None if the entry is missing or damaged."""
    if not cache_intact(folder):
        return None
    storage = json.loads((folder / "storage.json").read_text())["storage"]
    return {s: WithHiddenStates(datasets[s], _lengths(examples, s), folder / f"{s}.npy", storage)
            for s in SPLITS}  # fmt: skip


class HiddenCollator:
    """Pads token ids with the tokenizer's collator and the states to the batch's longest prompt
    (as fp32: the model's autocast picks the precision of each product)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, rows: list[dict]) -> dict:
        states = [r.pop("hidden") for r in rows]
        batch = dict(self.collate(rows))
        padded = torch.nn.utils.rnn.pad_sequence([s.float() for s in states], batch_first=True)
        batch["hidden"] = padded[:, : batch["input_ids"].shape[1]]
        return batch
