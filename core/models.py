"""Name -> network class, and loading a network with its checkpoint."""

from __future__ import annotations

from pathlib import Path

from core.checkpoints import CheckpointError, fit_problems, load_weights, read_state_dict
from core.nets.bev import BEVNet
from core.nets.romp import ROMPNet

NETWORKS: dict[str, type[ROMPNet] | type[BEVNet]] = {"romp": ROMPNet, "bev": BEVNet}


def build_network(kind: str) -> ROMPNet | BEVNet:
    """A freshly initialised network: ``romp`` or ``bev``."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown model {kind!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[kind]()


def load_network(kind: str, checkpoint: str | Path) -> tuple[ROMPNet | BEVNet, str]:
    """Build ``kind`` and load ``checkpoint`` strictly; returns (network in eval mode, sha256).

    A checkpoint of the other network is refused saying so (``this looks like a BEV checkpoint``).
    """
    net = build_network(kind)
    state = read_state_dict(checkpoint)
    try:
        digest = load_weights(net, checkpoint, state)
    except CheckpointError as err:
        fits = [other for other in NETWORKS if other != kind and not fit_problems(state, build_network(other))]
        if not fits:
            raise
        raise CheckpointError(f"{checkpoint}: this looks like a {fits[0].upper()} checkpoint, not {kind.upper()}: "
                              f"use --model {fits[0]}") from err
    return net.eval(), digest
