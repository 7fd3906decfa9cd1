"""How long a command takes to answer before any work: ``--help`` and config errors.

Both must answer within about 2 s on 2 CPU cores, because tab completion and every typo pay it.
The yardstick is the same machine's ``python -c "import torch"`` (what the CLI used to import
before it composed a config), timed in the same loop, so a busy machine shows in both columns.

    .venv/bin/python bench/startup.py [--runs 5] [--out docs/bench/startup.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "promptrec-train --help": [str(BIN / "promptrec-train"), "--help"],
    "promptrec-train data.bach_size=8 (Hydra's unknown-key error)": [
        str(BIN / "promptrec-train"), "data.bach_size=8"],
    "promptrec-train data.batch_size=-4 (a value out of range)": [
        str(BIN / "promptrec-train"), "data.batch_size=-4"],
    "promptrec-eval --help": [str(BIN / "promptrec-eval"), "--help"],
    "promptrec-eval (no ckpt_path)": [str(BIN / "promptrec-eval")],
    "python -c 'import torch' (yardstick)": [sys.executable, "-c", "import torch"],
}  # fmt: skip


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for command in COMMANDS.values() if args.runs > 1 else ():  # warm the file cache once
        seconds(command)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.runs):  # interleaved: drift hits every command alike
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    result = {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)}
              for name, t in times.items()}  # fmt: skip
    for name, row in result.items():
        print(f"{row['median_s']:6.2f} s median  ({row['min_s']:.2f}–{row['max_s']:.2f})  {name}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
