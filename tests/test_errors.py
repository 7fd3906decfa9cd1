"""Bad input → one paragraph naming the field and the fix, a non-zero exit, nothing that looks done.

In-process tests call ``train(cfg)`` and check the error and the run folder; the command-line
tests check what a user sees: the message, no traceback, the exit code.
(docs/reliability.md lists every case with its test.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict

from conftest import compose_config, run, tiny, tiny_overrides
from promptrec.errors import ConfigError, DataError, PromptRecError
from promptrec.runtime.training import train


def assert_not_finished(run_dir: Path) -> None:
    """No run folder, or one whose run.json says failed; never metrics.json or a best checkpoint."""
    if not run_dir.exists():
        return
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "checkpoints" / "best.ckpt").exists()
    record = run_dir / "run.json"
    assert not record.exists() or json.loads(record.read_text())["status"] == "failed"


def fails(cfg, error: type[PromptRecError], *needles: str) -> str:
    with pytest.raises(error) as info:
        train(cfg)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert "\n" not in message.strip()  # one paragraph
    assert_not_finished(Path(cfg.paths.output_dir))
    return message


def set_key(cfg, key: str, value) -> None:
    with open_dict(cfg):
        node = cfg
        *parents, last = key.split(".")
        for name in parents:
            node = node[name]
        node[last] = value


# -- config values --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,value,needles",
    [
        ("data.batch_size", -4, ["data.batch_size=-4", "positive integer"]),
        ("tuning.lr", 0.0, ["tuning.lr=0.0", "positive number"]),
        ("data.history_len", -1, ["data.history_len=-1", "≥ 0"]),
        ("model.compile", "warp", ["model.compile='warp'", "inductor"]),
        ("trainer.max_epochs", "two", ["trainer.max_epochs='two'", "positive integer"]),
        ("trainer.max_steps", 0, ["trainer.max_steps=0", "-1"]),
        ("trainer.devices", 0, ["trainer.devices=0", "auto"]),
        ("trainer.precision", "bf15", ["trainer.precision='bf15'", "bf16-mixed"]),
        ("trainer.accumulate_grad_batches", 0.5, ["trainer.accumulate_grad_batches=0.5"]),
        ("trainer.gradient_clip_val", -1.0, ["trainer.gradient_clip_val=-1.0", "≥ 0"]),
        ("trainer.limit_train_batches", 1.5, ["trainer.limit_train_batches=1.5", "(0, 1.0]"]),
        ("ckpt_path", "/nonexistent/best.ckpt", ["/nonexistent/best.ckpt", "does not exist"]),
        ("model.init_from", "/nonexistent/run", ["model.init_from='/nonexistent/run'",
                                                 "has no .hydra/config.yaml"]),
    ],
)  # fmt: skip
def test_bad_values_name_the_field(train_cfg, key, value, needles):
    set_key(train_cfg, key, value)
    fails(train_cfg, ConfigError, *needles)


def test_k_must_be_positive(tiny_model_dir, data_dir, tmp_path):
    cfg = compose_config(
        "train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "task=next_item", "task.ks=[0,10]"]
    )  # fmt: skip
    fails(cfg, ConfigError, "task.ks=[0, 10]", "positive cut-offs")


# -- prompts ----------------------------------------------------------------------------------------
def test_template_with_an_unknown_field(train_cfg):
    train_cfg.prompt.templates.preference = "{{ user.favourite_colour }} {{ target.title }}"
    fails(train_cfg, ConfigError, "unknown field 'user.favourite_colour'")


def test_verbalizer_word_missing_from_the_vocabulary(tiny_model_dir, data_dir, tmp_path):
    cfg = compose_config(
        "train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "prompt=cloze"]
    )
    cfg.prompt.verbalizer.preference = [["no"], ["ⳬⳬⳬ"]]  # Coptic letters: [UNK] in BERT's vocab
    fails(cfg, ConfigError, "prompt.verbalizer.preference", "'ⳬⳬⳬ'", "[UNK]")


# -- data files -------------------------------------------------------------------------------------
@pytest.fixture
def atomic_copy(atomic_dir, tmp_path) -> Path:
    folder = tmp_path / "atomic"
    shutil.copytree(atomic_dir, folder)
    return folder


def atomic_cfg(tiny_model_dir, data_dir, tmp_path, folder: Path):
    overrides = [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "data.source=atomic",
                 f"data.path={folder}"]  # fmt: skip
    return compose_config("train", overrides)


def rewrite_inter(folder: Path, edit) -> None:
    path = folder / "ml-100k.inter"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize(
    "edit,needles",
    [
        (lambda lines: [], ["ml-100k.inter", "has no rows"]),
        (lambda lines: lines[:1], ["ml-100k.inter", "has no rows"]),
        (lambda lines: [line.rsplit("\t", 1)[0] for line in lines], ["lacks column(s) ['timestamp']"]),
        (lambda lines: [*lines[:5], "1\t2\tfive\t3", *lines[5:]], ["'rating'", "'five'"]),
        (lambda lines: [*lines[:5], "1\t2\t5\tyesterday", *lines[5:]], ["'timestamp'", "'yesterday'"]),
        (lambda lines: [*lines[:5], lines[3], *lines[5:]], ["duplicate", "row"]),
    ],
    ids=["empty-file", "header-only", "missing-column", "rating-text", "timestamp-text", "duplicates"],
)  # fmt: skip
def test_malformed_interaction_files(
    tiny_model_dir, data_dir, tmp_path, atomic_copy, edit, needles
):
    rewrite_inter(atomic_copy, edit)
    cfg = atomic_cfg(tiny_model_dir, data_dir, tmp_path, atomic_copy)
    fails(cfg, DataError, *needles)


def test_missing_data_file(tiny_model_dir, data_dir, tmp_path, atomic_copy):
    (atomic_copy / "ml-100k.item").unlink()
    cfg = atomic_cfg(tiny_model_dir, data_dir, tmp_path, atomic_copy)
    fails(cfg, DataError, "ml-100k.item", "does not exist")


# -- models -----------------------------------------------------------------------------------------
def test_model_path_that_does_not_exist(train_cfg, tmp_path):
    train_cfg.model.name_or_path = str(tmp_path / "no-such-model")
    fails(train_cfg, ConfigError, "model.name_or_path", "no-such-model")


def test_model_that_is_not_bert_family(train_cfg, tmp_path):
    folder = tmp_path / "gpt2-like"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    train_cfg.model.name_or_path = str(folder)
    fails(train_cfg, ConfigError, "model.name_or_path", "gpt2", "BERT-family")


def test_tuning_target_modules_not_in_the_model(tiny_model_dir, data_dir, tmp_path):
    cfg = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), "tuning=lora",
                                   "tuning.lora.target_modules=[q_proj,v_proj]"])  # fmt: skip
    fails(cfg, ConfigError, "tuning.lora.target_modules", "query")


@pytest.mark.slow
@pytest.mark.parametrize(
    "changed,needle",
    [("tuning=lora", "weights this model lacks"), ("task=next_item", "of another shape (e.g. model.backbone.classifier")],
)  # fmt: skip
def test_checkpoint_from_another_config(tiny_model_dir, data_dir, tmp_path, changed, needle):
    """A full fine-tune's checkpoint, loaded into a LoRA model or a next-item model."""
    trained = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path / "a"),
                                       "test=false"])  # fmt: skip
    train(trained)
    ckpt = tmp_path / "a" / "run" / "checkpoints" / "best.ckpt"
    other = compose_config("train", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path / "b"),
                                     changed, "train=false", f"ckpt_path={ckpt}"])  # fmt: skip
    fails(other, ConfigError, "ckpt_path", "another task, model or tuning mode", needle)


