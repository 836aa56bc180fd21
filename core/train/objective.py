"""The training objective: network outputs + batch -> weighted loss terms (what one step minimises).

    dense = forward_dense(net, batch.image)                  maps of the whole batch
    targets = make_targets(net, batch, config)               centre heatmaps, supervised cells
    losses = compute_losses(net, dense, targets, batch, body, config)
    losses["total"].backward()

People are supervised at their ground-truth centre cells (the official parameter sampling with
``match_preds_to_gts_for_supervision`` off), or at the nearest predicted peak of their image
(``match_to_peaks``, ROMP v1's setting). ROMP uses weak-perspective projection, BEV perspective;
both compare joints centred on the hip midpoint, as the official training does
(``smpl_mesh_root_align``), which is why meshfleet ROMP checkpoints infer with root alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from core.body_models import ROOT_ALIGN_JOINTS, BodyModel
from core.cameras import (
    bev_cam_to_trans,
    perspective_project,
    trans_to_bev_cam,
    trans_to_romp_cam,
    weak_perspective_project,
)
from core.centers import parse_center_map_2d, parse_center_map_3d
from core.nets.bev import BEVMaps, BEVNet
from core.nets.romp import ROMPNet
from core.rotations import rot6d_to_rotmat
from core.train.augment import FOCAL_CANVAS
from core.train.batch import TrainBatch
from core.train.losses import (
    age_class_loss,
    camera_loss,
    focal_loss,
    focal_loss_3d,
    keypoint_2d_loss,
    kid_offset_loss,
    mpjpe_loss,
    pa_mpjpe_loss,
    pose_loss,
    relative_depth_loss,
    shape_loss,
    weighted_mean,
)
from core.train.prior import joint_limit_prior
from core.train.targets import CenterTargets, center_targets, match_to_peaks

ROMP_SCALE_BASE = 1.1  # ROMP's camera scale s = 1.1 ** raw keeps it positive


@dataclass(frozen=True)
class LossWeights:
    """Weight of every term (official names in brackets: ``configs/v1.yml`` / ``v6_train.yml``)."""

    center_map: float  # [CenterMap]
    shape: float  # [Shape]
    center_map_3d: float = 0.0  # [CenterMap_3D]
    mpjpe: float = 200.0  # [MPJPE]
    pa_mpjpe: float = 360.0  # [PAMPJPE]
    keypoints_2d: float = 400.0  # [P_KP2D]
    pose: float = 80.0  # [Pose]
    prior: float = 1.6  # [Prior] (applied to the open joint-limit prior, not the GMM)
    cam: float = 200.0  # [Cam]
    relative_depth: float = 0.0  # [R_Depth]
    relative_age: float = 0.0  # [R_Age]


ROMP_V1_WEIGHTS = LossWeights(center_map=160.0, shape=6.0)
BEV_V6_WEIGHTS = LossWeights(center_map=100.0, shape=60.0, center_map_3d=1000.0, relative_depth=400.0,
                             relative_age=4000.0)


@dataclass(frozen=True)
class ObjectiveConfig:
    """weights; collision_aware centres (ROMP v1 on); match_to_peaks: supervise at the nearest
    predicted peak above ``peak_threshold`` (v1 0.2, v6 0.12: centermap_conf_thresh) instead of
    the ground-truth cell; max_supervised: people supervised per batch (BEV 64), None = all."""

    weights: LossWeights
    collision_aware: bool = True
    match_to_peaks: bool = False
    peak_threshold: float = 0.2
    max_supervised: int | None = None

    @classmethod
    def official(cls, model: str, **changes: object) -> ObjectiveConfig:
        base = (cls(ROMP_V1_WEIGHTS, peak_threshold=0.2) if model == "romp"
                else cls(BEV_V6_WEIGHTS, peak_threshold=0.12, max_supervised=64))
        return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class DenseOutputs:
    """center_map (B, 1, M, M) (BEV: the front-view map); ROMP params_map (B, 145, M, M) with the
    scale channel already 1.1 ** raw; BEV maps."""

    center_map: torch.Tensor
    params_map: torch.Tensor | None = None
    bev: BEVMaps | None = None


def forward_dense(net: ROMPNet | BEVNet, images: torch.Tensor) -> DenseOutputs:
    """(B, S, S, 3) uint8 or float RGB -> :class:`DenseOutputs` (training mode, with gradients)."""
    images = images.float()
    if isinstance(net, ROMPNet):
        center, params = net(images)
        params = torch.cat([torch.pow(ROMP_SCALE_BASE, params[:, :1]), params[:, 1:]], dim=1)
        return DenseOutputs(center_map=center, params_map=params)
    maps = net.forward_maps(images)
    return DenseOutputs(center_map=maps.center_fv, bev=maps)


def make_targets(net: ROMPNet | BEVNet, batch: TrainBatch, config: ObjectiveConfig) -> CenterTargets:
    """Centre heatmaps and supervised cells for ``net``'s map size (BEV: also the 3D map)."""
    size = net.config.map_size
    common = dict(joints2d=batch.joints2d, joints2d_valid=batch.joints2d_valid, bbox=batch.bbox,
                  person_valid=batch.person_valid, has_joints2d=batch.has_joints2d, map_size=size,
                  collision_aware=config.collision_aware)
    if isinstance(net, ROMPNet):
        return center_targets(**common)  # type: ignore[arg-type]
    trans = torch.where(batch.has_cam.unsqueeze(-1), batch.cam_trans, batch.cam_trans.new_tensor([0.0, 0.0, 1.0]))
    cams = trans_to_bev_cam(trans.reshape(-1, 3)).reshape(trans.shape)
    return center_targets(**common, scales=cams[..., 0], has_scale=batch.has_cam,  # type: ignore[arg-type]
                          anchors=net.cam3d_anchors)


