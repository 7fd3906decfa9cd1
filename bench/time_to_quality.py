"""Time to a quality target: how many minutes each precision and frozen-layer setting needs
before the default job's validation metric first reaches a target, side by side in one run.

    .venv/bin/python bench/time_to_quality.py                       # fp32, bf16, bf16+k2, bf16+k4
    .venv/bin/python bench/time_to_quality.py --target 0.74 --rounds 3 --every 20
    .venv/bin/python bench/time_to_quality.py --variants fp32 bf16_k4 -- data.history_len=4
    .venv/bin/python bench/time_to_quality.py --target 2 --until 125 --test --rounds 1 -- seed=1

Every variant is the default job (MiniLM-L6, question prompt, full tuning, 3,000 training prompts,
batch 32, the same seed and the same learning-rate schedule over ``--cap`` steps), validated
every ``--every`` optimizer steps on the whole validation split. A variant stops when
``task.monitor`` first reaches ``--target`` or at the cap. Reported per variant:

- ``minutes_to_target``: wall time from building the run (the frozen-layer cache included,
  built cold) to the validation that reached the target; null if it never did.
- ``build_s``: the part of it spent building the run: loading data and model and, with frozen
  layers, computing their state cache cold (a later run with the same data, model, k and
  precision reuses it), so ``build_s`` minus fp32's is the cache's cost.
- ``samples_per_s`` over the training steps only, and the training step's achieved GFLOP/s:
  6 × (weights that run per token) × real tokens / step time. The weights counted are those of
  the layers the step runs (all six, or those above the cut) and the head; attention's
  T² terms (~3% at these lengths) and the embeddings are left out, so it is a lower bound.
- ``roofline``: that figure over the machine's own GEMM peak in the same precision, measured in
  the same run on the model's shapes (``peak_gflops``).

The machine's speed drifts over minutes, so every round runs the variants in a rotated order;
the figures are medians over rounds and the speed-ups medians of the within-round ratios against
fp32. Results go to ``outputs/bench/time_to_quality.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from promptrec.runtime.build import build_run, close_loggers
from promptrec.runtime.config import config_dir, register_configs, validate

VARIANTS = {
    "fp32": ["trainer.precision=32-true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "bf16_k2": ["trainer.precision=bf16-mixed", "tuning.freeze_layers=2"],
    "bf16_k4": ["trainer.precision=bf16-mixed", "tuning.freeze_layers=4"],
}


def gemm_peak(dtype: torch.dtype, repeats: int = 20) -> float:
    """GFLOP/s of the model's largest product (tokens × 384 @ 384 × 1536) on this machine."""
    a = torch.randn(4096, 384).to(dtype)
    b = torch.randn(384, 1536).to(dtype)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(
            best, 5 * 2 * a.shape[0] * a.shape[1] * b.shape[1] / (time.perf_counter() - start)
        )
    return best / 1e9


class Clock(L.Callback):
    """Training-step time and real tokens, and the first validation that reaches the target."""

    def __init__(self, monitor: str, target: float, start: float, until: int | None = None):
        self.monitor, self.target, self.start, self.until = monitor, target, start, until
        self.step_seconds, self.samples, self.tokens = 0.0, 0, 0
        self.reached: dict | None = None
        self.curve: list[tuple[int, float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step_seconds += time.perf_counter() - self._t
        self.samples += len(batch["labels"])
        self.tokens += int(batch["attention_mask"].sum())

    def on_validation_end(self, trainer, pl_module):
        value = float(trainer.callback_metrics.get(self.monitor, float("nan")))
        minutes = (time.perf_counter() - self.start) / 60
        self.curve.append((trainer.global_step, value, minutes))
        if self.reached is None and value >= self.target:
            self.reached = {"step": trainer.global_step, "minutes": minutes, "value": value}
            trainer.should_stop = True
        if self.until is not None and trainer.global_step >= self.until:
            trainer.should_stop = True  # equal-steps comparisons: the schedule still spans --cap


def weights_per_token(module) -> int:
    """Weights a token passes through in the training step: the layers that run (not those
    below a cut, whose states are cached), the pooler and the head; not the embeddings."""
    return sum(p.numel() for n, p in module.model.named_parameters()
               if "embeddings" not in n and not n.startswith("lower."))  # fmt: skip


def run_variant(name: str, overrides: list[str], args, out: Path) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            *overrides, *args.overrides, f"paths.output_dir={out / name}", "logger=csv",
            f"++trainer.max_steps={args.cap}", "trainer.max_epochs=-1",
            f"++trainer.val_check_interval={args.every}", "++trainer.check_val_every_n_epoch=null",
            "trainer.enable_progress_bar=false", "callbacks.early_stopping=null",
            "callbacks.model_checkpoint=null", "callbacks.latest_checkpoint=null",
        ])  # fmt: skip
    validate(cfg)
    start = time.perf_counter()
    objects = build_run(cfg)
    build_s = time.perf_counter() - start  # data and model loading, and the state cache if k > 0
    clock = Clock(cfg.task.monitor, args.target, start, args.until)
    objects.trainer.callbacks.append(clock)
    objects.trainer.fit(objects.module, datamodule=objects.datamodule)
    tested = {}
    if args.test:  # the weights as they are at the last step: quality at equal steps
        objects.trainer.test(objects.module, datamodule=objects.datamodule, verbose=False)
        tested = {k: float(v) for k, v in objects.trainer.callback_metrics.items()
                  if k in ("test/auc", "test/logloss", "test/rmse", "test/ndcg@10")}  # fmt: skip
    close_loggers(objects.loggers)
    k = int(cfg.tuning.get("freeze_layers") or 0)
    flops = 6 * weights_per_token(objects.module) * clock.tokens
    gflops = flops / clock.step_seconds / 1e9
    return {
        "minutes_to_target": clock.reached["minutes"] if clock.reached else None,
        "steps_to_target": clock.reached["step"] if clock.reached else None,
        "best_value": max(v for _, v, _ in clock.curve),
        "build_s": build_s,
        "frozen_layers": k,
        "samples_per_s": clock.samples / clock.step_seconds,
        "train_gflops": gflops,
        "precision": str(objects.trainer.precision),
        "steps": objects.trainer.global_step,
        **tested,
        "curve": clock.curve,
    }


