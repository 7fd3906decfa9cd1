"""The package's shape stays as docs/architecture.md draws it: each layer imports only from the
layers below it, and no function grows past 50 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "promptrec"

# Bottom to top. A module may import its own package and any package on a lower floor.
FLOORS = [
    ("errors", "atomic"),  # the foundation: one exception type, write-then-rename
    ("data",),  # sources, loaders, splits, catalogue: plain frames
    ("metrics",),  # binary, ranking, slices; every metric's name and direction
    ("tasks",),  # examples, loss, evaluation, headline metrics, each task's schema
    ("prompts",),  # templates, macros, contexts, the encoder (text → ids)
    ("strategies",),  # one class per prompt strategy
    ("models",),  # backbones, ID baselines, tuning modes
    ("pipeline",),  # LightningDataModule, token cache, LightningModule
    ("runtime",),  # config, run building, tracking, resume, outputs, plots
    ("analysis", "experiments"),  # explain/robustness/prompt views; comparing runs
    ("cli",),  # thin command entries over the functions below
    ("train",),  # the old `python -m promptrec.train`, kept for launch scripts
]
FLOOR = {part: level for level, parts in enumerate(FLOORS) for part in parts}


def _part(module: str) -> str | None:
    """``promptrec.pipeline.module`` → ``pipeline``; other packages → None."""
    names = module.split(".")
    return names[1] if names[0] == "promptrec" and len(names) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_floor():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert parts - {"__init__"} == set(FLOOR), "add a new package to FLOORS (and the docs)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    back_edges = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (part := _part(module)) is not None
        and part != own
        and (FLOOR[part] > FLOOR[own] or FLOOR[part] == FLOOR[own])
    ]
    assert not back_edges, f"{own} (floor {FLOOR[own]}) imports upward or sideways: {back_edges}"


def test_the_check_sees_a_back_edge(tmp_path):
    """The rule above can fail: a data module importing a task is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from promptrec.tasks import build_task\nimport promptrec.errors\n")
    edges = [m for _, m in _imports(bad) if FLOOR[_part(m)] > FLOOR["data"]]
    assert edges == ["promptrec.tasks"]


def test_no_function_is_longer_than_50_lines():
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 50
    ]
    assert not long, f"split these functions: {long}"
