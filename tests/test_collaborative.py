"""Collaborative tokens: an ID baseline's run leaves its vectors; a language model run reads them
at marker tokens beside the titles, refuses another split's, and starts as the text-only model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import REPO, compose_config, tiny_overrides
from promptrec.data.examples import fold_of
from promptrec.errors import ConfigError
from promptrec.experiments.crossfit import crossfit
from promptrec.runtime.build import build_datamodule, build_module, load_trained_lm
from promptrec.runtime.config import validate
from promptrec.runtime.training import train
from promptrec.strategies.collaborative import ITEM_TOKEN, TARGET_TOKEN, USER_TOKEN


@pytest.fixture(scope="session")  # trained once per xdist worker that needs it
def mf_run(tiny_model_dir, data_dir, tmp_path_factory):
    """An MF baseline on the tiny slice (30 users): its run folder holds id_vectors.pt."""
    out = tmp_path_factory.mktemp("mf")
    base = [o for o in tiny_overrides(tiny_model_dir, data_dir, out) if not o.startswith("model.")]
    cfg = compose_config(
        "train",
        [*base, "experiment=baseline_mf", "trainer.max_epochs=2", "data.max_train_examples=null"],
    )  # every pair: folds split them
    metrics, objects = train(cfg)
    (out / "run" / ".hydra").mkdir()  # what promptrec-train saves (promptrec-crossfit reads it)
    OmegaConf.save(cfg, out / "run" / ".hydra" / "config.yaml")
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


# -- cross-fitting: a training pair reads vectors (and MF's score) from a run that never saw it ----


def test_folds_are_a_stable_partition_and_a_holdout_run_trains_without_its_fold():
    users = pd.Series([f"u{i % 50}" for i in range(4000)])
    items = pd.Series([f"i{i // 50}" for i in range(4000)])
    folds = fold_of(users, items, 5)
    assert folds.tolist() == fold_of(users.copy(), items.copy(), 5).tolist()  # same every call
    assert set(folds) == set(range(5)) and np.bincount(folds).min() > 600  # ~800 each


@pytest.fixture(scope="session")  # trained once per xdist worker that needs it
def crossfit_run(mf_run):
    """The MF run cross-fitted with 2 folds (two more MF trainings of the tiny slice)."""
    folder = mf_run[0]
    crossfit(folder, folds=2)
    return folder


def test_crossfit_trains_each_fold_without_its_pairs_and_saves_the_global_bias(
    mf_run, crossfit_run
):
    full = mf_run[2]["datamodule"].prepared.examples["train"]
    folds = fold_of(full["user_id"], full["item_id"], 2)
    for k in range(2):
        run = crossfit_run / "crossfit" / f"fold_{k}"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["data/train_examples"] == int((folds != k).sum()) < len(full)
        assert metrics["data/split_hash"] == mf_run[1]["data/split_hash"]  # the same split
        assert torch.load(run / "id_vectors.pt", weights_only=True)["bias"].shape == (1,)
    assert json.loads((crossfit_run / "crossfit" / "folds.json").read_text())["folds"] == 2


def test_a_training_pair_reads_its_fold_runs_score_and_a_test_pair_the_full_runs(
    crossfit_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, crossfit_run,
                    "prompt.collaborative.crossfit=true", "prompt.collaborative.score=true")  # fmt: skip
    datamodule = prepared_datamodule(cfg)
    prepared = datamodule.prepared

    def mf_score(run, user, item):  # the fold run's own model, as its checkpoint holds it
        state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
        ids = torch.load(run / "id_vectors.pt", weights_only=True)
        u, i = ids["user_ids"].index(user), ids["item_ids"].index(item)
        return float(state["model.bias"] + state["model.user_bias.weight"][u, 0]
                     + state["model.item_bias.weight"][i, 0]
                     + state["model.user.weight"][u] @ state["model.item.weight"][i])  # fmt: skip

    for which, rows in (("train", [0, 1, 2, 3]), ("test", [0, 1])):
        frame = prepared.examples[which]
        for row in rows:
            user, item = frame["user_id"].iloc[row], frame["item_id"].iloc[row]
            fold = int(fold_of(pd.Series([user]), pd.Series([item]), 2)[0])
            run = crossfit_run / "crossfit" / f"fold_{fold}" if which == "train" else crossfit_run
            got = float(prepared.datasets[which][row]["cf_score"])
            assert got == pytest.approx(mf_score(run, user, item), abs=1e-5)
    # at the start the model is the text-only model plus MF's score (weight 1, projector 0)
    module, _ = build_module(cfg, datamodule)
    scorer = module.model.eval()
    batch = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        with_score = scorer(batch)
        scorer.collaborative.score_weight.zero_()
        without = scorer(batch)
    torch.testing.assert_close(with_score, without + batch["cf_score"][:, None])


def test_modality_dropout_hides_the_id_signal_from_its_share_of_training_examples(
    crossfit_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, crossfit_run,
                    "prompt.collaborative.crossfit=true", "prompt.collaborative.score=true",
                    "prompt.collaborative.drop=0.5")  # fmt: skip
    datamodule = prepared_datamodule(cfg)
    module, _ = build_module(cfg, datamodule)
    scorer = module.model.eval()  # the backbone stays in eval mode: no dropout noise
    collaborative = scorer.collaborative
    batch = next(iter(datamodule.train_dataloader()))
    assert collaborative.seen(batch) is None  # evaluation: every example sees its ID signal
    torch.nn.init.normal_(collaborative.project[2].weight)  # so the vectors move the states
    collaborative.train()
    torch.manual_seed(0)
    seen = collaborative.seen(batch)
    assert 0 < int(seen.sum()) < len(seen)
    with torch.no_grad():
        torch.manual_seed(0)  # the same draw inside the forward pass
        mixed = scorer(batch)
        collaborative.eval()
        full = scorer(batch)
        collaborative.score_weight.zero_()
        torch.nn.init.zeros_(collaborative.project[2].weight)
        text = scorer(batch)
    torch.testing.assert_close(mixed[~seen], text[~seen])  # hidden: the text-only model
    torch.testing.assert_close(mixed[seen], full[seen])
    assert not torch.allclose(full[~seen], text[~seen])
    cfg.prompt.collaborative.drop = 1.0  # nothing would ever see the ID signal
    with pytest.raises(ConfigError, match=r"drop=1.0 must be a number in \[0, 1\)"):
        validate(cfg)


def test_a_score_without_crossfit_and_a_crossfit_never_run_are_refused(
    mf_run, tiny_model_dir, data_dir, tmp_path
):
    cfg = lm_config(
        tiny_model_dir, data_dir, tmp_path, mf_run[0], "prompt.collaborative.score=true"
    )
    with pytest.raises(ConfigError, match="needs prompt.collaborative.crossfit=true"):
        validate(cfg)
    fresh = tmp_path / "mf_copy"
    fresh.mkdir()
    shutil.copy(mf_run[0] / "id_vectors.pt", fresh / "id_vectors.pt")
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, fresh, "prompt.collaborative.crossfit=true")
    with pytest.raises(ConfigError, match="has no finished cross-fit"):
        build_datamodule(cfg)


def test_crossfit_refuses_one_fold_and_a_run_without_id_vectors(mf_run, tmp_path):
    with pytest.raises(ConfigError, match="at least 2 folds"):
        crossfit(mf_run[0], folds=1)
    language_model = tmp_path / "lm"  # a finished run folder that saved no vectors
    shutil.copytree(mf_run[0] / ".hydra", language_model / ".hydra")
    shutil.copy(mf_run[0] / "metrics.json", language_model / "metrics.json")
    with pytest.raises(ConfigError, match="holds no id_vectors.pt"):
        crossfit(language_model, folds=2)
    assert not (language_model / "crossfit").exists()  # nothing half-written


def test_diagnostics_split_a_score_model_into_its_text_and_mf_parts(
    crossfit_run, tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch
):
    """bench/collaborative_diagnostics.py reads a finished score=true run and its MF run."""
    cfg = lm_config(tiny_model_dir, data_dir, tmp_path, crossfit_run,
                    "prompt.collaborative.crossfit=true", "prompt.collaborative.score=true")  # fmt: skip
    train(cfg)
    (Path(cfg.paths.output_dir) / ".hydra").mkdir()
    OmegaConf.save(cfg, Path(cfg.paths.output_dir) / ".hydra" / "config.yaml")
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    from collaborative_diagnostics import main as diagnose

    diagnose([cfg.paths.output_dir, str(crossfit_run), "--data", str(data_dir / "ml-100k-atomic"),
              "--views"])  # fmt: skip
    said = capsys.readouterr().out
    for line in ("MF, cross-fitted, on training pairs: AUC 0.", "MF, full run, on test",
                 "learnt MF weight", "mix refit on validation", "text-only view (ID signal hidden)",
                 "text-only view + MF, mix refit on validation"):  # fmt: skip
        assert line in said, said
    # the checkpoint's own view, scored again, is the run's saved test score
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test/auc"]
    assert f"test: model AUC {saved:.4f}, text-only view" in said, said