def markdown(results: dict) -> str:
    """The table docs/performance.md shows, from a results file (``--markdown FILE``)."""
    peaks = results["peak_gflops"]
    lines = [f"Target: val AUC ≥ {results['target']}; learning-rate schedule over {results['cap']} "
             f"steps; validation every {results['every']} steps; {len(results['rounds'])} rounds "
             f"(medians). GEMM peak measured in the same run: fp32 {peaks['32-true']:.0f}, bf16 "
             f"{peaks['bf16-mixed']:.0f} GFLOP/s.", "",
             "| variant | minutes to target | vs fp32 | steps to target | build (s) | samples/s | "
             "training GFLOP/s | of the GEMM peak |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in results["medians"].items():

        def fmt(key, spec, row=row):
            return "–" if row.get(key) is None else format(row[key], spec)

        speedup = fmt("speedup_to_target", ".2f") + ("×" if row.get("speedup_to_target") else "")
        lines.append(f"| {name} | {fmt('minutes_to_target', '.2f')} | {speedup} | "
                     f"{fmt('steps_to_target', '.0f')} | {fmt('build_s', '.1f')} | "
                     f"{fmt('samples_per_s', '.1f')} | {fmt('train_gflops', '.0f')} | "
                     f"{fmt('roofline', '.2f')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def equal_steps_markdown(files: list[Path]) -> str:
    """Quality at equal steps across seeds (runs made with ``--until N --test``): each
    variant's test and validation AUC at the last step, mean ± std over the files' seeds."""
    runs = [json.loads(f.read_text()) for f in files]
    seeds = [next((o.split("=", 1)[1] for o in r["overrides"] if o.startswith("seed=")), "default")
             for r in runs]  # fmt: skip
    steps = runs[0]["rounds"][0][next(iter(runs[0]["rounds"][0]))]["steps"]
    lines = [f"Test and validation AUC after {steps} steps (learning-rate schedule over "
             f"{runs[0]['cap']}), seeds {', '.join(seeds)}: mean ± std (ddof=1) and each seed.", "",
             "| variant | test AUC | test AUC per seed | val AUC | val AUC per seed |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in runs[0]["rounds"][0]:
        test = [r["rounds"][0][name]["test/auc"] for r in runs]
        val = [r["rounds"][0][name]["curve"][-1][1] for r in runs]
        cells = [f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f} | "
                 + ", ".join(f"{x:.4f}" for x in v) for v in (test, val)]  # fmt: skip
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.75, help="task.monitor to reach")
    parser.add_argument("--cap", type=int, default=300, help="optimizer steps at most")
    parser.add_argument("--every", type=int, default=25, help="validate every N steps")
    parser.add_argument(
        "--until", type=int, help="stop at this step (learning-rate schedule still over --cap)"
    )
    parser.add_argument("--test", action="store_true", help="score the test split at the end")
    parser.add_argument("--rounds", type=int, default=2, help="repeats, each in a rotated order")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/time_to_quality.json"))
    parser.add_argument(
        "overrides", nargs="*", help="promptrec-train overrides for every variant (after --)"
    )
    parser.add_argument("--markdown", type=Path, help="print the table of a results file and exit")
    parser.add_argument("--equal-steps", type=Path, nargs="+",
                        help="print the equal-steps table of runs made with --until --test, one per seed")  # fmt: skip
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return
    if args.equal_steps:
        print(equal_steps_markdown(args.equal_steps), end="")
        return
    out = args.out.with_suffix("")  # the variants' run folders
    peaks = {"32-true": gemm_peak(torch.float32), "bf16-mixed": gemm_peak(torch.bfloat16)}
    print("GEMM peak GFLOP/s:", json.dumps(peaks), flush=True)
    names, rounds = args.variants, []
    for r in range(args.rounds):
        rounds.append({})
        for name in names[r % len(names) :] + names[: r % len(names)]:
            result = run_variant(name, VARIANTS[name], args, out / f"round{r + 1}")
            result["roofline"] = result["train_gflops"] / peaks[result["precision"]]
            rounds[-1][name] = result
            print(
                f"round {r + 1}",
                name,
                json.dumps({k: v for k, v in result.items() if k != "curve"}),
                flush=True,
            )

    def median(name: str, key: str):
        values = [rnd[name][key] for rnd in rounds if rnd[name][key] is not None]
        return statistics.median(values) if len(values) == len(rounds) else None

    keys = ["minutes_to_target", "steps_to_target", "best_value", "build_s", "samples_per_s",
            "train_gflops", "roofline"]  # fmt: skip
    table = {name: {key: median(name, key) for key in keys} for name in names}
    for name in names:
        if "fp32" in names and all(
            rnd[name]["minutes_to_target"] and rnd["fp32"]["minutes_to_target"] for rnd in rounds
        ):
            table[name]["speedup_to_target"] = statistics.median(
                rnd["fp32"]["minutes_to_target"] / rnd[name]["minutes_to_target"] for rnd in rounds)  # fmt: skip
    results = {"target": args.target, "cap": args.cap, "every": args.every, "until": args.until, "rounds": rounds,
               "peak_gflops": peaks, "medians": table, "overrides": args.overrides,
               "torch_threads": torch.get_num_threads()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
