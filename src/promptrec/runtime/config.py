"""Typed schemas for the settings users type most, registered in Hydra's ConfigStore.

A wrong type (``data.batch_size=abc``) or an unknown key (``data.bach_size=8``) fails at start-up
with Hydra's own message; :func:`validate` then checks ranges a type cannot express.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from promptrec.errors import ConfigError
from promptrec.metrics.names import direction
from promptrec.models.settings import MODEL_SCHEMAS, TUNING_SCHEMAS
from promptrec.tasks.settings import TASK_SCHEMAS


def config_dir() -> str:
    """The Hydra config folder: packaged copy in an installed wheel, else the repository's conf/."""
    package = Path(__file__).resolve().parents[1]  # src/promptrec (or site-packages/promptrec)
    packaged = package / "conf"
    return str(packaged if packaged.is_dir() else package.parents[1] / "conf")


@dataclass
class DataConfig:
    name: str = "ml-100k"  # dataset name; for source=atomic the file stem (<name>.inter, …)
    source: str = "recbole"  # recbole | grouplens | atomic
    path: str | None = None  # atomic: folder holding the files
    data_dir: str = MISSING  # where fetched sources live
    cache_dir: str = MISSING  # where splits and token caches live
    max_users: int | None = None  # keep the first N users (quick runs, tests)
    split: str = "loo"  # loo | temporal | random | cold_user | cold_item
    split_ratios: list[float] = field(
        default_factory=lambda: [0.8, 0.1, 0.1]
    )  # not loo: train/val/test
    split_seed: int = 0  # random, cold_user, cold_item
    few_shot: int | None = None  # train on K examples (drawn once per seed, saved), validate on K
    min_user_interactions: int = 3  # loo: fewer → the user's rows stay in train only
    merge_duplicate_items: bool = False  # one id per film listed twice (data/duplicates.py)
    history_len: int = 10  # most recent history items offered to the prompt
    max_tokens: int = 128  # token budget; history is cut oldest-first to fit
    max_train_examples: int | None = None  # seeded cap on training examples (CPU runs)
    holdout_fold: list[int] | None = None  # [k, K]: train without fold k of K (promptrec-crossfit)
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    length_grouped: bool = True  # batches of similar prompt lengths: less padding, same epochs
    pin_memory: str = "auto"  # auto (on with a CUDA accelerator) | true | false


@dataclass
class SoftPromptConfig:
    n_tokens: int = 10  # trainable vectors, one per [SOFT] marker
    position: str = "prefix"  # prefix: N markers before the text | inline: the template places them
    init_text: str | None = (
        None  # start from this text's embeddings (null: random vocabulary words)
    )


@dataclass
class CollaborativeConfig:
    run: str = MISSING  # an ID baseline's run folder (its id_vectors.pt), trained on this split
    train_ids: bool = False  # true: the ID vectors fine-tune too; false: only the projector learns
    crossfit: bool = False  # true: training pairs read promptrec-crossfit's fold runs' vectors
    score: bool = False  # true: the ID model's own score is added to the output (needs crossfit)
    drop: float = 0.0  # share of training examples that hide the ID signal (modality dropout)


@dataclass
class PromptConfig:
    name: str = MISSING
    templates: dict[str, str] = MISSING  # task name → Jinja2 template (fields: docs/prompts.md)
    strategy: str | None = None  # classifier | cloze | two_tower | mean_pool …; null: implied
    description: str = ""
    # cloze: task name → label words per class (a list of word lists), or "titles" for next_item
    verbalizer: dict[str, Any] | None = None
    soft: SoftPromptConfig | None = None  # continuous prompt vectors (soft / hybrid strategies)
    collaborative: CollaborativeConfig | None = None  # an ID model's vectors at marker tokens
    pool: dict[str, list[str]] | None = None  # task → paraphrased templates (indices 1, 2, …)
    seen: list[int] | None = None  # templates trained on (0 = templates.<task>); null = [0]


