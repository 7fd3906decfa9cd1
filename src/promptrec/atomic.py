"""Write then rename: every file PromptRec may later read back (checkpoints, metrics, run
records, caches) appears whole or not at all, so a crash never leaves a truncated file that a
resume, a summary or a cache hit would trust. A rename within one folder is atomic on POSIX."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A hidden sibling of ``path`` to write; it replaces ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        with open(partial, "rb+") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text)
