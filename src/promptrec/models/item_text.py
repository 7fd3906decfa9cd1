"""Each catalogue item's text as a fixed vector from a frozen language model, for an ID model that
should also read what the items are (``model.text_from`` of SASRec).

An item seen a handful of times in training gets a poor id vector of its own; its title, year and
genres place it beside items the model knows. The language model runs once per item at build time
(1,682 short texts: seconds), under no gradient, so training costs what the ID model costs.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from promptrec.models.backbone import load_encoder, load_tokenizer
from promptrec.prompts.context import ContextBuilder
from promptrec.prompts.template import DEFAULT_ITEM_TEMPLATE, render_items

FIELD = "model.text_from"


def item_texts(items: pd.DataFrame, item_ids: list[str], template: str = DEFAULT_ITEM_TEMPLATE):
    """The text of each catalogue item, in catalogue order, as the prompts' item template writes
    it ("Toy Story (1995): Animation, Children's, Comedy")."""
    no_users = pd.DataFrame(columns=["user_id", "age", "gender", "occupation"])
    return render_items(item_ids, ContextBuilder(items, no_users), template)


@torch.no_grad()
def encode_texts(texts: list[str], name_or_path: str, batch_size: int = 128) -> torch.Tensor:
    """Mean-pooled last-layer token vectors (the sentence vector MiniLM was trained to give),
    centred over the catalogue and scaled to unit length: (len(texts), hidden), float32."""
    tokenizer = load_tokenizer(name_or_path, field=FIELD)
    encoder = load_encoder(name_or_path, field=FIELD).eval()
    pooled = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                           max_length=64, return_tensors="pt")  # fmt: skip
        states = encoder(**tokens).last_hidden_state.float()
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled.append((states * mask).sum(1) / mask.sum(1))
    vectors = torch.cat(pooled)
    return F.normalize(vectors - vectors.mean(0), dim=-1)
