"""Training and evaluation speed of PromptRec against plain PyTorch loops, side by side.

    .venv/bin/python bench/train_speed.py                     # default job; CPU: ~13 min on 2 cores
    .venv/bin/python bench/train_speed.py data.history_len=4  # any promptrec-train override
    .venv/bin/python bench/train_speed.py --device cpu        # CPU even where a GPU is present

On a machine with a GPU it runs there by default: the plain loops under bf16 autocast and the
framework with ``trainer=gpu`` (bf16-mixed), with peak GPU memory reported too.

Every variant trains the same model (the default job's: MiniLM-L6 with the preference head,
built by PromptRec's own builder from the same seed) on the same 3,000 training prompts with
AdamW, gradient clipping and batch 32, for the same number of optimizer steps, and then scores
the test split. Reported per variant: samples/s and real (non-padding) tokens/s over the timed
steps, padded tokens per real token, peak memory, and the test evaluation time.

- ``naive``: the tutorial loop. Batches drawn at random; each batch's texts tokenised on the
  fly and padded to 128 tokens; evaluation the same way.
- ``dynamic``: the same loop on cached token ids, padded to each batch's longest prompt.
- ``grouped``: the same loop on PromptRec's own training loader (cached ids, length-grouped
  batches, dynamic padding): the framework's batches without the framework.
- ``framework``: PromptRec's trainer (Lightning, its callbacks, the CSV logger) fitting on that
  same loader, so ``framework / grouped`` is the framework's overhead on identical batches;
  evaluation is ``trainer.test`` (metrics and the prediction tables included).

Steps before ``--warmup`` are not timed. The machine's speed drifts by 10-20% over minutes, so
every variant runs ``--rounds`` times, each round in a rotated order; the figures are medians over
rounds and the ratios medians of the ratios within a round. Results go to
``outputs/bench/train_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from transformers import DataCollatorWithPadding

from promptrec.runtime.build import build_datamodule, build_module, build_run
from promptrec.runtime.config import config_dir, register_configs, validate
from promptrec.runtime.costs import peak_memory_mb, reset_peak_rss

NAIVE_LENGTH = 128  # what tutorial code pads every example to


# The comparison this script makes is of fp32 loops over the whole model (the default job before
# issue 15); bench/time_to_quality.py measures bf16 and frozen layers. Overrides given win.
FP32_WHOLE_MODEL = ["trainer.precision=32-true", "tuning.freeze_layers=0"]


def compose_train(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*FP32_WHOLE_MODEL, *overrides])
    validate(cfg)
    return cfg


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peaks(device: torch.device) -> None:
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


class Meter:
    """Samples, real tokens and padded tokens of the timed steps, their wall time, and the part
    of it spent in the model's forward and backward passes (the same work in every variant)."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device, self.step = warmup, device, 0
        self.samples = self.tokens = self.padded = 0
        self.start = self.end = self.model_seconds = 0.0

    def begin(self) -> None:  # before fetching the first timed batch
        if self.step == self.warmup:
            self.start = time.perf_counter()

    def done(self, batch: dict) -> None:  # after the optimizer step
        if self.step >= self.warmup:
            self.samples += len(batch["labels"])
            self.tokens += int(batch["attention_mask"].sum())
            self.padded += batch["attention_mask"].numel()
            self.end = time.perf_counter()
        self.step += 1

    def timed(self, fn):
        """``fn`` with its duration added to the model time during the timed steps."""

        def wrapper(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            if self.step >= self.warmup:
                self.model_seconds += time.perf_counter() - start
            return out

        return wrapper

    def report(self) -> dict:
        seconds, steps = self.end - self.start, self.step - self.warmup
        return {
            "samples_per_s": self.samples / seconds,
            "tokens_per_s": self.tokens / seconds,
            "padded_per_real_token": self.padded / self.tokens,
            "step_ms": 1000 * seconds / steps,
            # everything but forward and backward: batching, optimizer, clipping, framework
            "outside_model_ms_per_step": 1000 * (seconds - self.model_seconds) / steps,
            "timed_steps": steps,
        }


class MeterCallback(L.Callback):
    """The same meter inside Lightning: from the timed steps' first batch start to the last end."""

    def __init__(self, meter: Meter):
        self.meter = meter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.meter.begin()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(self.meter.device)
        self.meter.done(batch)


def plain_loop(cfg, datamodule, batches, steps: int, warmup: int, device, autocast) -> dict:
    """A hand-written loop: forward, the task's loss, backward, clip, AdamW, zero_grad."""
    L.seed_everything(cfg.seed, verbose=False)
    module = build_module(cfg, datamodule)[0].to(device).train()
    model, task = module.model, datamodule.task
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.tuning.lr, weight_decay=cfg.tuning.weight_decay)
    meter = Meter(warmup, device)
    forward, backward = meter.timed(model), meter.timed(torch.Tensor.backward)
    for _ in range(warmup + steps):
        meter.begin()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        with autocast():
            loss = task.loss(forward(batch), batch["labels"])
        backward(loss)
        torch.nn.utils.clip_grad_norm_(params, cfg.trainer.gradient_clip_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        meter.done(batch)
    return {**meter.report(), "_model": model}


@torch.no_grad()
def plain_eval(model, batches, device, autocast) -> float:
    model.eval()
    start = time.perf_counter()
    with autocast():
        for batch in batches:
            model({k: v.to(device) for k, v in batch.items()})
    sync(device)
    return time.perf_counter() - start


def cycle(loader):
    while True:
        yield from loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=3, help="repeats, each in a rotated order")
    parser.add_argument("--device", default="auto", help="auto (cuda when present) | cpu | cuda")
    parser.add_argument("--only", nargs="*", default=["naive", "dynamic", "grouped", "framework"])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/train_speed.json"))
    parser.add_argument("overrides", nargs="*", help="promptrec-train overrides, e.g. trainer=gpu")
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    # the framework on the same device: trainer=gpu (bf16-mixed) on a GPU; later overrides win
    args.overrides = ["trainer=gpu" if device.type == "cuda" else "trainer.accelerator=cpu",
                      *args.overrides]  # fmt: skip
    out_dir = args.out.parent / "framework_run"
    cfg = compose_train(["logger=csv", "trainer.enable_progress_bar=false",
                         f"paths.output_dir={out_dir}", *args.overrides])  # fmt: skip
    bf16 = device.type == "cuda" and str(cfg.trainer.precision).startswith("bf16")
    autocast = (lambda: torch.autocast("cuda", torch.bfloat16)) if bf16 else nullcontext

    datamodule = build_datamodule(cfg)
    tokenizer, prepared = datamodule.tokenizer, datamodule.prepared
    train_text = prepared.datasets["train"].with_format(None)["text"]
    train_labels = prepared.examples["train"]["labels"].tolist()
    test_text = prepared.datasets["test"].with_format(None)["text"]
    size, eval_size = cfg.data.batch_size, cfg.data.eval_batch_size
    order = torch.randperm(len(train_text), generator=torch.Generator().manual_seed(0)).tolist()

    def naive_batch(rows, texts, labels):
        batch = tokenizer([texts[i] for i in rows], padding="max_length", truncation=True,
                          max_length=NAIVE_LENGTH, return_tensors="pt")  # fmt: skip
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                "labels": torch.tensor([labels[i] for i in rows])}  # fmt: skip

    def naive_batches():
        for start in range(0, len(order), size):
            yield naive_batch(order[start : start + size], train_text, train_labels)

    collate = DataCollatorWithPadding(tokenizer)
    train_rows = prepared.datasets["train"]

    def dynamic_batches():
        for start in range(0, len(order), size):
            yield collate([train_rows[i] for i in order[start : start + size]])

    test_labels = [0.0] * len(test_text)
    loops = {"naive": lambda: cycle(naive_batches()), "dynamic": lambda: cycle(dynamic_batches()),
             "grouped": lambda: cycle(datamodule.train_dataloader())}  # fmt: skip

    def plain(name: str) -> dict:
        result = plain_loop(
            cfg, datamodule, loops[name](), args.steps, args.warmup, device, autocast
        )
        model = result.pop("_model")
        if name == "naive":  # tokenising and padding to 128 are part of its evaluation
            start = time.perf_counter()
            test = [naive_batch(list(range(s, min(s + eval_size, len(test_text)))), test_text,
                                test_labels) for s in range(0, len(test_text), eval_size)]  # fmt: skip
            result["eval_seconds"] = time.perf_counter() - start
            result["eval_seconds"] += plain_eval(model, test, device, autocast)
        return result

    def framework() -> dict:  # PromptRec's own builders, callbacks and loggers
        fw_cfg = cfg.copy()
        with open_dict(fw_cfg):  # train only the timed steps; no validation to wait for
            fw_cfg.trainer.max_steps = args.warmup + args.steps
            fw_cfg.trainer.limit_val_batches = 0
            fw_cfg.callbacks.early_stopping = None
        run = build_run(fw_cfg)
        meter = Meter(args.warmup, device)
        run.trainer.callbacks.append(MeterCallback(meter))
        run.module.model.forward = meter.timed(run.module.model.forward)  # as the plain loop times
        run.module.backward = meter.timed(run.module.backward)
        run.trainer.fit(run.module, datamodule=run.datamodule)
        result = meter.report()
        start = time.perf_counter()
        run.trainer.test(run.module, datamodule=run.datamodule, verbose=False)
        result["eval_seconds"] = time.perf_counter() - start
        return result

    # rounds, each in a rotated order: the machine's speed drifts, so the ratios are taken
    # within a round and their median reported
    names = [n for n in ("naive", "dynamic", "grouped", "framework") if n in args.only]
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        rounds.append({})
        for name in names[r % len(names) :] + names[: r % len(names)]:
            reset_peaks(device)
            result = framework() if name == "framework" else plain(name)
            rounds[-1][name] = {**result, **peak_memory_mb()}
            print(f"round {r + 1}", name, json.dumps(rounds[-1][name]), flush=True)
    results: dict = {
        name: {key: statistics.median(rnd[name][key] for rnd in rounds)
               for key in rounds[0][name]} for name in names
    }  # fmt: skip

    def ratio(a: str, b: str, key: str = "samples_per_s") -> float | None:
        if a not in names or b not in names or key not in rounds[0][a] or key not in rounds[0][b]:
            return None
        return statistics.median(rnd[a][key] / rnd[b][key] for rnd in rounds)

    def overhead() -> float | None:
        """Extra time per step outside the model, as a share of the plain loop's step: both
        parts are measured in the same runs, so the machine's drift mostly cancels."""
        if "framework" not in names or "grouped" not in names:
            return None
        return statistics.median(
            (rnd["framework"]["outside_model_ms_per_step"]
             - rnd["grouped"]["outside_model_ms_per_step"]) / rnd["grouped"]["step_ms"]
            for rnd in rounds
        )  # fmt: skip

    results["ratios (median of rounds)"] = {
        "dynamic / naive": ratio("dynamic", "naive"),
        "grouped / naive": ratio("grouped", "naive"),
        "framework / naive": ratio("framework", "naive"),
        "framework / grouped": ratio("framework", "grouped"),
        "framework overhead (outside-model ms / grouped step ms)": overhead(),
        "naive eval s / framework eval s": ratio("naive", "framework", "eval_seconds"),
    }
    results["rounds"] = rounds
    results["setup"] = {"device": str(device), "overrides": args.overrides,
                        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "batch": size,
                        "threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["ratios (median of rounds)"], indent=2))


if __name__ == "__main__":
    main()
