"""Load the official ROMP / BEV checkpoints, and save / load meshfleet's own.

The official release files are plain state_dicts written by ``torch.save``. They are read with
``torch.load(weights_only=True)``, so a checkpoint cannot run code. Loading is strict: every key
and shape must match, with two documented exceptions:

* BEV's ``coordmap_3d`` is a buffer computed at construction. If the file carries it (with the
  right shape) it is loaded, exactly as the official ``strict=False`` load does; if not, the
  computed value stays.
* Training checkpoints of the official repository prefix keys with ``module.`` and carry
  ``_result_parser.*`` / ``_calc_loss.*`` entries (SMPL buffers, loss state). The prefix is
  stripped and those entries are dropped, as the official ``convert_checkpoints.py`` does.

A meshfleet checkpoint is a dict ``{"format": "meshfleet-checkpoint", "version": 1, "info": {...},
"state_dict": {...}}``: the state_dict in the same key layout as the network's (official keys for
the official architectures) plus :class:`CheckpointInfo` -- network config, body-model set,
training spec, data digest -- in plain Python types, so ``weights_only`` loading still applies and
inference needs no flags. :func:`save_state_dict` writes the bare state_dict that the official
tools load (official architectures only; the caller checks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

OPTIONAL_BUFFERS = frozenset({"coordmap_3d"})
TRAINING_ONLY_PREFIXES = ("_result_parser.", "_calc_loss.")
CHECKPOINT_FORMAT = "meshfleet-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointInfo:
    """What a meshfleet checkpoint says about itself (plain JSON-like values only).

    network: ``NetworkConfig.to_dict()`` (model, backbone, input and map sizes ...);
    body_model_set: the body-model set the labels were on (``smpl`` or ``open-<version>``);
    root_align: joints were hip-centred in training (ROMP inference must centre them too);
    training: the training spec; data_digest: digest of the training data; step: optimiser steps.
    """

    network: dict[str, Any]
    body_model_set: str
    root_align: bool = True
    training: dict[str, Any] = field(default_factory=dict)
    data_digest: str = ""
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "checkpoint") -> CheckpointInfo:
        try:
            return cls(**dict(data))
        except TypeError as err:
            raise CheckpointError(f"{source}: malformed meshfleet checkpoint info ({err})") from err


def _load(path: Path, mmap: bool = False) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises many types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo | None]:
    """(state_dict, info) of a meshfleet checkpoint; (state_dict, None) for any other file."""
    path = Path(path)
    obj = _load(path)
    info = None
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("version") != CHECKPOINT_VERSION or not isinstance(obj.get("info"), Mapping):
            raise CheckpointError(f"{path}: unsupported meshfleet checkpoint version {obj.get('version')!r}")
        info = CheckpointInfo.from_dict(obj["info"], str(path))
    return _state_of(obj, path), info


def recorded_model(path: str | Path) -> str | None:
    """The model (romp / bev) a meshfleet checkpoint records; None for any other or unreadable
    file. Memory-maps the file, so the weights are not read."""
    try:
        obj = _load(Path(path), mmap=True)
    except CheckpointError:
        return None
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT and isinstance(obj.get("info"), Mapping):
        network = obj["info"].get("network")
        return str(network.get("model")) if isinstance(network, Mapping) else None
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict (or ``{'state_dict'|'model_state_dict': ...}``) safely from ``path``."""
    path = Path(path)
    return _state_of(_load(path), path)


def _state_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
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


def load_weights(model: nn.Module, path: str | Path) -> str:
    """Load ``path`` into ``model`` strictly (see module doc); returns the file's sha256.

    Raises ``CheckpointError`` naming the file and the first missing, unexpected or
    wrongly-shaped keys.
    """
    load_state(model, read_state_dict(path), path)
    return file_sha256(path)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Strictly copy ``state`` (read from ``path``, named in errors) into ``model``."""
    problems = fit_problems(state, model)
    if problems:
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__} ({len(state)} entries, "
            f"{len(model.state_dict())} expected); " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=False)


def save_checkpoint(path: str | Path, state: Mapping[str, torch.Tensor], info: CheckpointInfo) -> Path:
    """Write a meshfleet checkpoint (state_dict + ``info``) to the local file ``path``."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "info": info.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in state.items()}}
    return _save(payload, Path(path))


def save_state_dict(path: str | Path, state: Mapping[str, torch.Tensor]) -> Path:
    """Write a bare state_dict, as the official release files are (``torch.load`` + ``load_state_dict``)."""
    return _save({k: v.detach().cpu() for k, v in state.items()}, Path(path))


def _save(payload: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)  # readers never see a half-written file
    return path
