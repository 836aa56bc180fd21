"""Training augmentation: one image and its people -> one network input with consistent labels.

Geometric steps in the official order (reference 11, ``romp/lib/dataset/image_base.py``):
in-plane rotation about the image centre, horizontal flip, then a square "shuffle crop" around a
random subset of the people, then the inference pre-processing (:func:`core.preprocess.prepare_input`:
pad to a black square, cubic resize). Pixel steps (colour jitter, synthetic occlusion) run on the
final canvas. :func:`sample_plan` draws the random choices; :func:`apply_plan` is deterministic.

Label conventions after augmentation (:class:`~core.train.batch.TrainSample`): 2D in normalised
canvas coordinates ([-1, 1] across the square input, the inference convention); 3D joints
relative to the hip midpoint (joints 45/46), in the rotated / mirrored camera frame; ``cam_trans``
the hip midpoint's translation in the canonical FOV-60 camera of the canvas. Crops and rescaling
cannot be expressed exactly by that camera (its principal point is the canvas centre), so the
translation is re-fitted by linear least squares to the augmented 2D joints, as the official code
re-estimates it (``estimate_translation``); it is exact when the annotation camera already is the
canonical one and the augmentation keeps it (flip, rotation about the principal point).
Pixel coordinates are continuous with pixel i covering [i, i + 1) (the resize convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.body_models import ROOT_ALIGN_JOINTS
from core.cameras import CANVAS, FOCAL_512, least_squares_translation
from core.preprocess import INPUT_SIZE, SquarePad, prepare_input
from core.train.batch import TrainSample
from core.train.labels import JOINT_FLIP, ImageLabels, flip_thetas

FOCAL_CANVAS = FOCAL_512 / (CANVAS / 2.0)  # focal length in normalised canvas units (~ 1 / tan 30)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; defaults are the official ones (``romp/lib/config.py``, ``v1.yml``).

    crop_prob 0.4 is ROMP v1's shuffle-crop ratio for sets with 3D labels (0.1 for 2D-only sets);
    crop_scale: the crop box is the chosen people's box grown by a factor in this range
    (``scale_range``); color_jitter: brightness / contrast / saturation factors in 1 +- this
    (torchvision ``ColorJitter(0.1, 0.1, 0.1)``); occlusion_prob: synthetic occlusion (official
    default 0) by ``occluders`` random boxes of ``occluder_size`` times the canvas side.
    """

    flip_prob: float = 0.5
    rotate_prob: float = 0.2
    max_rotation_deg: int = 30
    crop_prob: float = 0.4
    crop_scale: tuple[float, float] = (1.2, 2.4)
    color_jitter_prob: float = 0.2
    color_jitter: float = 0.1
    occlusion_prob: float = 0.0
    occluders: tuple[int, int] = (1, 3)
    occluder_size: tuple[float, float] = (0.05, 0.25)

    def __post_init__(self) -> None:
        for name in ("flip_prob", "rotate_prob", "crop_prob", "color_jitter_prob", "occlusion_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if not 1.0 <= self.crop_scale[0] <= self.crop_scale[1]:
            raise ValueError(f"crop_scale must be 1 <= low <= high, not {self.crop_scale}")


NO_AUGMENT = AugmentConfig(flip_prob=0.0, rotate_prob=0.0, crop_prob=0.0, color_jitter_prob=0.0)


@dataclass(frozen=True)
class AugmentPlan:
    """One draw of the random choices. crop: (left, top, right, bottom) square box in pixels of
    the rotated and flipped image (may extend past it: black); jitter: (brightness, contrast,
    saturation) factors; occluders: (x0, y0, x1, y1, r, g, b) boxes in canvas pixels."""

    rotation_deg: float = 0.0
    flip: bool = False
    crop: tuple[int, int, int, int] | None = None
    jitter: tuple[float, float, float] | None = None
    occluders: tuple[tuple[int, ...], ...] = ()


def geometry(height: int, width: int, rotation_deg: float, flip: bool) -> np.ndarray:
    """(3, 3) map of image pixels to pixels after rotating about the image centre
    (counter-clockwise on screen for positive angles, as ``cv2.getRotationMatrix2D``) and flipping."""
    centre = (width / 2.0, height / 2.0)
    out = np.eye(3)
    out[:2] = cv2.getRotationMatrix2D(centre, float(rotation_deg), 1.0)
    if flip:
        out = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ out
    return out


def camera_rotation(rotation_deg: float) -> np.ndarray:
    """(3, 3) rotation about the camera's z axis that moves projections as the image rotation does."""
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def sample_plan(rng: np.random.Generator, labels: ImageLabels, height: int, width: int,
                config: AugmentConfig, input_size: int = INPUT_SIZE) -> AugmentPlan:
    """Draw rotation, flip, a shuffle crop around 1..N random people, jitter and occluders."""
    flip = bool(rng.random() < config.flip_prob)
    rotation = 0
    if rng.random() < config.rotate_prob:
        rotation = int(rng.integers(-config.max_rotation_deg, config.max_rotation_deg + 1))
    crop = None
    if labels.count and rng.random() < config.crop_prob:
        chosen = rng.choice(labels.count, size=int(rng.integers(1, labels.count + 1)), replace=False)
        crop = _crop_box(labels.take(np.sort(chosen)), geometry(height, width, rotation, flip), height, width,
                         float(rng.uniform(*config.crop_scale)))
    jitter = None
    if rng.random() < config.color_jitter_prob:
        jitter = tuple(float(v) for v in rng.uniform(1 - config.color_jitter, 1 + config.color_jitter, 3))
    occluders: list[tuple[int, ...]] = []
    if rng.random() < config.occlusion_prob:
        for _ in range(int(rng.integers(config.occluders[0], config.occluders[1] + 1))):
            w, h = (rng.uniform(*config.occluder_size, 2) * input_size).astype(int) + 1
            x0, y0 = int(rng.integers(0, input_size - w + 1)), int(rng.integers(0, input_size - h + 1))
            occluders.append((x0, y0, x0 + int(w), y0 + int(h), *(int(c) for c in rng.integers(0, 256, 3))))
    return AugmentPlan(rotation, flip, crop, jitter, tuple(occluders))  # type: ignore[arg-type]


def _crop_box(people: ImageLabels, matrix: np.ndarray, height: int, width: int,
              scale: float) -> tuple[int, int, int, int] | None:
    """The official ``get_image_cut_box``: the people's visible-joint box (their instance boxes
    without 2D joints), clipped to the image, grown by ``scale``, made square on its centre."""
    visible = people.joints2d_visible & people.has_joints2d[:, None]
    points = [people.joints2d[visible]]
    no_joints = ~visible.any(axis=1)
    if no_joints.any():
        points.append(people.bbox[no_joints].reshape(-1, 2))
    pts = _transform_points(matrix, np.concatenate(points))
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return None
    lo = np.clip(pts.min(axis=0), 0, (width, height))
    hi = np.clip(pts.max(axis=0), 0, (width, height))
    centre = (lo + hi) / 2.0
    half = np.maximum(np.floor((hi - lo) * scale / 2.0).max(), 1.0)
    x, y = int(centre[0]), int(centre[1])
    r = int(half)
    return (x - r, y - r, x + r, y + r)


def _crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The square ``box`` of ``image``, black where it leaves the image."""
    left, top, right, bottom = box
    out = np.zeros((bottom - top, right - left, 3), dtype=image.dtype)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if x1 > x0 and y1 > y0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


def _warp(image: np.ndarray, rotation_deg: float, flip: bool) -> np.ndarray:
    h, w = image.shape[:2]
    if rotation_deg:
        # cv2 samples at integer pixel centres: the rotation about (w/2, h/2) in our continuous
        # convention is the rotation about ((w-1)/2, (h-1)/2) in cv2's
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(rotation_deg), 1.0)
        image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return np.ascontiguousarray(image[:, ::-1]) if flip else image


def jitter_colours(rgb: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """Brightness, contrast, saturation blends (torchvision ``ColorJitter`` formulas) on uint8 RGB."""
    brightness, contrast, saturation = factors
    x = rgb.astype(np.float32) * brightness
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as torchvision
    x = (x - gray.mean()) * contrast + gray.mean()
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = gray + (x - gray) * saturation
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def apply_plan(image_bgr: np.ndarray, labels: ImageLabels, plan: AugmentPlan,
               input_size: int = INPUT_SIZE) -> TrainSample:
    """Apply ``plan`` to a BGR uint8 image and its people -> RGB canvas and canvas labels."""
    h, w = image_bgr.shape[:2]
    matrix = geometry(h, w, plan.rotation_deg, plan.flip)
    warped = _warp(image_bgr, plan.rotation_deg, plan.flip)
    if plan.crop is not None:
        warped = _crop(warped, plan.crop)
        matrix = np.array([[1.0, 0.0, -plan.crop[0]], [0.0, 1.0, -plan.crop[1]], [0.0, 0.0, 1.0]]) @ matrix
    canvas, pad = prepare_input(warped, input_size)
    to_canvas = _canvas_matrix(pad) @ matrix
    if plan.jitter is not None:
        canvas = jitter_colours(canvas, plan.jitter)
    for x0, y0, x1, y1, *colour in plan.occluders:
        canvas[y0:y1, x0:x1] = colour
    return _labels_on_canvas(labels, to_canvas, plan, canvas)


def _canvas_matrix(pad: SquarePad) -> np.ndarray:
    """Pixels of the (cropped) image -> normalised canvas coordinates [-1, 1]."""
    k = 2.0 / pad.side
    return np.array([[k, 0.0, pad.left * k - 1.0], [0.0, k, pad.top * k - 1.0], [0.0, 0.0, 1.0]])


def _labels_on_canvas(labels: ImageLabels, to_canvas: np.ndarray, plan: AugmentPlan,
                      canvas: np.ndarray) -> TrainSample:
    n = labels.count
    perm = JOINT_FLIP if plan.flip else np.arange(JOINT_FLIP.size)
    joints2d = _transform_points(to_canvas, labels.joints2d.reshape(-1, 2)).reshape(n, -1, 2)[:, perm]
    inside = (np.abs(joints2d) < 1.0).all(axis=-1)
    visible = labels.joints2d_visible[:, perm] & inside & labels.has_joints2d[:, None]

    corners = labels.bbox[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n, 4, 2)
    corners = _transform_points(to_canvas, corners.reshape(-1, 2)).reshape(n, 4, 2)
    bbox = np.clip(np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1), -1.0, 1.0)

    rot = camera_rotation(plan.rotation_deg)
    mirror = np.diag([-1.0, 1.0, 1.0]) if plan.flip else np.eye(3)
    cam_rot = mirror @ rot
    joints3d = (labels.joints3d.astype(np.float64) @ cam_rot.T)[:, perm]
    root = joints3d[:, list(ROOT_ALIGN_JOINTS)].mean(axis=1, keepdims=True)
    joints3d_rel = joints3d - root

    thetas = labels.smpl_thetas.astype(np.float64).copy()
    if plan.rotation_deg:  # the body turns with the camera: R_orient -> R_cam R_orient
        for theta in thetas:
            theta[:3] = cv2.Rodrigues(rot @ cv2.Rodrigues(theta[:3])[0])[0][:, 0]
    if plan.flip:
        thetas = flip_thetas(thetas)

    has_cam = labels.has_joints3d & labels.has_joints2d & np.isfinite(joints3d).all(axis=(1, 2)) & (root[:, 0, 2] > 0)
    cam_trans = np.zeros((n, 3))
    if has_cam.any():
        cam_trans[has_cam] = least_squares_translation(joints3d_rel[has_cam], joints2d[has_cam], FOCAL_CANVAS)
    has_cam &= cam_trans[:, 2] > 0
    return TrainSample(
        image=canvas,
        joints2d=joints2d.astype(np.float32),
        joints2d_valid=visible,
        joints3d=joints3d_rel.astype(np.float32),
        cam_trans=cam_trans.astype(np.float32),
        has_cam=has_cam,
        smpl_thetas=thetas.astype(np.float32),
        smpl_betas=labels.smpl_betas.astype(np.float32),
        bbox=bbox.astype(np.float32),
        depth_layer=labels.depth_layer.astype(np.int64),
        age_class=labels.age_class.astype(np.int64),
        has_joints2d=labels.has_joints2d.copy(),
        has_joints3d=labels.has_joints3d.copy(),
        has_smpl=labels.has_smpl.copy(),
        has_depth_layer=labels.has_depth_layer.copy(),
        has_age=labels.has_age.copy(),
        weight=labels.weight.astype(np.float32),
    )


def augment(image_bgr: np.ndarray, labels: ImageLabels, rng: np.random.Generator,
            config: AugmentConfig, input_size: int = INPUT_SIZE) -> TrainSample:
    """Draw a plan and apply it (the per-sample call of the data loader)."""
    h, w = image_bgr.shape[:2]
    return apply_plan(image_bgr, labels, sample_plan(rng, labels, h, w, config, input_size), input_size)