@dataclass
class Supervised:
    """The supervised people: batch (N,) and person (N,) indices, cells (N, 3) where they are read."""

    batch: torch.Tensor
    person: torch.Tensor
    cells: torch.Tensor


def supervised_people(net: ROMPNet | BEVNet, dense: DenseOutputs, targets: CenterTargets,
                      config: ObjectiveConfig) -> Supervised:
    batch, person = torch.where(targets.valid)
    if config.max_supervised is not None:
        batch, person = batch[:config.max_supervised], person[:config.max_supervised]
    cells = targets.cells[batch, person]
    if config.match_to_peaks:
        with torch.no_grad():
            if dense.bev is None:
                peaks = parse_center_map_2d(dense.center_map.detach(), config.peak_threshold)
            else:
                peaks = parse_center_map_3d(dense.bev.center_3d.detach(), config.peak_threshold)
        cells = match_to_peaks(batch, cells, peaks, net.config.map_size)
    return Supervised(batch, person, cells)


def regress_people(net: ROMPNet | BEVNet, dense: DenseOutputs, people: Supervised) -> torch.Tensor:
    """(N, 145) ROMP / (N, 146) BEV parameter vectors read at the supervised cells."""
    z, y, x = people.cells.unbind(-1)
    if dense.params_map is not None:
        return dense.params_map[people.batch, :, y, x]
    assert isinstance(net, BEVNet) and dense.bev is not None
    cams = dense.bev.cam_3d[people.batch, :, z, y, x]
    return net.regress_params(dense.bev.features, cams, people.batch)


@dataclass
class PersonEstimates:
    """cam (N, 3); rotmats (N, 22, 3, 3) global + 21 body joints; betas (N, 10 | 11); joints
    (N, 71, 3) hip-centred metres; pj2d (N, 71, 2) normalised canvas; depth (N,) metres."""

    cam: torch.Tensor
    rotmats: torch.Tensor
    betas: torch.Tensor
    joints: torch.Tensor
    pj2d: torch.Tensor
    depth: torch.Tensor


def person_estimates(params: torch.Tensor, body: BodyModel) -> PersonEstimates:
    """Decode parameter vectors (ROMP 145 / BEV 146), pose the body, project its joints."""
    n = params.shape[0]
    cam, betas = params[:, :3], params[:, 135:]
    rotmats = rot6d_to_rotmat(params[:, 3:135].reshape(n, 22, 6))
    hands = torch.eye(3, dtype=params.dtype, device=params.device).expand(n, 2, 3, 3)
    joints = body.forward_rotmats(betas, torch.cat([rotmats, hands], dim=1)).joints
    joints = joints - joints[:, list(ROOT_ALIGN_JOINTS)].mean(1, keepdim=True)
    if params.shape[1] == 145:  # ROMP: weak perspective
        pj2d = weak_perspective_project(joints, cam)
        depth = FOCAL_CANVAS / cam[:, 0]
    else:
        trans = bev_cam_to_trans(cam)
        pj2d = perspective_project(joints, trans)
        depth = trans[:, 2]
    return PersonEstimates(cam, rotmats, betas, joints, pj2d, depth)


