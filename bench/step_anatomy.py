"""Where a bf16 training step's time goes, and which changes move it toward the GEMM peak.

    .venv/bin/python bench/step_anatomy.py                 # ~6 min on 2 cores
    .venv/bin/python bench/step_anatomy.py --markdown docs/bench/step_anatomy.json

The default job trains the top 4 of MiniLM-L6's 6 layers (``tuning.freeze_layers=2``) under bf16
autocast on batches of 32 prompts of about 96 tokens. This script times that step in a plain loop
(the encoder layers above the cut, AdamW) in variants that could raise its achieved GFLOP/s:

- ``default``: as the job runs it;
- ``compile``: ``torch.compile`` (inductor) of the layers;
- ``fused_adamw``: ``AdamW(fused=True)``;
- ``batch128``: 4× the batch (same tokens per second if the step were already at peak);
- ``no_dropout``: hidden and attention dropout off (dropout's random numbers are costly on CPU);
- ``eager_attention``: transformers' eager attention instead of SDPA.

Each runs ``--rounds`` times in a rotated order (the machine drifts 10-20% over minutes); the
table shows medians. A profile of the default step groups its time into matrix products,
dropout's random numbers, dtype casts and the rest, which bounds what any fusion could gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).parent))
from time_to_quality import gemm_peak  # noqa: E402  (the same peak the time-to-quality table uses)

from promptrec.models.backbone import resolve_model_path  # noqa: E402

VARIANTS = ["default", "compile", "fused_adamw", "batch128", "no_dropout", "eager_attention"]
LAYERS, TOKENS = 4, 96
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # its shapes; the weights are random


def build(variant: str, model: str):
    config = BertConfig.from_pretrained(resolve_model_path(model))
    config.num_hidden_layers = LAYERS
    if variant == "no_dropout":
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    if variant == "eager_attention":
        config._attn_implementation = "eager"
    torch.manual_seed(0)
    encoder = BertModel(config, add_pooling_layer=False).encoder.train()
    if variant == "compile":
        encoder.compile(backend="inductor")
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-5, fused=variant == "fused_adamw")
    batch = 128 if variant == "batch128" else 32
    states = torch.randn(batch, TOKENS, config.hidden_size)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = encoder(states).last_hidden_state[:, 0].float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops = 6 * sum(p.numel() for p in encoder.parameters() if p.dim() == 2) * batch * TOKENS
    flops += 3 * 4 * batch * TOKENS * TOKENS * config.hidden_size * LAYERS  # scores and mixing
    return step, flops


def time_variant(variant: str, steps: int, model: str) -> dict:
    step, flops = build(variant, model)
    for _ in range(3):  # warm-up (and compilation)
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"ms_per_step": 1000 * seconds, "gflops": flops / seconds / 1e9}


GROUPS = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot"),
          "dropout random numbers": ("aten::bernoulli_",),
          "dtype casts": ("aten::copy_", "aten::_to_copy")}  # fmt: skip


def profile_default(model: str) -> dict:
    step, _ = build("default", model)
    for _ in range(3):
        step()
    with torch.profiler.profile() as prof:
        for _ in range(4):
            step()
    shares = {group: 0.0 for group in [*GROUPS, "the rest"]}
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    for event in events:
        group = next((g for g, ops in GROUPS.items() if event.key.startswith(ops)), "the rest")
        shares[group] += event.self_cpu_time_total / total
    return shares


def markdown(results: dict) -> str:
    peak = results["peak_gflops_bf16"]
    lines = [f"bf16 GEMM peak measured in the same run: {peak:.0f} GFLOP/s.", "",
             "| variant | ms per step | GFLOP/s | of the GEMM peak | vs default |",
             "|---|---|---|---|---|"]  # fmt: skip
    base = results["medians"].get("default", {}).get("gflops")
    for name, row in results["medians"].items():
        lines.append(f"| {name} | {row['ms_per_step']:.0f} | {row['gflops']:.0f} | "
                     f"{row['gflops'] / peak:.2f} | {row['gflops'] / base if base else float('nan'):.2f}× |")  # fmt: skip
    lines += ["", "Profile of the default step (share of self CPU time):", "",
              "| part | share |", "|---|---|"]  # fmt: skip
    lines += [f"| {part} | {share:.0%} |" for part, share in results["profile"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--model", default=MODEL, help="a Hub name or folder (its config only)")
    parser.add_argument("--out", default="outputs/bench/step_anatomy.json")
    parser.add_argument("--markdown", help="print the table of a results file and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    torch.set_float32_matmul_precision("highest")
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    for round_ in range(args.rounds):
        for variant in args.variants[round_:] + args.variants[:round_]:
            runs[variant].append(time_variant(variant, args.steps, args.model))
            print(round_, variant, json.dumps(runs[variant][-1]), flush=True)
    medians = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    results = {"peak_gflops_bf16": gemm_peak(torch.bfloat16), "medians": medians, "runs": runs,
               "profile": profile_default(args.model), "layers": LAYERS, "tokens": TOKENS}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
