"""SASRec whose item vectors also read the items' text (``model.text_from``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.models.backbone import load_encoder, load_tokenizer
from promptrec.models.baselines import SASRec
from promptrec.models.item_text import encode_texts, item_texts
from promptrec.runtime.training import train

ITEMS = pd.DataFrame({"item_id": ["1", "2"], "title": ["Toy Story", "GoldenEye"],
                      "year": pd.array([1995, None], dtype="Int64"), "genres": [["Animation", "Comedy"], []]})  # fmt: skip


def test_item_texts_follow_the_item_template_in_catalogue_order():
    texts = item_texts(ITEMS, ["2", "1", "9"])
    assert texts == ["GoldenEye (unknown):", "Toy Story (1995): Animation, Comedy",
                     "unknown item (unknown):"]  # fmt: skip


def test_text_vectors_are_the_encoders_mean_pooled_states(tiny_model_dir):
    texts = ["Toy Story (1995): Animation, Comedy", "GoldenEye (1995): Action", "Heat (1995)"]
    vectors = encode_texts(texts, str(tiny_model_dir))
    # independent: one text at a time (no padding), the mean of its token states
    encoder = load_encoder(str(tiny_model_dir)).eval()
    tokenizer = load_tokenizer(str(tiny_model_dir))
    with torch.no_grad():
        means = torch.stack([encoder(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0)
                             for t in texts])  # fmt: skip
    torch.testing.assert_close(
        vectors, F.normalize(means - means.mean(0), dim=-1), atol=1e-5, rtol=0
    )
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3))


def test_the_text_joins_each_items_vector_at_input_and_scoring():
    torch.manual_seed(0)
    text = torch.randn(6, 10)
    with_text = SASRec(n_items=6, max_len=4, dim=8, layers=1, heads=2, dropout=0.0, text=text)
    ids_only = SASRec(n_items=6, max_len=4, dim=8, layers=1, heads=2, dropout=0.0)
    ids_only.load_state_dict(with_text.state_dict(), strict=False)  # same id tables and layers
    batch = {"history_idx": torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5]])}
    expected = with_text.item.weight[1:] + with_text.text_project(text)
    torch.testing.assert_close(with_text.id_vectors()["items"], expected)
    assert with_text.item_vectors()[0].abs().sum() == 0  # padding stays nothing
    assert not torch.allclose(with_text(batch), ids_only(batch))
    with torch.no_grad():  # a zero map: exactly the ID-only model
        with_text.text_project.weight.zero_()
        with_text.text_project.bias.zero_()
    torch.testing.assert_close(with_text(batch), ids_only(batch))


def test_the_text_map_trains_and_the_text_is_saved_fixed():
    torch.manual_seed(0)
    model = SASRec(n_items=6, max_len=4, dim=8, layers=1, heads=2, dropout=0.0,
                   text=torch.randn(6, 10))  # fmt: skip
    assert "text" in model.state_dict() and "text" not in dict(model.named_parameters())
    loss = F.cross_entropy(model({"history_idx": torch.tensor([[0, 1, 2, 3]])}), torch.tensor([4]))
    loss.backward()
    assert model.text_project.weight.grad.abs().sum() > 0


def _config(tiny_model_dir, data_dir, tmp_path, *overrides):
    """experiment=sasrec_text on the test slice (the language model's settings are not SASRec's)."""
    base = tiny_overrides(tiny_model_dir, data_dir, tmp_path)
    kept = [o for o in base if not o.startswith("model.")]
    return compose_config("train", [*kept, "experiment=sasrec_text", *overrides])


def test_without_ids_each_item_is_its_text_alone():
    torch.manual_seed(0)
    text = torch.randn(6, 10)
    model = SASRec(
        n_items=6, max_len=4, dim=8, layers=1, heads=2, dropout=0.0, text=text, ids=False
    )
    assert model.item is None and not any(n.startswith("item.") for n in model.state_dict())
    torch.testing.assert_close(model.id_vectors()["items"], model.text_project(text))
    loss = F.cross_entropy(model({"history_idx": torch.tensor([[0, 1, 2, 3]])}), torch.tensor([4]))
    loss.backward()
    assert model.text_project.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the items' text"):
        SASRec(n_items=6, max_len=4, dim=8, ids=False)


def test_no_ids_and_no_text_is_refused_at_start_up(tiny_model_dir, data_dir, tmp_path):
    from promptrec.models.build import check_model

    with pytest.raises(ConfigError, match=r"model\.ids=false .* set model\.text_from"):
        check_model(
            _config(tiny_model_dir, data_dir, tmp_path, "model.text_from=null", "model.ids=false")
        )


@pytest.mark.slow
def test_sasrec_with_text_trains_end_to_end(tiny_model_dir, data_dir, tmp_path):
    cfg = _config(tiny_model_dir, data_dir, tmp_path, f"model.text_from={tiny_model_dir}")
    _, objects = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= saved["test/ndcg@10"] <= 1 and saved["model/kind"] == "sasrec"
    model = objects["module"].model
    assert model.text.shape == (objects["datamodule"].task.num_outputs, 32)  # the tiny BERT's width
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False)
    assert any(k.endswith("text_project.weight") for k in checkpoint["state_dict"])


def test_a_text_model_that_cannot_load_names_its_setting(tiny_model_dir, data_dir, tmp_path):
    cfg = _config(tiny_model_dir, data_dir, tmp_path, f"model.text_from={tmp_path / 'no-such'}")
    with pytest.raises(ConfigError, match=r"model\.text_from=") as error:
        train(cfg)
    assert "could not load" in str(error.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_results_tables_name_the_text_model():
    from promptrec.experiments.results import model_name

    text = pd.Series({"cfg/model.kind": "sasrec", "cfg/model.text_from": "org/all-MiniLM-L6-v2"})
    assert model_name(text) == "SASRec + item text (all-MiniLM-L6-v2)"
    alone = pd.Series({**text, "cfg/model.ids": False})
    assert model_name(alone) == "SASRec, item text only (all-MiniLM-L6-v2)"
    older = pd.Series({"cfg/model.kind": "sasrec", "cfg/model.text_from": float("nan")})
    assert model_name(older) == "SASRec"
