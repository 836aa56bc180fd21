"""BEV: front-view center/camera maps lifted to a depth-height-width volume (official: HRNet-32,
64x128x128).

The network itself stops at dense maps (:meth:`BEVNet.forward_maps`); peak parsing lives in
:mod:`core.centers`, and :meth:`BEVNet.regress_params` samples the per-person feature at the
parsed 3D center and runs the MLP ("transformer") head -- the same split as the official
``BEVv1.forward``, whose parsing step sits between the two halves.

Backbone, input size, map size M and head width come from a :class:`~core.nets.config.NetworkConfig`
(default: the released model). The depth bins follow the official anchor rule for M
(:func:`cam3d_anchors`: 64 bins at M = 128, 32 at M = 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.nets.backbones import build_backbone
from core.nets.blocks import BN_MOMENTUM, BasicBlock, BasicBlock1D, BasicBlock3D
from core.nets.config import NetworkConfig

BEV_MAP_SIZE = 128
BEV_DEPTH_BINS = 64
BEV_FEATURE_DIM = 128
BEV_PARAM_DIM = 22 * 6 + 11  # 143 regressed by the MLP; the 3 camera values come from the maps
BV_CHANNELS = 16  # bird's-eye-view feature channels (official bv_pre_layers)


def cam3d_anchors(fov_deg: float = 60.0, map_size: int = BEV_MAP_SIZE) -> np.ndarray:
    """(D,) float64 camera-scale anchors of the depth bins, nearest (s = 8) to farthest (D = 64 at 128).

    Depth levels 1, 10, 20, 100 m get (2, 25, 3, 2)/64 of the bins; within a level, s moves
    linearly from the previous level's scale to ``1 / tan(fov/2) / depth``.
    """
    depth_levels = np.array([1, 10, 20, 100], dtype=np.float32)
    bins = (np.array([2 / 64.0, 25 / 64.0, 3 / 64.0, 2 / 64.0], dtype=np.float32) * map_size).astype(np.int32)
    scale_levels = 1 / np.tan(np.radians(fov_deg / 2.0)) / depth_levels
    anchors, previous = [], 8.0
    for scale, n in zip(scale_levels, bins, strict=True):
        anchors.append(previous - np.arange(1, n + 1) / n * (previous - scale))
        previous = scale
    return np.concatenate(anchors)


def coord_volume(anchors: torch.Tensor, size: int = BEV_MAP_SIZE) -> torch.Tensor:
    """(1, D, size, size, 3) volume of (anchor_s, y, x); y, x = i / size * 2 - 1."""
    depth = anchors.numel()
    ramp = torch.arange(size, dtype=torch.float32) / size * 2 - 1
    z = anchors.view(1, depth, 1, 1, 1).expand(1, depth, size, size, 1)
    y = ramp.view(1, 1, size, 1, 1).expand(1, depth, size, size, 1)
    x = ramp.view(1, 1, 1, size, 1).expand(1, depth, size, size, 1)
    return torch.cat([z, y, x], dim=-1).contiguous()


def _head(in_ch: int, width: int, out_ch: int | None) -> nn.Sequential:
    """BasicBlock with a biased 1x1 conv shortcut [+ 1x1 output conv]."""
    shortcut = nn.Conv2d(in_ch, width, kernel_size=1, stride=1, padding=0)
    layers: list[nn.Module] = [nn.Sequential(BasicBlock(in_ch, width, downsample=shortcut))]
    if out_ch is not None:
        layers.append(nn.Conv2d(width, out_ch, kernel_size=1, stride=1, padding=0))
    return nn.Sequential(*layers)


@dataclass
class BEVMaps:
    """Dense outputs of the BEV network for a batch of B images (official D = 64, M = 128, C = 128).

    center_3d: (B, D, M, M) depth-height-width body-center confidence (raw, no sigmoid).
    cam_3d:    (B, 3, D, M, M) camera (s, y, x) at every voxel.
    features:  (B, C, M, M) front-view person features for the MLP head.
    center_fv: (B, 1, M, M) front-view center map.
    """

    center_3d: torch.Tensor
    cam_3d: torch.Tensor
    features: torch.Tensor
    center_fv: torch.Tensor


class BEVNet(nn.Module):
    """BEV v1 (``BEV.pth`` / ``BEV_ft_agora.pth``): 35.9M parameters as released."""

    cam3d_anchors: torch.Tensor
    coordmap_3d: torch.Tensor

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig.official("bev")
        if self.config.model != "bev":
            raise ValueError(f"BEVNet needs a bev config, not {self.config.model!r}")
        size, width = self.config.map_size, self.config.head_width
        self.map_size = size
        self.backbone = build_backbone(self.config.backbone)
        c = self.backbone.out_channels
        anchors = torch.from_numpy(cam3d_anchors(map_size=size)).float()
        self.depth_bins = int(anchors.numel())
        self.position_embeddings = nn.Embedding(size, width, padding_idx=0)
        self.transformer = nn.Sequential(
            nn.Linear(width, 512), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(512, BEV_PARAM_DIM),
        )
        self.register_buffer("cam3d_anchors", anchors, persistent=False)
        self.register_buffer("coordmap_3d", coord_volume(anchors, size))
        self.det_head = _head(c, width, 1 + 3)
        self.param_head = _head(c, width, None)
        bv = BV_CHANNELS
        self.bv_pre_layers = nn.Sequential(
            nn.Conv2d(c, bv, 1, 1, 0), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
            nn.Conv2d(bv, bv, 3, 1, 1), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
            nn.Conv2d(bv, bv, 1, 1, 0), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
        )
        self.bv_out_layers = nn.Sequential(
            BasicBlock1D((bv + 1 + 3) * size, 512),
            BasicBlock1D(512, 512),
            BasicBlock1D(512, self.depth_bins * 2),
        )
        self.center_map_refiner = nn.Sequential(BasicBlock3D(1))
        self.cam_map_refiner = nn.Sequential(BasicBlock3D(3))

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def forward_maps(self, images: torch.Tensor) -> BEVMaps:
        """(B, S, S, 3) RGB [0, 255] -> dense :class:`BEVMaps` (S = input size, official 512)."""
        x = self.backbone(images)
        fv = self.det_head(x)
        center_fv, cam_offset_fv = fv[:, :1], fv[:, 1:4]

        # bird's-eye view: fold H into channels, run 1D convs along the image width
        feats = self.bv_pre_layers(x)
        b, size, depth = x.shape[0], self.map_size, self.depth_bins
        folded = torch.cat([center_fv, cam_offset_fv, feats], dim=1).reshape(b, -1, size)
        bv = self.bv_out_layers(folded)
        center_bv, cam_offset_bv = bv[:, :depth], bv[:, depth:]

        center_3d = center_fv.expand(-1, depth, -1, -1) * center_bv.unsqueeze(2)
        center_3d = self.center_map_refiner(center_3d.unsqueeze(1)).squeeze(1)

        # (B,3,H,W) -> (B,1,H,W,3), broadcast over depth; the BV offset goes to channel 2 (x),
        # which is what the released checkpoints were trained with.
        cam_3d = self.coordmap_3d + cam_offset_fv.permute(0, 2, 3, 1).unsqueeze(1)
        cam_3d = torch.cat([cam_3d[..., :2], cam_3d[..., 2:] + cam_offset_bv.unsqueeze(2).unsqueeze(-1)], -1)
        cam_3d = self.cam_map_refiner(cam_3d.permute(0, 4, 1, 2, 3).contiguous())
        return BEVMaps(center_3d=center_3d, cam_3d=cam_3d, features=self.param_head(x), center_fv=center_fv)

    def regress_params(
        self, features: torch.Tensor, cams: torch.Tensor, batch_ids: torch.Tensor
    ) -> torch.Tensor:
        """Per-person parameters (N, 146) = [cam (3), MLP(feature + depth embedding) (143)].

        features: (B, C, M, M); cams: (N, 3) sampled (s, y, x); batch_ids: (N,) int64.
        The feature location is re-derived from the camera: depth bin = nearest anchor to s,
        (y, x) -> M-grid, clamped to [1, M - 1] as the official code does.
        """
        czyx = cam_to_center_index(cams, self.cam3d_anchors, self.map_size)
        sampled = features[batch_ids, :, czyx[:, 1], czyx[:, 2]]
        embedded = sampled + self.position_embeddings(czyx[:, 0])
        return torch.cat([cams, self.transformer(embedded)], dim=1)


def cam_to_center_index(cams: torch.Tensor, anchors: torch.Tensor, size: int = BEV_MAP_SIZE) -> torch.Tensor:
    """(N, 3) cameras (s, y, x) -> (N, 3) int64 voxel (z, y, x) on the D x size x size volume.

    Mirrors the official float round trip: z is normalised as argmin/128*2-1, then every axis
    goes through ((v + 1) / 2 * size).clamp(1, size - 1).long().
    """
    normed = cams.clone()
    if cams.shape[0] > 0:
        nearest = torch.argmin(torch.abs(cams[:, :1] - anchors.to(cams)[None]), dim=1)
        normed[:, 0] = nearest.to(cams.dtype) / size * 2.0 - 1.0
    else:
        normed[:, 0] = 1.0
    return torch.clamp((normed + 1) / 2 * size, 1, size - 1).long()
