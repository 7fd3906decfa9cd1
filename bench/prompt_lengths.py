"""Tokens per prompt and history kept, for several prompts side by side on the same examples.

    .venv/bin/python bench/prompt_lengths.py                         # question, text, list, compact
    .venv/bin/python bench/prompt_lengths.py --prompts question compact -- task=rating
    .venv/bin/python bench/prompt_lengths.py --markdown docs/bench/prompt_lengths.json

Each prompt's statistics are those of ``promptrec-prompts`` (analysis/prompts.py) on the
training split: token-length percentiles under the budget ``data.max_tokens``, the history items
kept against those available, and the share of prompts cut. Written to
``outputs/bench/prompt_lengths.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from promptrec.analysis.prompts import show_prompts
from promptrec.runtime.config import config_dir, register_configs

COLUMNS = [("tokens_p50", "tokens p50", ".0f"), ("tokens_p90", "p90", ".0f"),
           ("tokens_max", "max", ".0f"), ("history_kept_mean", "history kept", ".2f"),
           ("history_available_mean", "of available", ".2f"), ("truncated", "prompts cut", ".2%")]  # fmt: skip


def measure(prompt: str, overrides: list[str], out: Path) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="prompts", overrides=[f"prompt={prompt}", "split=train", "n_examples=1",
                                                        f"paths.output_dir={out / prompt}", *overrides])  # fmt: skip
    return show_prompts(cfg)


def markdown(results: dict) -> str:
    lines = ["| prompt | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]  # fmt: skip
    for prompt, stats in results["prompts"].items():
        lines.append(
            f"| `{prompt}` | " + " | ".join(format(stats[k], spec) for k, _, spec in COLUMNS) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", nargs="*", default=["question", "text", "list", "compact"])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/prompt_lengths.json"))
    parser.add_argument("--markdown", type=Path, help="print the table of a results file and exit")
    parser.add_argument("overrides", nargs="*", help="promptrec-prompts overrides (after --)")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return
    results = {"overrides": args.overrides,
               "prompts": {p: measure(p, args.overrides, args.out.with_suffix("")) for p in args.prompts}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results), end="")


if __name__ == "__main__":
    main()
