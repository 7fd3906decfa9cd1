"""Turn a user mistake into one clear paragraph and a non-zero exit instead of a traceback."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from promptrec.errors import PromptRecError


def run_main(fn, cfg):
    try:
        return fn(cfg)
    except PromptRecError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        Console(stderr=True).print(f"[bold red]Error:[/] {exc}", highlight=False)
        sys.exit(1)
