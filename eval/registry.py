"""Benchmark name -> evaluator (``evaluate(cfg: EvalConfig) -> EvalResult``, imported on use), and
what each evaluator needs: its required inputs and the split it evaluates when none is given."""

from __future__ import annotations

import importlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, replace

from eval.common import EvalConfig, EvalError, EvalResult
from pipelines.body_model_sets import is_open
from pipelines.storage import is_local, normalise, url_to_fs


@dataclass(frozen=True)
class Evaluator:
    """``module`` holds ``evaluate``; ``required``: EvalConfig fields that must be given (``--data``...);
    ``split``: the split evaluated and recorded when none is given (the one its published numbers use,
    or the only one with public ground truth)."""

    module: str
    required: tuple[str, ...]
    split: str


EVALUATORS = {
    "agora": Evaluator("eval.agora", ("data",), "validation"),  # test ground truth is withheld (server only)
    "relative-human": Evaluator("eval.relative_human", ("annots",), "test"),
    "cmu-panoptic": Evaluator("eval.cmu_panoptic", ("data",), "test"),
    "3dpw": Evaluator("eval.pw3d", ("data", "body_models"), "test"),
}
FLAGS = {"data": "--data", "annots": "--annots", "body_models": "--body-models", "predictions": "--predictions"}


def evaluator(name: str) -> Callable[[EvalConfig], EvalResult]:
    if name not in EVALUATORS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(EVALUATORS)}")
    return importlib.import_module(EVALUATORS[name].module).evaluate


def default_split(benchmark: str, annots: str | None = None) -> str | None:
    """The split evaluated when none is given: Relative Human's from ``{split}_annots.npz``, else the
    benchmark's (None for an unknown benchmark)."""
    if benchmark == "relative-human" and annots:
        base = posixpath.basename(str(annots))
        if base.endswith("_annots.npz"):
            return base.removesuffix("_annots.npz")
    return EVALUATORS[benchmark].split if benchmark in EVALUATORS else None


def with_split(cfg: EvalConfig) -> EvalConfig:
    """``cfg`` with its split filled in (it is always recorded with the run)."""
    return cfg if cfg.split else replace(cfg, split=default_split(cfg.benchmark, cfg.annots))


def check_inputs(cfg: EvalConfig, infer_first: bool = False) -> None:
    """EvalError naming the first required input that is not given or, if local, does not exist;
    ``infer_first``: predictions will be written by inference, so need not exist yet."""
    if cfg.benchmark not in EVALUATORS:
        raise EvalError(f"unknown benchmark {cfg.benchmark!r}; choose one of {sorted(EVALUATORS)}")
    for name in EVALUATORS[cfg.benchmark].required:
        if not getattr(cfg, name):
            raise EvalError(f"{FLAGS[name]}: required by eval {cfg.benchmark}")
    given = [n for n in ("data", "annots", "body_models") if getattr(cfg, n)]
    for name in [*given, *([] if infer_first else ["predictions"])]:
        uri = getattr(cfg, name)
        if not uri:
            raise EvalError(f"{FLAGS[name]}: required (or --checkpoint to run inference first)")
        if name == "body_models" and is_open(uri):
            continue  # the shipped open set, not a path
        if is_local(uri):
            fs, path = url_to_fs(normalise(uri))
            if not fs.exists(path):
                raise EvalError(f"{FLAGS[name]}: {uri} does not exist")
