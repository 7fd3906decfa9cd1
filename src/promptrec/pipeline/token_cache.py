"""Prompt token ids on disk (``datasets``), keyed by everything that changes them.

The key covers the source files (through the split hash), the templates, the tokenizer, the task
settings, the history/token budgets, the cap and the seed, so a changed template or file never
reuses stale tokens. An entry is published whole (staged, checksummed, renamed) and used only if
every file still matches its checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from promptrec.data.sources import sha256_file
from promptrec.pipeline.examples import SPLITS
from promptrec.prompts.encoder import PromptEncoder

CACHE_VERSION = "6"  # 6: seen templates are rendered (5 drew them but rendered #0). Bump when example building or rendering changes meaning
TEXT_COLUMNS = ["input_ids", "attention_mask", "labels", "example_id"]


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in a cache entry (a few MB: milliseconds)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "done")
    return {str(p.relative_to(folder)): sha256_file(p) for p in files}


def cache_intact(folder: Path) -> bool:
    """A token cache entry is used only if it is complete and every file still has the digest
    recorded when it was written; anything else (a crash, a disk error, an edit) rebuilds it."""
    try:
        recorded = json.loads((folder / "done").read_text())
    except (OSError, ValueError):
        return False
    if recorded == file_digests(folder):
        return True
    print(f"token cache {folder.name} does not match its checksums: rebuilding it")
    return False


def _render(encoder: PromptEncoder):
    """A ``datasets.map`` function: examples → prompt text, token ids and history kept."""

    def render(batch):
        out = {"text": [], "input_ids": [], "n_tokens": [], "n_history_kept": [], "n_history": []}
        rows = zip(batch["user_id"], batch["item_id"], batch["history_items"],
                   batch["history_ratings"], batch["template"])  # fmt: skip
        for u, i, hi, hr, template in rows:
            text, ids, kept = encoder.encode(u, i, hi, hr, int(template))
            out["text"].append(text)
            out["input_ids"].append(ids)
            out["n_tokens"].append(len(ids))
            out["n_history_kept"].append(kept)
            out["n_history"].append(len(hi))
        out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
        return out

    return render


def write_token_cache(folder: Path, encoder: PromptEncoder,
                      examples: Callable[[str], pd.DataFrame], seen: list[int], seed: int) -> None:  # fmt: skip
    """Render and tokenise every split into ``folder``. Training and validation prompts use the
    seen templates (one drawn per example); test prompts use template 0, and
    promptrec-robustness scores every template."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for n, which in enumerate(SPLITS):
        frame = examples(which)
        chosen = seen if which != "test" else [0]
        rng = np.random.default_rng([seed, n])
        frame = frame.assign(
            template=rng.choice(chosen, len(frame)) if len(chosen) > 1 else chosen[0]
        )
        ds = datasets.Dataset.from_pandas(frame, preserve_index=False)
        ds = ds.map(_render(encoder), batched=True,  # history lists stay: explanations edit them
                    new_fingerprint=f"{folder.name}-{which}", desc=f"prompts ({which})")  # fmt: skip
        ds.save_to_disk(str(staging / which))
    (staging / "done").write_text(json.dumps(file_digests(staging), indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)  # publish complete caches only


def load_token_cache(folder: Path) -> tuple[dict, dict]:
    """(model inputs per split, example tables per split) from a written entry."""
    loaded = {s: datasets.load_from_disk(str(folder / s)) for s in SPLITS}
    examples = {
        s: loaded[s].remove_columns(["input_ids", "attention_mask"]).to_pandas() for s in SPLITS
    }
    for ds in loaded.values():
        ds.set_format("torch", columns=TEXT_COLUMNS)
    return loaded, examples