@dataclass
class _RunConfig:
    task_name: str = MISSING
    seed: int = 42
    tags: list[str] = field(default_factory=list)
    ckpt_path: str | None = None
    data: DataConfig = MISSING
    task: Any = MISSING  # on its task's own schema (tasks/<name>.py: Config)
    prompt: PromptConfig = MISSING
    model: Any = MISSING  # on its kind's schema (models/settings.py)
    tuning: Any = MISSING  # on its mode's schema (models/settings.py)
    optimizer: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None


@dataclass
class TrainConfig(_RunConfig):
    train: bool = True  # fit; false = only test (needs ckpt_path)
    test: bool = True  # test the best checkpoint after fitting


@dataclass
class EvalConfig(_RunConfig):
    use_run_config: bool = True  # data/task/prompt/model/tuning from the checkpoint's run


@dataclass
class PromptsConfig(_RunConfig):
    split: str = "test"  # which split to show and summarise
    n_examples: int = 3


@dataclass
class ExplainConfig(EvalConfig):
    split: str = "test"  # whose examples to explain
    users: list[str] = field(default_factory=list)  # empty: the first n_users of the split
    n_users: int = 3


@dataclass
class PerturbationConfig:
    name: str = MISSING  # shuffle_history | drop_history
    fraction: float = 0.0  # drop_history: share of history items left out


@dataclass
class RobustnessConfig(EvalConfig):
    perturbations: list[PerturbationConfig] = field(default_factory=list)


# group → (the key that names the option, option → its schema)
OPTION_KEYS = {"task": "name", "model": "kind", "tuning": "mode"}
OPTION_SCHEMAS = {"task": TASK_SCHEMAS,
                  "model": MODEL_SCHEMAS, "tuning": TUNING_SCHEMAS}  # fmt: skip


def on_own_schema(group: str, node) -> DictConfig:
    """A saved ``task``, ``model`` or ``tuning`` node on the schema of the option it names. Run
    folders written before each option had its own schema carry every option's fields; the ones
    this option does not have are dropped."""
    option = node[OPTION_KEYS[group]]
    if group == "model" and option == "mf" and node.get("objective") == "bpr":
        raise ConfigError(
            "this run used model.kind=mf with model.objective=bpr, a biased MF with unfiltered "
            "negatives that PromptRec has since replaced by the textbook BPR (model.kind=bpr). Its settings "
            "cannot rebuild it; train it again with `promptrec-train experiment=baseline_bpr`."
        )
    schemas = OPTION_SCHEMAS[group]
    if option not in schemas:
        raise ConfigError(
            f"{group}.{OPTION_KEYS[group]}={option!r} is unknown; choose one of {sorted(schemas)}."
        )
    known = {f.name for f in dataclasses.fields(schemas[option])}
    saved = OmegaConf.to_container(node, resolve=False)
    kept = {k: v for k, v in saved.items() if k in known}
    return OmegaConf.merge(OmegaConf.structured(schemas[option]), kept)


def register_resolvers() -> None:
    """``${metric_direction:val/auc}`` gives task.monitor_mode the monitored metric's direction;
    ``${optuna_direction:max}`` turns it into Optuna's. Registered on import, because every
    saved run config (resume, reproduce, eval) names them."""
    OmegaConf.register_new_resolver(
        "optuna_direction", lambda mode: {"max": "maximize", "min": "minimize"}[mode], replace=True
    )
    OmegaConf.register_new_resolver(
        "metric_direction", lambda metric: direction(metric) or "unknown", replace=True
    )


register_resolvers()


def register_configs() -> None:
    """Schemas for Hydra: the run's, and one per option of each group (``task/<name>_schema``,
    ``model/<kind>_schema``, ``tuning/<mode>_schema``) that the option's YAML starts from."""
    register_resolvers()
    cs = ConfigStore.instance()
    for group, schemas in OPTION_SCHEMAS.items():
        for name, schema in schemas.items():
            cs.store(group=group, name=f"{name}_schema", node=schema)
    cs.store(name="prompts_schema", node=PromptsConfig)
    cs.store(name="explain_schema", node=ExplainConfig)
    cs.store(name="robustness_schema", node=RobustnessConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)


