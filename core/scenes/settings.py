"""Typed, frozen settings of the synthetic scene sampler (``meshfleet synth``).

Ranges are ``(low, high)`` pairs sampled uniformly unless stated. Every default names its reason.
Validation happens once, at the CLI, through :meth:`SceneSettings.validate` (errors name the key).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AGE_NAMES = ("adult", "teen", "kid", "baby")
# betas[10] drawn per age class, inside the results table's age_class bins (core.params.AGE_EDGES:
# adult (-0.05, 0.15], teen (0.15, 0.45], kid (0.45, 0.75], baby (0.75, 1]) with a margin, and babies
# above BodyModelSet's SMIL threshold 0.8 so that they are meshed by the infant model, as BEV does.
AGE_OFFSET_RANGES = ((0.0, 0.1), (0.2, 0.4), (0.5, 0.7), (0.85, 1.0))


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (width, height) in px; ValueError names the text."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x360") from err
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise ValueError(f"size {text!r}: width and height must be in [32, 8192] px")
    return width, height


def _check_range(name: str, pair: tuple[float, ...], low: float, high: float) -> None:
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise ValueError(f"{name}: expected [min, max] with {low} <= min <= max <= {high}, got {list(pair)}")


@dataclass(frozen=True)
class CameraSettings:
    """fov_deg: field of view over the longer image side (ROMP/BEV's canonical camera is 60 deg over
    the padded square side, core.cameras); height_m: camera height above the ground; pitch_deg: downward
    tilt (positive looks down); sizes: image sizes ``WxH``, one drawn per scene (1024x384 is a long
    image, w/h >= 2, which BEV's crowd path splits into windows)."""

    fov_deg: tuple[float, ...] = (50.0, 70.0)
    height_m: tuple[float, ...] = (0.9, 2.0)
    pitch_deg: tuple[float, ...] = (-5.0, 25.0)
    sizes: tuple[str, ...] = ("512x512", "640x360", "384x512", "1024x384")

    def validate(self) -> None:
        _check_range("camera.fov_deg", self.fov_deg, 10.0, 120.0)
        _check_range("camera.height_m", self.height_m, 0.1, 20.0)
        _check_range("camera.pitch_deg", self.pitch_deg, -30.0, 45.0)  # cos(pitch) stays well away from 0
        if not self.sizes:
            raise ValueError("camera.sizes: give at least one WIDTHxHEIGHT")
        for size in self.sizes:
            parse_size(size)


@dataclass(frozen=True)
class PlacementSettings:
    """Where people stand. nearest_height_frac: how tall (fraction of the image height) a 1.7 m person
    standing in the nearest depth layer would appear, which sets that layer's depth; depth_m: bounds of
    that depth; aim_jitter_deg: spread of the camera pitch around aiming at the nearest layer's hips
    (then clipped to camera.pitch_deg); layer_gap_m: extra depth
    between consecutive layers (> 2 x same_layer_jitter_m + Relative Human's 0.2 m tolerance, so every
    pair's relation is unambiguous); same_layer_jitter_m: half-span of depths within a layer;
    border_margin: how far (fraction of the width) a person's root may project outside the image
    (truncation); min_joints_in_image: people with fewer of the 14 LSP joints inside are removed from
    still images (CMU Panoptic keeps a person only with > 5); max_occlusion: people hidden more than
    this are removed from still images (AGORA counts a person only up to 90 % occlusion)."""

    nearest_height_frac: tuple[float, ...] = (0.3, 0.9)
    depth_m: tuple[float, ...] = (1.5, 30.0)
    aim_jitter_deg: float = 6.0
    layer_gap_m: tuple[float, ...] = (0.6, 1.5)
    same_layer_jitter_m: float = 0.05
    border_margin: float = 0.05
    min_joints_in_image: int = 6
    max_occlusion: float = 0.9

    def validate(self) -> None:
        _check_range("placement.nearest_height_frac", self.nearest_height_frac, 0.01, 10.0)
        _check_range("placement.depth_m", self.depth_m, 0.5, 100.0)
        if not 0 <= self.aim_jitter_deg <= 45:
            raise ValueError("placement.aim_jitter_deg: must be in [0, 45]")
        _check_range("placement.layer_gap_m", self.layer_gap_m, 0.0, 50.0)
        if not 0 <= self.same_layer_jitter_m <= 0.09:
            raise ValueError("placement.same_layer_jitter_m: must be in [0, 0.09] m (same-layer spans stay < 0.2 m)")
        if self.layer_gap_m[0] < 2 * self.same_layer_jitter_m + 0.2:
            raise ValueError("placement.layer_gap_m: the minimum must exceed 0.2 m + 2 x same_layer_jitter_m")
        if not 0 <= self.border_margin <= 0.5:
            raise ValueError("placement.border_margin: must be in [0, 0.5]")
        if not 0 <= self.min_joints_in_image <= 14:
            raise ValueError("placement.min_joints_in_image: must be in [0, 14]")
        if not 0 < self.max_occlusion <= 1:
            raise ValueError("placement.max_occlusion: must be in (0, 1]")


@dataclass(frozen=True)
class PoseSettings:
    """library_share: people posed from the keyframe library (the rest from the joint-limit sampler or,
    with motion files, motion_share of all people from them); noise_deg: SD of the per-axis perturbation
    of library poses (clipped to the joint limits); random_spread: fraction of each joint's range the
    joint-limit sampler uses around the neutral pose (1 = the full range)."""

    library_share: float = 0.75
    motion_share: float = 0.5
    noise_deg: float = 7.0
    random_spread: float = 0.45

    def validate(self) -> None:
        for name in ("library_share", "motion_share", "random_spread"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"poses.{name}: must be in [0, 1]")
        if not 0 <= self.noise_deg <= 45:
            raise ValueError("poses.noise_deg: must be in [0, 45]")


@dataclass(frozen=True)
class LookSettings:
    """Appearance and image degradations. folder_share: backgrounds taken from the user's image folder
    (when given); blur_share / blur_sigma_px: Gaussian blur; noise_sigma: Gaussian pixel noise SD in 8-bit
    levels; jpeg_quality: the encoder quality range."""

    folder_share: float = 0.5
    blur_share: float = 0.3
    blur_sigma_px: tuple[float, ...] = (0.3, 1.5)
    noise_sigma: tuple[float, ...] = (0.0, 4.0)
    jpeg_quality: tuple[float, ...] = (75.0, 95.0)

    def validate(self) -> None:
        for name in ("folder_share", "blur_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"look.{name}: must be in [0, 1]")
        _check_range("look.blur_sigma_px", self.blur_sigma_px, 0.0, 10.0)
        _check_range("look.noise_sigma", self.noise_sigma, 0.0, 64.0)
        _check_range("look.jpeg_quality", self.jpeg_quality, 10.0, 100.0)


@dataclass(frozen=True)
class VideoSettings:
    """Video scenes: ``frames`` at ``fps``; walkers move at speed_mps (> 2.5 m/s run) along paths
    roughly parallel to the image plane, each in its own depth lane, so paths cross in the image and
    people occlude each other for a while (occlusion gaps); standing_share of people stand still."""

    frames: int = 48
    fps: float = 24.0
    speed_mps: tuple[float, ...] = (0.6, 3.0)
    standing_share: float = 0.2

    def validate(self) -> None:
        if not 2 <= self.frames <= 10_000:
            raise ValueError("video.frames: must be in [2, 10000]")
        if not 1 <= self.fps <= 240:
            raise ValueError("video.fps: must be in [1, 240]")
        _check_range("video.speed_mps", self.speed_mps, 0.0, 10.0)
        if not 0 <= self.standing_share <= 1:
            raise ValueError("video.standing_share: must be in [0, 1]")


@dataclass(frozen=True)
class SceneSettings:
    """Everything that decides what a scene looks like. people: (min, max) per image; ages: shares of
    adult / teen / kid / baby (normalised); shape_sd: SD of the 10 unit-SD shape coefficients, clipped to
    +-shape_clip."""

    people: tuple[int, ...] = (1, 10)
    ages: tuple[float, ...] = (0.7, 0.1, 0.12, 0.08)
    shape_sd: float = 1.0
    shape_clip: float = 2.5
    camera: CameraSettings = field(default_factory=CameraSettings)
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    poses: PoseSettings = field(default_factory=PoseSettings)
    look: LookSettings = field(default_factory=LookSettings)
    video: VideoSettings | None = None

    def validate(self) -> SceneSettings:
        if len(self.people) != 2 or not 1 <= self.people[0] <= self.people[1] <= 50:
            raise ValueError(f"people: expected MIN-MAX with 1 <= MIN <= MAX <= 50, got {list(self.people)}")
        if len(self.ages) != 4 or min(self.ages) < 0 or sum(self.ages) <= 0:
            raise ValueError(f"ages: expected 4 non-negative shares {AGE_NAMES}, got {list(self.ages)}")
        if not 0 <= self.shape_sd <= 3 or not 0 < self.shape_clip <= 5:
            raise ValueError("shape_sd / shape_clip: must be in [0, 3] / (0, 5]")
        for part in (self.camera, self.placement, self.poses, self.look, self.video):
            if part is not None:
                part.validate()
        return self

    def age_probabilities(self) -> tuple[float, ...]:
        total = float(sum(self.ages))
        return tuple(float(a) / total for a in self.ages)


def draw(rng: np.random.Generator, pair: tuple[float, ...]) -> float:
    """A uniform draw from the ``(low, high)`` range ``pair``."""
    return float(rng.uniform(pair[0], pair[1]))
