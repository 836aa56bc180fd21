"""Name -> network class, and loading a network with its checkpoint."""

from __future__ import annotations

from pathlib import Path

from core.checkpoints import load_weights
from core.nets.bev import BEVNet
from core.nets.romp import ROMPNet

NETWORKS: dict[str, type[ROMPNet] | type[BEVNet]] = {"romp": ROMPNet, "bev": BEVNet}


def build_network(kind: str) -> ROMPNet | BEVNet:
    """A freshly initialised network: ``romp`` or ``bev``."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown model {kind!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[kind]()


def load_network(kind: str, checkpoint: str | Path) -> tuple[ROMPNet | BEVNet, str]:
    """Build ``kind`` and load ``checkpoint`` strictly; returns (network in eval mode, sha256)."""
    net = build_network(kind)
    digest = load_weights(net, checkpoint)
    return net.eval(), digest