def _check(ok: bool, field_name: str, value, rule: str) -> None:
    if not ok:
        raise ConfigError(
            f"{field_name}={value!r} is invalid: it must be {rule}. Fix it on the command line or in conf/."
        )


def validate(cfg) -> None:
    """Ranges and combinations the schema's types cannot express, checked before anything is
    written; raises ConfigError naming the field. Each part's owner checks its own part (those
    import torch: loaded after the checks of this module, so that a mistyped data, trainer or
    run value answers in about a second, and ``--help`` never pays for them)."""
    _check_data(cfg.data)
    if cfg.get("trainer") is not None:
        _check_trainer(cfg.trainer)
    if cfg.get("callbacks") is not None:
        _check_callbacks(cfg.callbacks)
    _check_run(cfg)
    from promptrec.models.build import check_model
    from promptrec.models.tuning import check_tuning
    from promptrec.strategies import strategy_class
    from promptrec.tasks import build_task

    build_task(cfg.task)  # its own checks (heads, cut-offs, options) run in its constructor
    check_model(cfg)
    check_tuning(cfg.tuning)
    if cfg.model.kind == "lm":  # the prompt: its template for this task, its strategy's checks
        _check_prompt(cfg)
        strategy_class(cfg).check(cfg)


def _check_data(d) -> None:
    for name in ("batch_size", "eval_batch_size", "max_tokens"):
        _check(d[name] > 0, f"data.{name}", d[name], "a positive integer")
    _check(d.history_len >= 0, "data.history_len", d.history_len, "≥ 0")
    _check(d.num_workers >= 0, "data.num_workers", d.num_workers, "≥ 0")
    _check(str(d.pin_memory).lower() in ("auto", "true", "false"), "data.pin_memory",
           d.pin_memory, "auto, true or false")  # fmt: skip
    for name in ("max_users", "max_train_examples", "few_shot"):
        _check(
            d[name] is None or d[name] > 0, f"data.{name}", d[name], "null or a positive integer"
        )
    fold = d.get("holdout_fold")
    _check(fold is None or (len(fold) == 2 and fold[1] >= 2 and 0 <= fold[0] < fold[1]),
           "data.holdout_fold", fold, "null or [k, K] with K ≥ 2 and 0 ≤ k < K")  # fmt: skip


PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
              "32", "bf16", "16", "64", 32, 16, 64)  # fmt: skip


