"""Batched ROMP / BEV inference: images in, per-person SMPL arrays out.

``Predictor(model, body_models, settings).predict(images)`` runs, for a list of BGR uint8 images
of any sizes, the same steps as the official ``simple_romp`` wrappers -- but on the whole batch
at once, on any device:

    prepare (CPU, per image)  pad to square, cubic resize to the input size (official 512);
                              crops for long images (BEV)
    network (batched)         backbone (official HRNet-32) + ROMP or BEV head
    parse                     center peaks -> per-person parameter vectors -> SMPL params
    body model (batched)      SMPL (ROMP) or SMPL-A / SMIL (BEV) -> vertices, 71 joints
    cameras                   ROMP: weak perspective + PnP cam_trans; BEV: perspective
    BEV post-processing       NMS by projection, outlier removal, long-image merging

``prepare`` and ``run`` are separate so that a pipeline can pre-process on CPU workers and
ship ready batches to GPU actors.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core import crowd
from core.body_models import BodyModelSet, BodyOutput, root_align
from core.cameras import (
    CANVAS,
    bev_cam_to_trans,
    perspective_project,
    pnp_translation,
    weak_perspective_project,
)
from core.centers import parse_center_map_2d, parse_center_map_3d
from core.nets.bev import BEVNet
from core.nets.romp import ROMPNet
from core.params import SMPLParams, age_class, unpack_params
from core.preprocess import INPUT_SIZE, SquarePad, canvas_to_pixels, check_image, prepare_input
from core.settings import PredictorSettings, Thresholds
from core.suppression import remove_outliers, suppress_duplicates

ROMP_BETAS, BEV_BETAS = 10, 11
DEFAULT_GPU_BATCH = 16


@dataclass
class PreparedImage:
    """One image turned into network views (1 view, or one per crop of a long image).

    inputs: (V, S, S, 3) uint8 RGB (S = the network's input size, official 512); offsets: (V, 3)
    float32 (top, left, side) mapping each
    view's canvas to its own pixels; crop: (V,) int64 crop number, -1 for the whole image.
    """

    inputs: np.ndarray
    offsets: np.ndarray
    crop: np.ndarray
    height: int
    width: int
    plan: crowd.CropPlan | None = None


@dataclass
class PreparedBatch:
    """Views of B images stacked for the network; ``view_image`` (V,) maps views to images."""

    images: list[PreparedImage]
    inputs: np.ndarray = field(init=False)
    offsets: np.ndarray = field(init=False)
    view_image: np.ndarray = field(init=False)
    view_crop: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if not self.images:
            self.inputs = np.zeros((0, CANVAS, CANVAS, 3), np.uint8)
            self.offsets = np.zeros((0, 3), np.float32)
            self.view_image = np.zeros(0, np.int64)
            self.view_crop = np.zeros(0, np.int64)
            return
        self.inputs = np.concatenate([im.inputs for im in self.images])
        self.offsets = np.concatenate([im.offsets for im in self.images])
        self.view_image = np.concatenate(
            [np.full(len(im.crop), i, np.int64) for i, im in enumerate(self.images)]
        )
        self.view_crop = np.concatenate([im.crop for im in self.images])


@dataclass
class Predictions:
    """Per-person results of a batch, image-major; row order within an image is the official one.

    image_index (N,) int64 -- which input image; person (N,) int32 -- index within that image;
    center_conf (N,); cam (N, 3) ROMP (s, tx, ty) / BEV (s, y, x); cam_trans (N, 3) metres;
    smpl_thetas (N, 72); smpl_betas (N, 10 | 11); joints (N, 71, 3) metres; pj2d_org (N, 71, 2)
    original-image pixels; verts (N, V, 3) if requested (V = 6890 for SMPL); age_class (N,) int8 (BEV);
    pnp_fallback (N,) bool (ROMP: True where the official PnP would have returned [-1,-1,-1]);
    image_hw (B, 2) int64.
    """

    model: str
    image_index: np.ndarray
    person: np.ndarray
    center_conf: np.ndarray
    cam: np.ndarray
    cam_trans: np.ndarray
    smpl_thetas: np.ndarray
    smpl_betas: np.ndarray
    joints: np.ndarray
    pj2d_org: np.ndarray
    image_hw: np.ndarray
    verts: np.ndarray | None = None
    age_class: np.ndarray | None = None
    pnp_fallback: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.image_index.shape[0])

    def rows_of(self, image: int) -> np.ndarray:
        """Indices of the people found in input image ``image``."""
        return np.flatnonzero(self.image_index == image)


@dataclass
class _People:
    """Working set of detected people (torch, on the model's device)."""

    view: torch.Tensor  # (N,) int64
    conf: torch.Tensor  # (N,)
    params: SMPLParams
    body: BodyOutput | None = None
    cam_trans: torch.Tensor | None = None
    pj2d: torch.Tensor | None = None  # pixels of the view, or of the image once finalised
    pnp_fallback: torch.Tensor | None = None

    def take(self, idx: torch.Tensor) -> _People:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[idx]

        body = None if self.body is None else BodyOutput(self.body.verts[idx], self.body.joints[idx])
        params = SMPLParams(self.params.cam[idx], self.params.smpl_thetas[idx], self.params.smpl_betas[idx])
        return _People(self.view[idx], self.conf[idx], params, body, pick(self.cam_trans), pick(self.pj2d),
                       pick(self.pnp_fallback))


@dataclass(frozen=True)
class ImagePreparer:
    """The CPU stage: one BGR image -> its network views; needs the model kind, crowd mode and
    the network's input size.

    Long images (w / h >= 2) are split into crops for BEV in crowd mode, as the official code does.
    ``hflip`` mirrors the image left-right first (flip test-time augmentation).
    """

    kind: str
    crowd: bool = True
    overlap: float = 0.8
    input_size: int = INPUT_SIZE
    hflip: bool = False

    def __call__(self, image: np.ndarray) -> PreparedImage:
        check_image(image)
        if self.hflip:
            image = np.ascontiguousarray(image[:, ::-1])
        h, w = image.shape[:2]
        if self.kind == "bev" and self.crowd and crowd.is_long_image(h, w):
            return self._crops(image)
        inp, pad = prepare_input(image, self.input_size)
        return PreparedImage(inp[None], np.array([pad.as_offsets()], np.float32), np.array([-1]), h, w)

    def _crops(self, image: np.ndarray) -> PreparedImage:
        h, w = image.shape[:2]
        plan = crowd.plan_crops(h, w, self.overlap)
        padded, _ = crowd.pad_sides(image, self.overlap)
        inputs, offsets = [], []
        for k in range(plan.count):
            inp, pad = prepare_input(plan.crop(padded, k), self.input_size)
            inputs.append(inp)
            offsets.append((0.0, 0.0, float(pad.side)))  # the official crop projection has no offset
        return PreparedImage(np.stack(inputs), np.array(offsets, np.float32), np.arange(plan.count), h, w, plan)

    @classmethod
    def for_model(cls, kind: str, settings: PredictorSettings, input_size: int = INPUT_SIZE) -> ImagePreparer:
        return cls(kind=kind, crowd=settings.crowd, overlap=settings.thresholds(kind).overlap,
                   input_size=input_size, hflip=settings.hflip)


def _channels_last_convs(model: ROMPNet | BEVNet) -> ROMPNet | BEVNet:
    """Run the backbone NHWC with channels-last conv weights (faster with cuDNN)."""
    model.backbone.channels_last = True
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


class Predictor:
    """Batched ROMP or BEV inference with the official pre- and post-processing."""

    def __init__(self, model: ROMPNet | BEVNet, body_models: BodyModelSet, settings: PredictorSettings):
        if isinstance(model, ROMPNet):
            self.kind = "romp"
        elif isinstance(model, BEVNet):
            self.kind = "bev"
            if body_models.smpla is None or body_models.smil is None:
                raise ValueError("BEV needs SMPL-A and SMIL: load the body models with for_bev=True")
        else:
            raise TypeError(f"model must be a ROMPNet or BEVNet, not {type(model).__name__}")
        self.settings = settings
        self.thresholds: Thresholds = settings.thresholds(self.kind)
        self.device = resolve_device(settings.device)
        if settings.precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"precision {settings.precision} needs a CUDA device, not {self.device}")
        self.batch_size = settings.batch_size or (DEFAULT_GPU_BATCH if self.device.type == "cuda" else 1)
        self.prepare_image = ImagePreparer.for_model(self.kind, settings, model.input_size)
        self.model = model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model = _channels_last_convs(self.model)
        self.body_models = body_models.to(self.device)

    # -- CPU stage ---------------------------------------------------------------------------

    def prepare(self, images: Sequence[np.ndarray]) -> PreparedBatch:
        return PreparedBatch([self.prepare_image(im) for im in images])

    # -- device stage ------------------------------------------------------------------------

    def predict(self, images: Sequence[np.ndarray]) -> Predictions:
        """Run on a list of (h, w, 3) uint8 BGR images; see :class:`Predictions`."""
        return self.run(self.prepare(images))

    @torch.inference_mode()
    def run(self, batch: PreparedBatch) -> Predictions:
        people = self._detect(batch)
        if self.kind == "romp":
            people = self._romp_post(people, batch)
        else:
            people = self._bev_post(people, batch)
        return self._to_predictions(people, batch)

    def _autocast(self):
        if self.settings.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.settings.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def _detect(self, batch: PreparedBatch) -> _People:
        """Network + center parsing + parameter unpacking over all views, in micro-batches."""
        found = []
        step = self.batch_size
        for start in range(0, batch.inputs.shape[0], step):
            chunk = torch.from_numpy(batch.inputs[start:start + step]).to(self.device).float()
            view, conf, params = self._detect_chunk(chunk)
            found.append((view + start, conf, params))
        if not found:
            empty = torch.zeros(0, 3 + 6 + 126 + self._num_betas, device=self.device)
            found.append((torch.zeros(0, dtype=torch.long, device=self.device),
                          torch.zeros(0, device=self.device), empty))
        view, conf, params = (torch.cat(parts) for parts in zip(*found, strict=True))
        return _People(view=view, conf=conf, params=unpack_params(params, self._num_betas))

    @property
    def _num_betas(self) -> int:
        return ROMP_BETAS if self.kind == "romp" else BEV_BETAS

    def _detect_chunk(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, S, S, 3) float -> view ids (N,), confidences (N,), raw parameters (N, 145 | 146)."""
        if isinstance(self.model, ROMPNet):
            with self._autocast():
                center_maps, params_maps = self.model(images)
            peaks = parse_center_map_2d(center_maps.float(), self.thresholds.center)
            params_maps = params_maps.float()
            b, c = params_maps.shape[:2]
            params = params_maps.view(b, c, -1).permute(0, 2, 1)[peaks.batch_ids, peaks.index[:, 0]]
            params = torch.cat([torch.pow(1.1, params[:, :1]), params[:, 1:]], dim=1)
            return peaks.batch_ids, peaks.scores, params
        assert isinstance(self.model, BEVNet)
        with self._autocast():
            maps = self.model.forward_maps(images)
        peaks = parse_center_map_3d(maps.center_3d.float(), self.thresholds.center)
        z, y, x = peaks.index.unbind(1)
        cams = maps.cam_3d.float()[peaks.batch_ids, :, z, y, x]
        params = self.model.regress_params(maps.features.float(), cams, peaks.batch_ids)
        return peaks.batch_ids, peaks.scores, params.float()

    # -- ROMP --------------------------------------------------------------------------------

    def _romp_post(self, people: _People, batch: PreparedBatch) -> _People:
        p = people.params
        body = self.body_models.smpl_forward(p.smpl_betas, p.smpl_thetas)
        if self.settings.root_align:
            body = root_align(body)
        pj2d = weak_perspective_project(body.joints, p.cam)
        canvas_px = ((pj2d[:, :24] + 1) * (CANVAS // 2)).cpu().numpy()
        trans, official = pnp_translation(body.joints[:, :24].cpu().numpy(), canvas_px)
        offsets = torch.from_numpy(batch.offsets).to(self.device)[people.view]
        people.body = body
        people.cam_trans = torch.from_numpy(trans).to(self.device)
        people.pj2d = canvas_to_pixels(pj2d, offsets)
        people.pnp_fallback = torch.from_numpy(~official).to(self.device)
        return people

    # -- BEV ---------------------------------------------------------------------------------

    def _bev_post(self, people: _People, batch: PreparedBatch) -> _People:
        p = people.params
        people.body = root_align(self.body_models.smpla_forward(p.smpl_betas, p.smpl_thetas))
        offsets = torch.from_numpy(batch.offsets).to(self.device)
        self._project_bev(people, offsets[people.view])
        view_image = torch.from_numpy(batch.view_image).to(self.device)[people.view]
        kept = []
        for i, image in enumerate(batch.images):
            mine = people.take(torch.where(view_image == i)[0])
            if image.plan is None:
                kept.append(self._bev_filter(mine, max(image.height, image.width, 3), conf_based=False,
                                             scale_thresh=0.25))
            else:
                kept.append(self._merge_crops(mine, image, batch))
        return _concat_people(kept, people)

    def _project_bev(self, people: _People, offsets: torch.Tensor) -> None:
        """cam -> cam_trans -> perspective projection of the joints, in pixels given ``offsets``."""
        assert people.body is not None
        people.cam_trans = bev_cam_to_trans(people.params.cam)
        people.pj2d = canvas_to_pixels(perspective_project(people.body.joints, people.cam_trans), offsets)

    def _bev_filter(self, people: _People, image_side: int, conf_based: bool, scale_thresh: float) -> _People:
        """Duplicate suppression, then outlier removal, within one image or crop."""
        assert people.pj2d is not None and people.cam_trans is not None
        t = self.thresholds
        keep = suppress_duplicates(people.pj2d, people.params.cam[:, 0], people.conf, image_side, t.nms,
                                   conf_based=conf_based)
        people = people.take(torch.where(keep)[0])
        assert people.cam_trans is not None
        keep = remove_outliers(people.cam_trans, people.params.cam[:, 0], t.relative_scale, scale_thresh)
        return people.take(torch.where(keep)[0])

    def _merge_crops(self, people: _People, image: PreparedImage, batch: PreparedBatch) -> _People:
        """Long image: trim crop boundaries, filter per crop, move cameras to the full image, refilter."""
        plan = image.plan
        assert plan is not None
        crop_of = torch.from_numpy(batch.view_crop).to(self.device)[people.view]
        merged = []
        for k in range(plan.count):
            crop_people = people.take(torch.where(crop_of == k)[0])
            crop_people = crop_people.take(
                torch.where(crowd.keep_inside_boundaries(crop_people.params.cam[:, 2], plan, k))[0]
            )
            left, right, top, bottom = (int(v) for v in plan.boxes[k])
            crop_people = self._bev_filter(crop_people, max(bottom - top, right - left), conf_based=True,
                                           scale_thresh=1.0)
            crop_people.params.cam = crowd.crop_cam_to_image(
                crop_people.params.cam, plan, k, (image.height, image.width)
            )
            merged.append(crop_people)
        full = _concat_people(merged, people)
        pad = SquarePad.of(image.height, image.width)
        self._project_bev(full, torch.tensor([pad.as_offsets()], device=self.device).expand(len(full.view), 3))
        return self._bev_filter(full, max(image.height, image.width, 3), conf_based=True, scale_thresh=0.5)

    # -- output ------------------------------------------------------------------------------

    def _to_predictions(self, people: _People, batch: PreparedBatch) -> Predictions:
        assert people.body is not None and people.cam_trans is not None and people.pj2d is not None
        image_index = batch.view_image[people.view.cpu().numpy()]
        person = np.zeros(len(image_index), np.int32)
        for i in np.unique(image_index):
            rows = image_index == i
            person[rows] = np.arange(rows.sum())

        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().float().cpu().numpy()

        p = people.params
        return Predictions(
            model=self.kind,
            image_index=image_index.astype(np.int64),
            person=person,
            center_conf=np32(people.conf),
            cam=np32(p.cam),
            cam_trans=np32(people.cam_trans),
            smpl_thetas=np32(p.smpl_thetas),
            smpl_betas=np32(p.smpl_betas),
            joints=np32(people.body.joints),
            pj2d_org=np32(people.pj2d),
            image_hw=np.array([[im.height, im.width] for im in batch.images], np.int64).reshape(-1, 2),
            verts=np32(people.body.verts) if self.settings.save_verts else None,
            age_class=age_class(p.smpl_betas[:, 10]).cpu().numpy() if self.kind == "bev" else None,
            pnp_fallback=None if people.pnp_fallback is None else people.pnp_fallback.cpu().numpy(),
        )


def _concat_people(parts: list[_People], like: _People) -> _People:
    """Concatenate working sets that went through the same stages; ``like`` gives empty shapes."""
    parts = parts or [like.take(torch.zeros(0, dtype=torch.long, device=like.view.device))]

    def cat(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(tensors)

    def cat_optional(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
        present = [t for t in tensors if t is not None]
        return torch.cat(present) if len(present) == len(tensors) else None

    bodies = [p.body for p in parts if p.body is not None]
    body = None
    if len(bodies) == len(parts):
        body = BodyOutput(cat([b.verts for b in bodies]), cat([b.joints for b in bodies]))
    return _People(
        view=cat([p.view for p in parts]),
        conf=cat([p.conf for p in parts]),
        params=SMPLParams(cat([p.params.cam for p in parts]), cat([p.params.smpl_thetas for p in parts]),
                          cat([p.params.smpl_betas for p in parts])),
        body=body,
        cam_trans=cat_optional([p.cam_trans for p in parts]),
        pj2d=cat_optional([p.pj2d for p in parts]),
        pnp_fallback=cat_optional([p.pnp_fallback for p in parts]),
    )
