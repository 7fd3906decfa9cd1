"""Start-up checks of a run, free of torch: ``promptrec-train`` and ``promptrec-eval`` run them
before they load torch, Lightning and transformers (~7 s), so a mistyped value or a missing
checkpoint answers in about a second."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from promptrec.errors import ConfigError
from promptrec.runtime.config import OPTION_KEYS, on_own_schema, validate, validate_launch
from promptrec.runtime.resume import resume_config, run_to_resume
from promptrec.runtime.tracking import in_multirun, remove_startup_folder


def checked_start(cfg: DictConfig) -> tuple[DictConfig, Path | None]:
    """The run's config (a resumed run's own) once every start-up check passed, and the folder
    it resumes. Before anything is written: a bad value leaves no run folder behind."""
    try:
        resumed = run_to_resume(cfg)
        if resumed is not None:
            cfg = resume_config(cfg, resumed)
        validate(cfg)
        validate_launch(cfg, in_multirun())
    except ConfigError:
        remove_startup_folder(Path(cfg.paths.output_dir))
        raise
    return cfg, resumed


# What defines the model under test; taken from the training run unless use_run_config=false.
RUN_KEYS = ("data", "task", "prompt", "model", "tuning", "seed")


def resolve_checkpoint(cfg: DictConfig) -> DictConfig:
    """Accept a run folder as ``ckpt_path`` (its ``checkpoints/best.ckpt``); fail clearly if the
    checkpoint does not exist."""
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is required: the run to test, e.g. `promptrec-eval "
            "ckpt_path=outputs/train/runs/<run>` (a run folder written by promptrec-train, or its "
            "checkpoints/best.ckpt)."
        )
    path = Path(cfg.ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path!r} does not exist. Point it at a run folder written by "
            "promptrec-train (outputs/train/runs/<run>) or at its checkpoints/best.ckpt."
        )
    cfg = cfg.copy()
    cfg.ckpt_path = str(path)
    return cfg


def with_run_config(cfg: DictConfig) -> DictConfig:
    """Replace RUN_KEYS with the checkpoint's own training config (``<run>/.hydra/config.yaml``),
    and test in the run's own precision (a bf16 run's scores differ from fp32 ones in the 3rd
    decimal; the device stays today's)."""
    saved = Path(cfg.ckpt_path).resolve().parent.parent / ".hydra" / "config.yaml"
    if not cfg.use_run_config or not saved.is_file():
        return cfg
    run_cfg, cfg = OmegaConf.load(saved), cfg.copy()
    for key in RUN_KEYS:  # replace, not merge: no key of today's defaults leaks into the run's
        schema = OmegaConf.get_type(cfg, key)
        if key in OPTION_KEYS:  # its own option's schema, whatever today's defaults name
            cfg[key] = on_own_schema(key, run_cfg[key])
        elif OmegaConf.is_config(cfg[key]) and schema is not None and schema is not dict:
            cfg[key] = OmegaConf.merge(OmegaConf.structured(schema), run_cfg[key])
        else:
            cfg[key] = run_cfg[key]
    precision = OmegaConf.select(run_cfg, "trainer.precision")
    if precision is not None:  # the numerics it was tested in
        if cfg.get("trainer") is None:  # explain, robustness: no trainer, but the same numerics
            cfg.trainer = {"precision": precision}
        else:
            cfg.trainer.precision = precision
    return cfg


def checked_eval_start(cfg: DictConfig) -> DictConfig:
    """An evaluation's config: the checkpoint found and its run's own settings, checked; a
    mistake removes the folder Hydra made for it."""
    try:
        cfg = with_run_config(resolve_checkpoint(cfg))
        validate(cfg)
    except ConfigError:
        remove_startup_folder(Path(cfg.paths.output_dir))
        raise
    return cfg
