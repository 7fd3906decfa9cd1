"""Prompt strategies: one module per strategy, each registered by its ``name`` when imported.

Every module in this folder is imported here, so a new strategy needs no registration line.
"""

from __future__ import annotations

import importlib
import pkgutil

from promptrec.strategies.base import Strategy, build_strategy, strategy_class

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Strategy", "build_strategy", "strategy_class"]
