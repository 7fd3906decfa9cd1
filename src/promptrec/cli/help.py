"""``--help`` of the Hydra commands, answered from ``conf/`` before Hydra starts.

Hydra's own help composes every option of every config group first (about 2 s here, for each
Tab of a completion too) and shows one template for every command. Here each command shows its
own config's header (what it does, example commands), its main options and the groups its
defaults list names, with their options: files read in milliseconds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from promptrec.runtime.config import config_dir


def header(path: Path) -> list[str]:
    """The comment lines a config file starts with, without their ``#``."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return lines


def groups(path: Path) -> list[str]:
    """The config groups the file's defaults list names (``- data: movielens_100k``), each with
    the options found in its folder."""
    root, listed = path.parent, []
    for entry in OmegaConf.load(path).get("defaults", []):
        name = next(iter(entry)) if OmegaConf.is_dict(entry) else None
        if name is None or name == "hydra" or not (root / name).is_dir():
            continue
        options = sorted(p.stem for p in (root / name).glob("*.yaml"))
        listed.append(f"  {name}: {', '.join(options)}")
    return listed


def help_text(command: str, config_name: str, main_options: str = "") -> str:
    path = Path(config_dir()) / f"{config_name}.yaml"
    about, *more = header(path)  # what it does, then example commands and notes
    parts = [f"{command}: {about[0].lower()}{about[1:]}", *more,
             f"\nUsage: {command} [group=option ...] [key=value ...]"]  # fmt: skip
    if main_options:
        parts.append("\nMain options (defaults first)\n" + main_options.rstrip())
    parts.append("\nEvery group and its options:\n" + "\n".join(groups(path)))
    parts.append(f"\nThe whole config: {command} --cfg job        Hydra's own flags: --hydra-help")
    return "\n".join(parts)


def answer_help(command: str, config_name: str, main_options: str = "") -> None:
    """With ``--help`` or ``-h`` on the command line: print the command's help and exit."""
    if {"--help", "-h"} & set(sys.argv[1:]):
        try:
            print(help_text(command, config_name, main_options), flush=True)
        except BrokenPipeError:  # `--help | head`: the reader left, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def with_help(command: str, config_name: str, hydra_main, main_options: str = ""):
    """A Hydra command's entry point: ``--help`` answered here (Hydra's composes every option of
    every group first, ~2 s), anything else handed to ``hydra_main``."""

    def main() -> None:
        answer_help(command, config_name, main_options)
        hydra_main()

    return main
