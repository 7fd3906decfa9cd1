"""The schema of each model kind and each tuning mode.

A run's ``model`` is checked against the schema its ``kind`` names and its ``tuning`` against the
one its ``mode`` names (each conf/model/*.yaml and conf/tuning/*.yaml starts with
``defaults: [<name>_schema]``), so a setting of another kind or mode (``tuning=full
tuning.merge_lora=true``) fails at start-up with Hydra's message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class ModelConfig:
    kind: str = MISSING  # lm (a BERT-family language model on prompts) | pop | itemknn | mf | bpr | fm | sasrec


@dataclass
class LanguageModelConfig(ModelConfig):
    name_or_path: str | None = None  # Hub name or local folder; embedded models resolve offline
    dropout: float | None = None  # None keeps the checkpoint's own hidden dropout
    compile: str | None = None  # a torch.compile backend (inductor); None runs eagerly
    attention: str | None = None  # eager | sdpa: transformers' attention code; None = its default
    init_from: str | None = None  # a finished run folder whose trained weights this run starts from


@dataclass
class PopularityConfig(ModelConfig):
    pass


@dataclass
class MatrixFactorizationConfig(ModelConfig):
    dim: int = 64  # embedding size


@dataclass
class BPRConfig(ModelConfig):
    dim: int = 64  # embedding size
    reg_weight: float = 0.0  # × squared norms of the batch's embeddings (RecBole: none)


@dataclass
class FactorizationMachineConfig(ModelConfig):
    dim: int = 16  # factor size of every feature
    side_features: bool = True  # false: user and item ids only (a biased MF fitted the same way)


@dataclass
class ItemKNNConfig(ModelConfig):
    k: int = 100  # neighbours kept per item
    shrink: float = 0.0  # added to the cosine's denominator: damps pairs with few users


@dataclass
class SASRecConfig(ModelConfig):
    dim: int = 64
    layers: int = 2  # Transformer layers
    heads: int = 2  # attention heads
    dropout: float | None = 0.2
    # a language model (Hub name or folder) whose frozen encoding of each item's text joins the
    # item's id vector (models/item_text.py); None: ids only
    text_from: str | None = None
    ids: bool = True  # false (with text_from): no id vectors, each item is its text alone


MODEL_SCHEMAS = {
    "lm": LanguageModelConfig,
    "pop": PopularityConfig,
    "mf": MatrixFactorizationConfig,
    "bpr": BPRConfig,
    "fm": FactorizationMachineConfig,
    "itemknn": ItemKNNConfig,
    "sasrec": SASRecConfig,
}


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])


@dataclass
class AdaLoraSettings:
    init_r: int = 12  # starting rank of every adapted matrix
    target_r: int = 8  # average rank left after pruning (the budget)
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    tinit_fraction: float = 0.1  # share of steps before pruning starts
    tfinal_fraction: float = 0.2  # share of steps at the end with ranks fixed
    delta_t: int = 10  # steps between budget updates
    orth_reg_weight: float = 0.5  # keeps the singular-vector factors orthogonal


@dataclass
class IA3Settings:
    target_modules: list[str] = field(default_factory=lambda: ["key", "value", "output.dense"])
    feedforward_modules: list[str] = field(default_factory=lambda: ["output.dense"])


@dataclass
class AdapterSettings:
    kind: str = "houlsby"  # houlsby: after attention and FFN | pfeiffer: after FFN only
    reduction_factor: int = 16  # bottleneck width = hidden / reduction_factor


@dataclass
class TuningConfig:
    """Full, frozen and BitFit need nothing beyond these."""

    mode: str = (
        MISSING  # full | frozen | bitfit | lora | adalora | ia3 | prefix | prompt_tuning | adapter
    )
    lr: float = MISSING
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    decay: bool = True  # linear decay to 0 at the last step after warm-up; false = constant rate
    freeze_layers: int = 0  # embeddings + the bottom k layers frozen, their outputs cached on disk
    # the parts a run adds from scratch (the head, a collaborative projector, soft vectors) learn
    # at this rate; null = tuning.lr. A fresh layer needs more than a pretrained one's 5e-5.
    new_lr: float | None = None


@dataclass
class LoraTuning(TuningConfig):
    lora: LoraSettings = field(default_factory=LoraSettings)
    merge_lora: bool = False  # fold the adapters into the backbone before testing


@dataclass
class AdaLoraTuning(TuningConfig):
    adalora: AdaLoraSettings = field(default_factory=AdaLoraSettings)


@dataclass
class IA3Tuning(TuningConfig):
    ia3: IA3Settings = field(default_factory=IA3Settings)


@dataclass
class AdapterTuning(TuningConfig):
    adapter: AdapterSettings = field(default_factory=AdapterSettings)


@dataclass
class VirtualTokenTuning(TuningConfig):
    virtual_tokens: int = 20  # prefix, prompt_tuning: trainable virtual tokens


TUNING_SCHEMAS = {
    "full": TuningConfig,
    "frozen": TuningConfig,
    "bitfit": TuningConfig,
    "lora": LoraTuning,
    "adalora": AdaLoraTuning,
    "ia3": IA3Tuning,
    "adapter": AdapterTuning,
    "prefix": VirtualTokenTuning,
    "prompt_tuning": VirtualTokenTuning,
}
