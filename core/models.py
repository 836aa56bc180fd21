"""Name or config -> network class, and loading a network with its checkpoint.

Official files (plain state_dicts) are loaded into the released architecture of the named kind,
exactly as before. A meshfleet checkpoint names its own architecture (``CheckpointInfo.network``),
so it loads without any other information; a kind given for it must agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    file_sha256,
    fit_problems,
    load_state,
    read_checkpoint,
)
from core.nets.bev import BEVNet
from core.nets.config import NetworkConfig
from core.nets.romp import ROMPNet

NETWORKS: dict[str, type[ROMPNet] | type[BEVNet]] = {"romp": ROMPNet, "bev": BEVNet}


def build_network(kind: str | NetworkConfig) -> ROMPNet | BEVNet:
    """A freshly initialised network: ``romp`` / ``bev`` (the released architectures) or any config."""
    config = kind if isinstance(kind, NetworkConfig) else None
    name = config.model if config else kind
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[str(name)](config)


@dataclass
class LoadedNetwork:
    """A network in eval mode, the file's sha256, and (meshfleet checkpoints) what the file says."""

    network: ROMPNet | BEVNet
    sha256: str
    info: CheckpointInfo | None = None


def load_checkpoint(checkpoint: str | Path, kind: str | None = None) -> LoadedNetwork:
    """Build the network a checkpoint holds and load it strictly.

    ``kind`` is required for official (plain) files; for meshfleet checkpoints it may be omitted,
    and when given must match the recorded model. Raises ``CheckpointError`` naming the file.
    """
    state, info = read_checkpoint(checkpoint)
    if info is None:
        if kind is None:
            raise CheckpointError(f"{checkpoint}: an official checkpoint; say which model it is (romp or bev)")
        config = NetworkConfig.official(kind)
    else:
        try:
            config = NetworkConfig.from_dict(info.network)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{checkpoint}: unusable network config ({err})") from err
        if kind is not None and kind != config.model:
            raise CheckpointError(f"{checkpoint}: holds a {config.model} model ({config.backbone}), not {kind}")
    net = build_network(config)
    try:
        load_state(net, state, checkpoint)
    except CheckpointError as err:
        if info is not None:
            raise
        fits = [other for other in NETWORKS if other != config.model
                and not fit_problems(state, build_network(other))]
        if not fits:
            raise
        raise CheckpointError(f"{checkpoint}: this looks like a {fits[0].upper()} checkpoint, not "
                              f"{config.model.upper()}: use --model {fits[0]}") from err
    return LoadedNetwork(net.eval(), file_sha256(checkpoint), info)


def load_network(kind: str | None, checkpoint: str | Path) -> tuple[ROMPNet | BEVNet, str]:
    """Build ``kind`` and load ``checkpoint`` strictly; returns (network in eval mode, sha256)."""
    loaded = load_checkpoint(checkpoint, kind)
    return loaded.network, loaded.sha256
