"""Benchmark name -> evaluator (``evaluate(cfg: EvalConfig) -> EvalResult``), imported on use."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from eval.common import EvalConfig, EvalResult

EVALUATORS = {
    "agora": "eval.agora",
    "relative-human": "eval.relative_human",
    "cmu-panoptic": "eval.cmu_panoptic",
    "3dpw": "eval.pw3d",
}


def evaluator(name: str) -> Callable[[EvalConfig], EvalResult]:
    if name not in EVALUATORS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(EVALUATORS)}")
    return importlib.import_module(EVALUATORS[name]).evaluate
