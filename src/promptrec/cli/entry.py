"""Turn a user mistake into one clear paragraph and a non-zero exit instead of a traceback.

Inside a Hydra multirun the error is printed and then re-raised, so Hydra records that job as
failed and the sweep goes on to its next job (``sys.exit`` would end the whole sweep).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

from promptrec.errors import PromptRecError
from promptrec.runtime.tracking import in_multirun


def run_main(fn, *args):
    """``fn(*args)``; a PromptRecError becomes one red paragraph on stderr and exit code 1."""
    try:
        return fn(*args)
    except PromptRecError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        Console(stderr=True).print(f"[bold red]Error:[/] {exc}", highlight=False)
        if in_multirun():
            raise
        sys.exit(1)