# -- what a user sees on the command line ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "override,needles",
    [
        ("tuning=lorra", ["lorra", "Available options", "lora"]),
        ("data.bach_size=8", ["bach_size"]),
        ("tuning.lr=fast", ["tuning.lr", "fast"]),
        ("data.batch_size=-4", ["data.batch_size=-4 is invalid"]),
        ("trainer.max_epochs=two", ["trainer.max_epochs='two' is invalid"]),
        ("ckpt_path=/nonexistent/best.ckpt", ["/nonexistent/best.ckpt", "does not exist"]),
    ],
)  # fmt: skip
def test_command_line_errors_are_one_message_without_traceback(tmp_path, override, needles):
    done = run(["promptrec-train", override], tmp_path, real=True)  # answers before torch
    assert done.returncode != 0
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    runs = tmp_path / "outputs" / "train" / "runs"  # the folder Hydra made is gone again
    assert not runs.exists() or not list(runs.iterdir())
    assert not list((tmp_path / "outputs").rglob("metrics.json"))


@pytest.mark.slow
def test_eval_without_a_checkpoint_says_it_is_required(tmp_path):
    done = run(["promptrec-eval"], tmp_path, real=True)
    said = " ".join(done.stderr.split())  # rich wraps the paragraph at the terminal's width
    assert done.returncode == 1 and "Traceback" not in said
    assert "ckpt_path is required" in said and "promptrec-eval ckpt_path=" in said
    assert not list((tmp_path / "outputs").rglob("eval.log"))


