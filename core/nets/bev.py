"""BEV (HRNet-32): front-view center/camera maps lifted to a 64x128x128 depth-height-width volume.

The network itself stops at dense maps (:meth:`BEVNet.forward_maps`); peak parsing lives in
:mod:`core.centers`, and :meth:`BEVNet.regress_params` samples the per-person feature at the
parsed 3D center and runs the MLP ("transformer") head -- the same split as the official
``BEVv1.forward``, whose parsing step sits between the two halves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.nets.blocks import BN_MOMENTUM, BasicBlock, BasicBlock1D, BasicBlock3D
from core.nets.hrnet import HRNet32

BEV_MAP_SIZE = 128
BEV_DEPTH_BINS = 64
BEV_FEATURE_DIM = 128
BEV_PARAM_DIM = 22 * 6 + 11  # 143 regressed by the MLP; the 3 camera values come from the maps


def cam3d_anchors(fov_deg: float = 60.0, map_size: int = BEV_MAP_SIZE) -> np.ndarray:
    """(64,) float64 camera-scale anchors of the depth bins, nearest (s = 8) to farthest.

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
    """Dense outputs of the BEV network for a batch of B images.

    center_3d: (B, 64, 128, 128) depth-height-width body-center confidence (raw, no sigmoid).
    cam_3d:    (B, 3, 64, 128, 128) camera (s, y, x) at every voxel.
    features:  (B, 128, 128, 128) front-view person features for the MLP head.
    center_fv: (B, 1, 128, 128) front-view center map.
    """

    center_3d: torch.Tensor
    cam_3d: torch.Tensor
    features: torch.Tensor
    center_fv: torch.Tensor


class BEVNet(nn.Module):
    """BEV v1 (``BEV.pth`` / ``BEV_ft_agora.pth``): 35.9M parameters."""

    cam3d_anchors: torch.Tensor
    coordmap_3d: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.backbone = HRNet32()
        c = HRNet32.out_channels
        self.position_embeddings = nn.Embedding(BEV_MAP_SIZE, BEV_FEATURE_DIM, padding_idx=0)
        self.transformer = nn.Sequential(
            nn.Linear(BEV_FEATURE_DIM, 512), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(512, BEV_PARAM_DIM),
        )
        anchors = torch.from_numpy(cam3d_anchors()).float()
        self.register_buffer("cam3d_anchors", anchors, persistent=False)
        self.register_buffer("coordmap_3d", coord_volume(anchors))
        self.det_head = _head(c, 128, 1 + 3)
        self.param_head = _head(c, 128, None)
        bv = BEV_MAP_SIZE // 8
        self.bv_pre_layers = nn.Sequential(
            nn.Conv2d(c, bv, 1, 1, 0), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
            nn.Conv2d(bv, bv, 3, 1, 1), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
            nn.Conv2d(bv, bv, 1, 1, 0), nn.BatchNorm2d(bv, momentum=BN_MOMENTUM), nn.ReLU(inplace=True),
        )
        self.bv_out_layers = nn.Sequential(
            BasicBlock1D((bv + 1 + 3) * BEV_MAP_SIZE, 512),
            BasicBlock1D(512, 512),
            BasicBlock1D(512, BEV_DEPTH_BINS * 2),
        )
        self.center_map_refiner = nn.Sequential(BasicBlock3D(1))
        self.cam_map_refiner = nn.Sequential(BasicBlock3D(3))

    def forward_maps(self, images: torch.Tensor) -> BEVMaps:
        """(B, 512, 512, 3) RGB [0, 255] -> dense :class:`BEVMaps`."""
        x = self.backbone(images)
        fv = self.det_head(x)
        center_fv, cam_offset_fv = fv[:, :1], fv[:, 1:4]

        # bird's-eye view: fold H into channels, run 1D convs along the image width
        feats = self.bv_pre_layers(x)
        b, size = x.shape[0], BEV_MAP_SIZE
        folded = torch.cat([center_fv, cam_offset_fv, feats], dim=1).reshape(b, -1, size)
        bv = self.bv_out_layers(folded)
        center_bv, cam_offset_bv = bv[:, :BEV_DEPTH_BINS], bv[:, BEV_DEPTH_BINS:]

        center_3d = center_fv.expand(-1, BEV_DEPTH_BINS, -1, -1) * center_bv.unsqueeze(2)
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

        features: (B, 128, 128, 128); cams: (N, 3) sampled (s, y, x); batch_ids: (N,) int64.
        The feature location is re-derived from the camera: depth bin = nearest anchor to s,
        (y, x) -> 128-grid, clamped to [1, 127] as the official code does.
        """
        czyx = cam_to_center_index(cams, self.cam3d_anchors)
        sampled = features[batch_ids, :, czyx[:, 1], czyx[:, 2]]
        embedded = sampled + self.position_embeddings(czyx[:, 0])
        return torch.cat([cams, self.transformer(embedded)], dim=1)


def cam_to_center_index(cams: torch.Tensor, anchors: torch.Tensor, size: int = BEV_MAP_SIZE) -> torch.Tensor:
    """(N, 3) cameras (s, y, x) -> (N, 3) int64 voxel (z, y, x) on the 64x128x128 volume.

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
