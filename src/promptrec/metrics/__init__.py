"""Metrics: torchmetrics where it has them, small ``Metric`` subclasses where it does not.

``metrics.names`` (which way each metric is better) needs no torch, so the binary metrics load
on first use: reading a config does not import torchmetrics."""

from __future__ import annotations

import importlib

LAZY = ("BinaryLogLoss", "best_f1_threshold", "binary_metrics", "grouped_auc", "rank_auc")


def __getattr__(name: str):
    if name in LAZY:
        return getattr(importlib.import_module("promptrec.metrics.binary"), name)
    raise AttributeError(f"module 'promptrec.metrics' has no attribute {name!r}")


__all__ = list(LAZY)
