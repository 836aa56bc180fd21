"""Load the official ROMP / BEV checkpoints (and meshfleet's own, saved in the same format).

The official release files are plain state_dicts written by ``torch.save``. They are read with
``torch.load(weights_only=True)``, so a checkpoint cannot run code. Loading is strict: every key
and shape must match, with two documented exceptions:

* BEV's ``coordmap_3d`` is a buffer computed at construction. If the file carries it (with the
  right shape) it is loaded, exactly as the official ``strict=False`` load does; if not, the
  computed value stays.
* Training checkpoints of the official repository prefix keys with ``module.`` and carry
  ``_result_parser.*`` / ``_calc_loss.*`` entries (SMPL buffers, loss state). The prefix is
  stripped and those entries are dropped, as the official ``convert_checkpoints.py`` does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

OPTIONAL_BUFFERS = frozenset({"coordmap_3d"})
TRAINING_ONLY_PREFIXES = ("_result_parser.", "_calc_loss.")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict (or ``{'state_dict'|'model_state_dict': ...}``) safely from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    for wrapper in ("model_state_dict", "state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state_dict of tensors, got {type(obj).__name__}")
    return _normalise_keys(dict(obj), path)


def _normalise_keys(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    dropped = [k for k in state if k.replace("module.", "", 1).startswith(TRAINING_ONLY_PREFIXES)]
    if any(k.startswith("module.") for k in state) or dropped:
        log.info("%s: training checkpoint: stripping 'module.' and dropping %d training-only entries",
                 path, len(dropped))
    return {k.removeprefix("module."): v for k, v in state.items() if k not in dropped}


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def fit_problems(state: Mapping[str, torch.Tensor], model: nn.Module) -> list[str]:
    """What keeps ``state`` from loading into ``model`` strictly: missing, unexpected and wrongly
    shaped keys (empty if it fits)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in OPTIONAL_BUFFERS]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if mismatched:
        problems.append(f"wrong shapes: {_describe(mismatched)}")
    return problems


def load_weights(model: nn.Module, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> str:
    """Load ``path`` (or its already read ``state``) into ``model`` strictly (see module doc);
    returns the file's sha256.

    Raises ``CheckpointError`` naming the file and the first missing, unexpected or
    wrongly-shaped keys.
    """
    state = read_state_dict(path) if state is None else state
    problems = fit_problems(state, model)
    if problems:
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__} ({len(state)} entries, "
            f"{len(model.state_dict())} expected); " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=False)
    return file_sha256(path)
