"""Training throughput of PromptRec against a plain PyTorch loop, side by side, in one process.

    .venv/bin/python bench/train_speed.py --steps 30          # CPU, about 6 minutes on 2 cores

Every variant trains the default model (MiniLM-L6, preference head) on the same prompts (the
``question`` prompt of the default job's first training examples, batch 32, AdamW) for the same
number of optimizer steps, and reports samples/s, real (non-padding) tokens/s and the peak RSS:

- ``naive``: a tutorial-style loop. Each batch's texts are tokenised on the fly and padded to
  128 tokens.
- ``plain_dynamic``: the same loop on the cached token ids, padded to each batch's longest prompt.
- ``framework``: ``promptrec-train`` itself (Lightning, callbacks, CSV logging) with its
  defaults, stopped after the same number of steps, with no validation or test.

The ratios are against ``naive`` (speed-up) and against ``plain_dynamic`` (framework overhead,
which uses the same batching). The first steps of each variant are warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from promptrec.config import config_dir, register_configs
from promptrec.costs import peak_memory_mb, reset_peak_rss
from promptrec.models.backbone import resolve_model_path
from promptrec.run import build_datamodule

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def default_config(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def timed_loop(model, batches, steps: int, warmup: int) -> dict:
    """Train on ``batches`` (a callable giving the i-th batch) and time steps after warm-up."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    samples = tokens = 0
    seconds = 0.0
    for step in range(warmup + steps):
        start = time.perf_counter()
        batch = batches(step)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            seconds += time.perf_counter() - start
            samples += len(batch["labels"])
            tokens += int(batch["attention_mask"].sum())
    return {
        "samples_per_s": samples / seconds,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/train_speed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = default_config([f"data.batch_size={args.batch}", "logger=csv"])
    datamodule = build_datamodule(cfg)
    train = datamodule.prepared.datasets["train"].with_format(None)  # plain lists + the text
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    needed = (args.warmup + args.steps) * args.batch
    rows = [train[i] for i in (order * (needed // len(order) + 1))[:needed]]
    path = resolve_model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    results = {}

    def fresh_model():
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, problem_type="regression"
        )

    def naive(step):  # tokenise every time, pad to 128
        chunk = rows[step * args.batch : (step + 1) * args.batch]
        batch = tokenizer([r["text"] for r in chunk], padding="max_length", truncation=True,
                          max_length=128, return_tensors="pt")  # fmt: skip
        batch["labels"] = torch.tensor([float(r["labels"]) for r in chunk])
        return batch

    collate = DataCollatorWithPadding(tokenizer)

    def plain_dynamic(step):  # cached ids, padded to the batch's longest
        chunk = rows[step * args.batch : (step + 1) * args.batch]
        batch = collate(
            [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in chunk]
        )
        batch["labels"] = torch.tensor([float(r["labels"]) for r in chunk])
        return batch

    for name, batches in (("naive", naive), ("plain_dynamic", plain_dynamic)):
        reset_peak_rss()
        results[name] = {**timed_loop(fresh_model(), batches, args.steps, args.warmup),
                         **peak_memory_mb()}  # fmt: skip
        print(name, json.dumps(results[name]))

    from promptrec.train import train  # the real command, stopped after the same steps

    out_dir = args.out.parent / "framework_run"
    cfg = default_config([f"data.batch_size={args.batch}", "logger=csv", "test=false",
                          f"+trainer.max_steps={args.warmup + args.steps}", "+trainer.limit_val_batches=0", "~callbacks.early_stopping",
                          "trainer.enable_progress_bar=false", f"paths.output_dir={out_dir}"])  # fmt: skip
    metrics, _ = train(cfg)
    results["framework"] = {"samples_per_s": metrics.get("cost/train_samples_per_s"),
                            "cost/peak_rss_mb": metrics.get("cost/peak_rss_mb")}  # fmt: skip
    print("framework", json.dumps(results["framework"]))
    naive_rate = results["naive"]["samples_per_s"]
    results["ratios"] = {
        "plain_dynamic / naive": results["plain_dynamic"]["samples_per_s"] / naive_rate,
        "framework / naive": results["framework"]["samples_per_s"] / naive_rate,
        "framework / plain_dynamic": results["framework"]["samples_per_s"]
        / results["plain_dynamic"]["samples_per_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["ratios"], indent=2))


if __name__ == "__main__":
    main()
