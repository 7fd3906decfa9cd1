"""What the model sees: sampled rendered prompts and token statistics over a whole split.

Shared by ``promptrec-prompts`` and by every training run (which logs the sample to W&B and to
``prompt_examples.csv``), so a researcher reads the same view in the terminal and the dashboard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from promptrec.data.duplicates import targets_shown_under_another_id

SAMPLE_COLUMNS = ["example_id", "user_id", "item_id", "labels", "n_tokens", "n_history_kept",
                  "n_history", "prompt"]  # fmt: skip


def sample_prompts(datamodule, which: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` seeded examples of split ``which``, with the exact model input decoded (special
    tokens such as [CLS], [SEP], [MASK] and [SOFT] included)."""
    ds, examples = datamodule.prepared.datasets[which], datamodule.prepared.examples[which]
    if len(examples) == 0:
        raise ValueError(f"split '{which}' has no examples to show")
    rows = np.sort(
        np.random.default_rng(seed).choice(len(examples), min(n, len(examples)), replace=False)
    )
    decode = datamodule.tokenizer.decode
    sample = examples.iloc[rows].reset_index(drop=True)
    prompts = [decode(ds[int(r)]["input_ids"].tolist()) for r in rows]
    return sample.assign(prompt=prompts)[
        [c for c in SAMPLE_COLUMNS if c in sample or c == "prompt"]
    ]


def prompt_stats(datamodule, which: str) -> dict:
    """Token lengths and truncation over every example of split ``which``.

    ``truncated`` is the share of prompts that lost history items to ``data.max_tokens``;
    ``target_title_missing`` the share whose text lacks the target item's title (a template that
    never shows it, or a cut: the budget drops history, never the target);
    ``target_in_history_under_other_id`` how many prompts show their target film in the history
    under its duplicate id (0 with ``data.merge_duplicate_items=true``).
    """
    prepared = datamodule.prepared
    examples = prepared.examples[which]
    lengths = examples["n_tokens"].to_numpy()
    stats = {
        "split": which,
        "examples": len(examples),
        "max_tokens": int(datamodule.cfg.max_tokens),
        # token counts are whole numbers: each percentile is one prompt's length
        **{f"tokens_p{q}": int(np.percentile(lengths, q, method="higher")) for q in (50, 90, 99)},
        "tokens_max": int(lengths.max()),
        "history_kept_mean": float(examples["n_history_kept"].mean()),
        "history_available_mean": float(examples["n_history"].mean()),
        "truncated": float((examples["n_history_kept"] < examples["n_history"]).mean()),
    }
    if datamodule.task.shows_target:
        item = prepared.encoder.contexts.item
        missing = [
            item(i)["title"] not in text for i, text in zip(examples["item_id"], examples["text"])
        ]
        stats["target_title_missing"] = float(np.mean(missing))
    copies = prepared.duplicates or {}
    stats["duplicate_items"] = len(copies)  # films with a second id (data.merge_duplicate_items)
    stats["target_in_history_under_other_id"] = targets_shown_under_another_id(examples, copies)
    return stats