@dataclass
class LossTerms:
    """Unweighted terms (``raw``), weighted terms and their sum ``total`` (scalar tensors)."""

    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    weighted: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return torch.stack(list(self.weighted.values())).sum()


def compute_losses(net: ROMPNet | BEVNet, dense: DenseOutputs, targets: CenterTargets, batch: TrainBatch,
                   body: BodyModel, config: ObjectiveConfig) -> LossTerms:
    """Every term of the recipe for ``net``'s kind, respecting validity masks and person weights."""
    w = config.weights
    terms = LossTerms()
    image_mask = batch.all_labelled.to(dense.center_map.dtype)
    terms.raw["center_map"] = weighted_mean(focal_loss(dense.center_map, targets.heatmap), image_mask)
    if dense.bev is not None:
        assert targets.heatmap_3d is not None and targets.heatmap_3d_valid is not None
        mask3d = image_mask * targets.heatmap_3d_valid.to(image_mask.dtype)
        terms.raw["center_map_3d"] = weighted_mean(focal_loss_3d(dense.bev.center_3d, targets.heatmap_3d), mask3d)

    people = supervised_people(net, dense, targets, config)
    est = person_estimates(regress_people(net, dense, people), body)
    b, p = people.batch, people.person
    weight = batch.weight[b, p]

    def flag(name: str) -> torch.Tensor:
        return getattr(batch, name)[b, p].to(weight.dtype) * weight

    has_cam = batch.has_cam[b, p].unsqueeze(-1)
    trans = torch.where(has_cam, batch.cam_trans[b, p], batch.cam_trans.new_tensor([0.0, 0.0, 1.0]))  # no 0-depth NaN
    gt_cams = trans_to_romp_cam(trans) if dense.params_map is not None else trans_to_bev_cam(trans)
    j2d_valid = batch.joints2d_valid[b, p]
    j3d_valid = batch.has_joints3d[b, p].unsqueeze(-1).expand(-1, est.joints.shape[1])
    terms.raw["keypoints_2d"] = weighted_mean(keypoint_2d_loss(est.pj2d, batch.joints2d[b, p], j2d_valid),
                                              flag("has_joints2d") * j2d_valid.any(-1))
    terms.raw["mpjpe"] = weighted_mean(mpjpe_loss(est.joints, batch.joints3d[b, p], j3d_valid), flag("has_joints3d"))
    terms.raw["pa_mpjpe"] = weighted_mean(pa_mpjpe_loss(est.joints, batch.joints3d[b, p], j3d_valid),
                                          flag("has_joints3d"))
    terms.raw["pose"] = weighted_mean(pose_loss(est.rotmats, batch.smpl_thetas[b, p]), flag("has_smpl"))
    terms.raw["shape"] = weighted_mean(shape_loss(est.betas, batch.smpl_betas[b, p], batch.has_smpl[b, p]), weight)
    terms.raw["prior"] = weighted_mean(joint_limit_prior(est.rotmats[:, 1:]), weight)
    terms.raw["cam"] = weighted_mean(camera_loss(est.cam, gt_cams), flag("has_cam"))
    if w.relative_depth:
        depth = est.depth.new_zeros(batch.person_valid.shape).index_put((b, p), est.depth)
        layer_ok = torch.zeros_like(batch.person_valid).index_put((b, p), batch.has_depth_layer[b, p])
        terms.raw["relative_depth"] = relative_depth_loss(depth, batch.depth_layer, layer_ok, batch.weight)
    if w.relative_age and est.betas.shape[1] > 10:
        kid = est.betas[:, 10]
        age = age_class_loss(kid, batch.age_class[b, p]) * batch.has_age[b, p]
        offset = kid_offset_loss(kid, batch.smpl_betas[b, p, 10]) * batch.has_smpl[b, p]
        terms.raw["relative_age"] = weighted_mean(age + 2 * offset, flag("has_age").maximum(flag("has_smpl")))
    for name, value in terms.raw.items():
        factor = getattr(w, name)
        if factor:
            terms.weighted[name] = value * factor
    return terms
