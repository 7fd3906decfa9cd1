"""``model.init_from``: a run starts from a finished run's trained weights, and refuses a source of
another split, setting or head."""

from __future__ import annotations

import shutil

import pytest
import torch
from omegaconf import OmegaConf

from promptrec.errors import ConfigError
from promptrec.models.warm_start import warm_start
from promptrec.runtime.build import build_datamodule, build_module, load_weights


def source_copy(trained_run, tmp_path):
    """What model.init_from reads of a finished run (config, metrics, best checkpoint), copied so
    a test may edit it without touching the shared run."""
    folder = trained_run("preference")
    copy = tmp_path / "source"
    shutil.copytree(folder / ".hydra", copy / ".hydra")
    shutil.copy(folder / "metrics.json", copy / "metrics.json")
    (copy / "checkpoints").mkdir()
    shutil.copy(folder / "checkpoints" / "best.ckpt", copy / "checkpoints" / "best.ckpt")
    return copy


def config_of(source, **changes):
    cfg = OmegaConf.load(source / ".hydra" / "config.yaml")
    cfg.model.init_from = str(source)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def test_a_warm_started_model_scores_as_the_run_it_starts_from(trained_run, tmp_path):
    source = source_copy(trained_run, tmp_path)
    cfg = config_of(source)
    datamodule = build_datamodule(cfg)
    started = build_module(cfg, datamodule)[0].eval()
    cfg.model.init_from = None
    fresh = build_module(cfg, datamodule)[0].eval()
    loaded = load_weights(build_module(cfg, datamodule)[0], source / "checkpoints" / "best.ckpt")
    batch = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(started(batch), loaded(batch))
        assert not torch.allclose(fresh(batch), loaded(batch))  # the copy is what changed it
    saved = torch.load(source / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    own = started.state_dict()
    assert saved and all(torch.equal(own[k], v) for k, v in saved.items())
    # the start line names the source instead of a "new classification head"
    assert started.model.started_from == str(source)
    assert not any(getattr(m, "fresh_parts", None) for m in started.modules())
    assert any(getattr(m, "fresh_parts", None) for m in fresh.modules())


def test_a_source_of_another_split_setting_or_head_is_refused(trained_run, tmp_path):
    source = source_copy(trained_run, tmp_path)
    cfg = config_of(source, **{"data.max_users": 12})  # another slice: another split
    datamodule = build_datamodule(cfg)
    with pytest.raises(ConfigError, match=r"was trained on split \w+, this run uses split"):
        build_module(cfg, datamodule)
    cfg = config_of(source, **{"tuning.freeze_layers": 1})
    with pytest.raises(
        ConfigError,
        match="trained with tuning.freeze_layers=0, this run has tuning.freeze_layers=1",
    ):
        build_module(cfg, build_datamodule(cfg))
    cfg = config_of(source)
    datamodule = build_datamodule(cfg)
    checkpoint = source / "checkpoints" / "best.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"]["model.extra.weight"] = torch.zeros(2)  # a part this model lacks
    torch.save(state, checkpoint)
    with pytest.raises(ConfigError, match=r"holds extra.weight \(2,\), this model has no such"):
        build_module(cfg, datamodule)
    checkpoint.unlink()
    with pytest.raises(ConfigError, match=r"has no checkpoints/best.ckpt"):
        build_module(cfg, datamodule)


def test_a_table_this_run_widened_gets_the_rows_both_have(tmp_path):
    """Collaborative marker tokens add vocabulary rows: the source's rows are copied, the new ones
    keep their own start."""
    source, widened = torch.nn.Embedding(5, 3), torch.nn.Embedding(7, 3)
    new_rows = widened.weight[5:].detach().clone()
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "best.ckpt")  # fmt: skip
    assert warm_start(widened, tmp_path / "best.ckpt") == {"copied": 0, "widened": 1}
    torch.testing.assert_close(widened.weight[:5], source.weight)
    torch.testing.assert_close(widened.weight[5:], new_rows)
    with pytest.raises(ConfigError, match=r"holds weight \(5, 3\), this model has shape \(4, 3\)"):
        warm_start(torch.nn.Embedding(4, 3), tmp_path / "best.ckpt")  # fewer rows: not this model's
