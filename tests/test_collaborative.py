"""Collaborative tokens: an ID baseline's run leaves its vectors; a language model run reads them
at marker tokens beside the titles, refuses another split's, and starts as the text-only model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import open_dict

from conftest import compose_config, tiny_overrides
from promptrec.errors import ConfigError
from promptrec.runtime.build import build_datamodule, build_module, load_trained_lm
from promptrec.runtime.config import validate
from promptrec.runtime.training import train
from promptrec.strategies.collaborative import ITEM_TOKEN, TARGET_TOKEN, USER_TOKEN


@pytest.fixture(scope="module")
def mf_run(tiny_model_dir, data_dir, tmp_path_factory):
    """An MF baseline on the tiny slice (30 users): its run folder holds id_vectors.pt."""
    out = tmp_path_factory.mktemp("mf")
    base = [o for o in tiny_overrides(tiny_model_dir, data_dir, out) if not o.startswith("model.")]
    cfg = compose_config("train", [*base, "experiment=baseline_mf", "trainer.max_epochs=2"])
    metrics, objects = train(cfg)
    return out / "run", metrics, objects


def lm_config(tiny_model_dir, data_dir, tmp_path, run, *extra):
    return compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path),
                                    "prompt=collaborative", f"prompt.collaborative.run={run}", *extra])  # fmt: skip


def prepared_datamodule(cfg):
    validate(cfg)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    return datamodule


def test_an_id_run_saves_its_tested_vectors_with_ids_and_split(mf_run):
    folder, metrics, objects = mf_run
    saved = torch.load(folder / "id_vectors.pt", weights_only=True)
    model = objects["module"].model
    assert saved["split_hash"] == metrics["data/split_hash"] and saved["model"] == "mf"
    assert saved["user_ids"] == list(objects["datamodule"].prepared.catalog.user_ids)
    # the vector and the bias of each user and item: their dot product plus the global bias is
    # the MF score itself
    u, i = 3, 7
    score = (
        saved["users"][u, :-1] @ saved["items"][i, :-1]
        + saved["users"][u, -1]
        + saved["items"][i, -1]
    )
    expected = model.score(torch.tensor([u]), torch.tensor([i])) - model.bias
    assert float(score) == pytest.approx(float(expected), abs=1e-5)


def test_markers_sit_beside_each_title_and_rows_name_the_shown_items(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0])
    datamodule = prepared_datamodule(cfg)
    prepared = datamodule.prepared
    example = prepared.examples["test"].iloc[0]
    assert example["text"].startswith(USER_TOKEN) and example["text"].count(TARGET_TOKEN) == 1
    assert example["text"].count(ITEM_TOKEN) == example["n_history_kept"] > 0
    row = prepared.datasets["test"][0]
    saved = torch.load(mf_run[0] / "id_vectors.pt", weights_only=True)
    shown = list(example["history_items"])[-int(example["n_history_kept"]) :]
    assert [saved["item_ids"][r - 1] for r in row["cf_history"].tolist() if r] == shown
    assert saved["item_ids"][int(row["cf_target"]) - 1] == example["item_id"]
    assert saved["user_ids"][int(row["cf_user"]) - 1] == example["user_id"]


def test_the_projector_starts_at_zero_so_training_starts_from_the_text_model(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0])
    datamodule = prepared_datamodule(cfg)
    module, _ = build_module(cfg, datamodule)
    batch = next(iter(datamodule.test_dataloader()))
    scorer = module.model.eval()  # no dropout: two passes must agree
    with torch.no_grad():
        with_ids = scorer(batch)
        alone = scorer.backbone(inputs_embeds=scorer.lower(batch["input_ids"], batch["attention_mask"])
                                if scorer.lower is not None else None,
                                input_ids=None if scorer.lower is not None else batch["input_ids"],
                                attention_mask=batch["attention_mask"]).logits  # fmt: skip
    torch.testing.assert_close(with_ids, alone)
    trainable = {n for n, p in scorer.named_parameters() if p.requires_grad}
    assert {"collaborative.project.0.weight", "collaborative.project.2.weight"} <= trainable
    assert "collaborative.items.weight" not in trainable  # train_ids=false: the tables stay


def test_training_moves_the_projector_and_changes_the_scores(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0], "tuning.lr=1e-3")
    metrics, objects = train(cfg)
    projector = objects["module"].model.collaborative.project[2].weight
    assert projector.abs().sum() > 0 and 0 <= metrics["test/auc"] <= 1
    # the commands that edit prompts say they cannot rebuild ID rows, instead of a KeyError
    kept = [o for o in tiny_overrides(tiny_model_dir, data_dir, tmp_path / "x")
            if o.startswith(("model.", "paths.", "data.", "tuning."))]  # fmt: skip
    explain = compose_config("explain", [*kept, f"ckpt_path={tmp_path / 'run'}", "prompt=collaborative",
                                         f"prompt.collaborative.run={mf_run[0]}"])  # fmt: skip
    with pytest.raises(ConfigError, match="promptrec-explain does not support collaborative"):
        load_trained_lm(explain, "promptrec-explain")


def test_another_splits_vectors_and_a_missing_run_are_refused(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0], "data.max_users=40")
    with pytest.raises(ConfigError, match="was trained on split .* this run uses split"):
        build_datamodule(cfg).prepare_data()
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="holds no id_vectors.pt"):
        validate(cfg)
        build_datamodule(cfg)
    cfg = compose_config(
        "train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "prompt=collaborative"]
    )
    with pytest.raises(ConfigError, match="prompt.collaborative.run is not set"):
        validate(cfg)
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0])
    with open_dict(cfg):
        cfg.prompt.strategy = "mean_pool"
    with pytest.raises(ConfigError, match="works with the classifier strategy"):
        validate(cfg)


def test_new_parts_learn_at_tuning_new_lr_and_the_rest_at_tuning_lr(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, mf_run[0], "tuning.new_lr=0.001")
    datamodule = prepared_datamodule(cfg)
    module, _ = build_module(cfg, datamodule)
    module.trainer = SimpleNamespace(estimated_stepping_batches=10)
    optimizer = module.configure_optimizers()["optimizer"]
    old, new = optimizer.param_groups
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert old["initial_lr"] == cfg.tuning.lr and new["initial_lr"] == 0.001  # before warm-up
    assert {names[id(p)] for p in new["params"]} == {
        "backbone.classifier.weight",
        "backbone.classifier.bias",
        *(f"collaborative.project.{k}.{w}" for k in (0, 2) for w in ("weight", "bias")),
    }
    assert len(old["params"]) + len(new["params"]) == sum(
        p.requires_grad for p in module.model.parameters()
    )