def _whole(value, least: int, *also) -> bool:
    """An integer ≥ ``least`` (or one of ``also``), not a bool or a string that looks like one."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    return (whole and value >= least) or value in also


def _check_callbacks(callbacks) -> None:
    keep = callbacks.get("keep_checkpoints", "both")
    _check(keep in ("best", "last", "both", "none"), "callbacks.keep_checkpoints", keep,
           "best, last, both or none")  # fmt: skip


def _check_trainer(t) -> None:
    """The Trainer settings users type, checked before the model loads (Lightning would raise a
    TypeError deep in its constructor, after the slow part)."""
    _check(_whole(t.get("max_epochs", 1), 1, -1), "trainer.max_epochs", t.get("max_epochs"),
           "a positive integer (-1: no limit)")  # fmt: skip
    _check(_whole(t.get("max_steps", -1), 1, -1), "trainer.max_steps", t.get("max_steps"),
           "a positive integer (-1: the epochs decide)")  # fmt: skip
    devices = t.get("devices", "auto")
    is_list = OmegaConf.is_list(devices) and all(_whole(d, 0) for d in devices)
    _check(_whole(devices, 1, -1, "auto") or is_list, "trainer.devices", devices,
           "a positive integer (devices per node), -1 or auto (all), or a list of device indices")  # fmt: skip
    _check(_whole(t.get("num_nodes", 1), 1), "trainer.num_nodes", t.get("num_nodes"),
           "a positive integer")  # fmt: skip
    _check(t.get("precision", "auto") in PRECISIONS, "trainer.precision", t.get("precision"),
           f"one of {', '.join(map(str, PRECISIONS[:7]))}")  # fmt: skip
    _check(_whole(t.get("accumulate_grad_batches", 1), 1), "trainer.accumulate_grad_batches",
           t.get("accumulate_grad_batches"), "a positive integer")  # fmt: skip
    _check(_whole(t.get("log_every_n_steps", 1), 1), "trainer.log_every_n_steps",
           t.get("log_every_n_steps"), "a positive integer")  # fmt: skip
    clip = t.get("gradient_clip_val")
    _check(clip is None or (isinstance(clip, (int, float)) and not isinstance(clip, bool)
                            and clip >= 0), "trainer.gradient_clip_val", clip,
           "null (no clipping) or a number ≥ 0")  # fmt: skip
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        limit = t.get(name, 1.0)
        share = isinstance(limit, float) and 0.0 < limit <= 1.0
        _check(share or _whole(limit, 1), f"trainer.{name}", limit,
               "a share of the batches in (0, 1.0] or a number of batches ≥ 1")  # fmt: skip


def _check_run(cfg) -> None:
    _check(cfg.model.kind != "lm" or bool(cfg.model.name_or_path), "model.name_or_path",
           cfg.model.get("name_or_path"), "set for a language model")  # fmt: skip
    if cfg.model.get("compile"):
        import torch

        known = torch.compiler.list_backends(exclude_tags=())  # debugging ones (eager) too
        _check(cfg.model.compile in known, "model.compile", cfg.model.compile,
               f"null or a torch.compile backend ({', '.join(torch.compiler.list_backends())}, "
               "or eager to debug)")  # fmt: skip
    if cfg.model.get("attention") is not None:
        _check(cfg.model.attention in ("eager", "sdpa"), "model.attention", cfg.model.attention,
               "null (transformers' default), eager or sdpa")  # fmt: skip
    _check(cfg.tuning.lr > 0, "tuning.lr", cfg.tuning.lr, "a positive number")
    _check(0 <= cfg.tuning.warmup_ratio < 1, "tuning.warmup_ratio", cfg.tuning.warmup_ratio,
           "in [0, 1)")  # fmt: skip
    _check(cfg.task.monitor_mode in ("min", "max"), "task.monitor_mode", cfg.task.monitor_mode,
           f"'min' or 'max' (task.monitor={cfg.task.monitor} has no known direction: set it)")  # fmt: skip


def _check_prompt(cfg) -> None:
    """A prompt YAML may leave out tasks it does not serve; using it with one fails here."""
    task, prompt = cfg.task.name, cfg.prompt
    if task not in prompt.templates:
        served = sorted(k for k in prompt.templates if k != "item")
        raise ConfigError(
            f"prompt={prompt.name} has no template for task={task} (it serves: "
            f"{', '.join(served)}). Choose a prompt that serves task={task} (e.g. prompt=question), "
            f"or add prompt.templates.{task} to conf/prompt/{prompt.name}.yaml."
        )


def validate_launch(cfg, multirun: bool) -> None:
    """Strategies that cannot work the way the run was launched. Lightning's ``ddp`` re-runs the
    command line once per extra device; inside a Hydra multirun each copy would start its own
    sweep (Optuna would even give the ranks different hyperparameters). A cluster that starts
    every rank itself (SLURM tasks, torchrun) needs no relaunch, so it is allowed."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    relaunches = (
        strategy.startswith("ddp") and "spawn" not in strategy and "notebook" not in strategy
    )
    ranks_started_outside = (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    )
    if multirun and relaunches and not ranks_started_outside:
        raise ConfigError(
            f"trainer.strategy={strategy} cannot run inside a Hydra multirun: Lightning relaunches "
            "the command line for each extra device, and each copy would start the whole sweep "
            "again. Use trainer=ddp_spawn (or trainer.strategy=ddp_spawn) for sweeps, or launch "
            "the ranks yourself (SLURM with ntasks-per-node = trainer.devices, or torchrun)."
        )