@pytest.mark.slow
def test_a_run_that_stops_before_validating_tests_its_last_weights(train_cfg, capsys):
    train_cfg.trainer.max_steps = 2  # an epoch has 4 steps: training ends before validating
    metrics, _ = train(train_cfg)  # once EarlyStopping's RuntimeError: no val/auc to check
    assert "before its first validation" in capsys.readouterr().out
    saved = json.loads((Path(train_cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["test/auc"] == metrics["test/auc"]
    assert 0 <= metrics["test/auc"] <= 1 and "val/auc_best" not in metrics


@pytest.mark.slow
def test_full_traceback_on_request(tmp_path):
    done = run(["promptrec-train", "data.batch_size=-4"], tmp_path, real=True, HYDRA_FULL_ERROR="1")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConfigError" in done.stderr


@pytest.mark.slow
def test_data_error_from_the_command_line(tiny_model_dir, data_dir, tmp_path):
    done = run(["promptrec-train", *tiny(tiny_model_dir, data_dir), "data.source=atomic",
                f"data.path={tmp_path / 'nowhere'}"], tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    runs = tmp_path / "outputs" / "train" / "runs"  # the run never started: no folder is left
    assert not runs.exists() or not list(runs.iterdir())


# -- safety -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    ["{{ cycler.__init__.__globals__.os.environ.PROMPTREC_CANARY }}",
     "{{ lipsum.__globals__['os'].environ['PROMPTREC_CANARY'] }}",
     "{{ joiner.__init__.__globals__.__builtins__.open('/etc/hostname').read() }}",
     "{{ ''.__class__.__mro__[1].__subclasses__() }}",
     "{% include '/etc/hostname' %}",
     "{% import 'os' as os %}{{ os }}",
     "{{ target.title.format.__globals__ }}"],
)  # fmt: skip
def test_templates_cannot_read_files_or_the_environment(template, monkeypatch):
    from jinja2 import TemplateError

    from promptrec.prompts.template import PromptTemplate

    monkeypatch.setenv("PROMPTREC_CANARY", "canary-5f2c")
    context = {"user": {"age": 30}, "target": {"title": "Heat"}, "history": []}
    with pytest.raises((ConfigError, TemplateError)) as info:  # SecurityError is a TemplateError
        PromptTemplate("evil", template).render(context)
    assert "canary-5f2c" not in str(info.value)


def test_models_never_run_code_shipped_with_them(tiny_model_dir, tmp_path):
    """A model folder whose config points at its own Python code: that code is never imported."""
    from promptrec.models.backbone import load_classifier

    folder = tmp_path / "model-with-code"
    shutil.copytree(tiny_model_dir, folder)
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig",
                          "AutoModelForSequenceClassification": "evil.EvilModel"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    try:
        model = load_classifier(str(folder), 1)
        assert type(model).__name__ == "BertForSequenceClassification"
    except ConfigError as exc:  # refusing is as good as ignoring, but it must say why
        assert "model.name_or_path" in str(exc)
    assert not marker.exists()


@pytest.mark.slow
def test_checkpoints_load_weights_only(tiny_model_dir, data_dir, tmp_path):
    """A checkpoint with a pickled object that would run code on load is refused, unexecuted."""
    import pickle

    from promptrec.runtime.evaluation import evaluate

    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = tmp_path / "evil.ckpt"
    import torch

    torch.save({"state_dict": {}, "payload": Payload()}, ckpt)
    cfg = compose_config(
        "eval", [*tiny_overrides(tiny_model_dir, data_dir, tmp_path), f"ckpt_path={ckpt}"]
    )
    with pytest.raises((pickle.UnpicklingError, ConfigError, RuntimeError)):
        evaluate(cfg)
    assert not marker.exists()


@pytest.mark.slow
def test_the_wandb_key_never_reaches_logs_or_run_folders(tiny_model_dir, data_dir, tmp_path):
    secret = "local-" + "f3a9c0" * 6  # shaped like a W&B key
    done = run(["promptrec-train", "logger=default", *tiny(tiny_model_dir, data_dir)], tmp_path,
               WANDB_API_KEY=secret)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert secret not in done.stdout + done.stderr
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.suffix == ".wandb" for p in files)
    assert not [p for p in files if secret.encode() in p.read_bytes()]
