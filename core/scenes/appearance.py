"""Procedural appearance: skin tones, clothing colours and patterns per body part, lighting.

Body parts come from the skinning weights: every vertex belongs to the joint with the largest weight,
and the joints are grouped into skin / hair / top / bottom / shoes (sleeve and leg length decide
whether the forearms and shins are clothed). Patterns are functions of the rest-pose vertex position,
so they follow the body as it moves.
"""

from __future__ import annotations

import colorsys

import numpy as np

from core.scenes.record import Look, Outfit
from core.scenes.settings import LookSettings, draw

# Monk Skin Tone scale (Google, 2022; CC BY 4.0), the 10 reference swatches.
SKIN_TONES = ("f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96", "a07e56", "825c43", "604134", "3a312a", "292420")
HAIR_TONES = ("0f0d0b", "2a1d15", "4b3222", "6d4a2f", "a47a4c", "d5b27c", "8f8f8f", "c8c8c8")

# SMPL joint -> garment: 0 skin, 1 hair, 2 top, 3 bottom, 4 shoes; forearms / shins depend on the outfit.
PART_OF_JOINT = np.array([3, 3, 3, 2, 3, 3, 2, 4, 4, 2, 4, 4, 0, 2, 2, 0, 2, 2, 2, 2, 0, 0, 0, 0])
FOREARM_JOINTS = (18, 19)  # elbow-driven vertices: sleeve length
SHIN_JOINTS = (4, 5)  # knee-driven vertices: trouser length
HEAD_JOINT = 15
HAIR_ABOVE_M = 0.04  # head vertices this far above the head joint (and not on the face) are hair


def _hex(code: str) -> np.ndarray:
    return np.array([int(code[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


def _rgb(hsv: tuple[float, float, float]) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(*hsv)
    return float(r), float(g), float(b)


def _jitter(color: np.ndarray, rng: np.random.Generator, amount: float) -> tuple[float, float, float]:
    c = np.clip(color * rng.uniform(1 - amount, 1 + amount, 3), 0.0, 1.0)
    return float(c[0]), float(c[1]), float(c[2])


def _garment(rng: np.random.Generator) -> tuple[float, float, float]:
    """Clothing colour: any hue, muted more often than saturated."""
    return _rgb((rng.random(), rng.beta(1.5, 2.5), rng.uniform(0.15, 0.95)))


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Skin from the Monk scale (+-6 % per channel), hair, top, bottom, shoes, pattern."""
    skin = _jitter(_hex(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]), rng, 0.06)
    hair = _jitter(_hex(HAIR_TONES[int(rng.integers(len(HAIR_TONES)))]), rng, 0.1)
    pattern = ("solid", "stripes", "checks")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
    return Outfit(skin=skin, hair=hair, top=_garment(rng), bottom=_garment(rng),
                  shoes=_rgb((rng.random(), rng.uniform(0, 0.4), rng.uniform(0.05, 0.6))),
                  pattern_color=_garment(rng), pattern=pattern, pattern_period=float(rng.uniform(0.04, 0.15)),
                  long_sleeves=bool(rng.random() < 0.6), long_legs=bool(rng.random() < 0.7))


def vertex_parts(weights: np.ndarray, rest_verts: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(V, 24) skinning weights, (V, 3) rest vertices, (24, 3) rest joints -> (V,) garment id, with
    forearms 5 and shins 6 (clothed or skin depending on the outfit)."""
    owner = weights.argmax(axis=1)
    parts = PART_OF_JOINT[owner].copy()
    parts[np.isin(owner, FOREARM_JOINTS)] = 5
    parts[np.isin(owner, SHIN_JOINTS)] = 6
    head = rest_joints[HEAD_JOINT]
    above = rest_verts[:, 1] > head[1] + HAIR_ABOVE_M
    behind = rest_verts[:, 2] < head[2] + 0.02  # the face looks along +z
    parts[(owner == HEAD_JOINT) & (above | (behind & (rest_verts[:, 1] > head[1] - 0.03)))] = 1
    return parts


def vertex_colors(parts: np.ndarray, rest_verts: np.ndarray, outfit: Outfit) -> np.ndarray:
    """(V,) garment ids and (V, 3) rest vertices -> (V, 3) RGB albedo in [0, 1] for one person."""
    table = np.array([outfit.skin, outfit.hair, outfit.top, outfit.bottom, outfit.shoes,
                      outfit.top if outfit.long_sleeves else outfit.skin,
                      outfit.bottom if outfit.long_legs else outfit.skin])
    colors = table[parts]
    clothed = np.isin(parts, (2, 3)) | ((parts == 5) & outfit.long_sleeves) | ((parts == 6) & outfit.long_legs)
    phase = 2 * np.pi * rest_verts / outfit.pattern_period
    if outfit.pattern == "stripes":
        second = np.sin(phase[:, 1]) > 0.3
    elif outfit.pattern == "checks":
        second = np.sin(phase[:, 0]) * np.sin(phase[:, 1]) > 0
    else:
        second = np.zeros(len(parts), bool)
    colors[clothed & second] = outfit.pattern_color
    return colors.astype(np.float32)


def sample_look(settings: LookSettings, rng: np.random.Generator, folder_size: int) -> Look:
    """Light from above and in front (camera frame, y down), a background and the degradations."""
    elevation, azimuth = rng.uniform(0.3, 1.2), rng.uniform(-1.0, 1.0)
    light = np.array([np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)])
    warm = rng.uniform(-0.08, 0.08)
    kinds = ["gradient", "noise", "floor"]
    use_folder = folder_size > 0 and rng.random() < settings.folder_share
    background = "folder" if use_folder else kinds[int(rng.integers(len(kinds)))]
    blur = float(draw(rng, settings.blur_sigma_px)) if rng.random() < settings.blur_share else 0.0
    return Look(
        light_dir=(float(light[0]), float(light[1]), float(light[2])),
        ambient=float(rng.uniform(0.35, 0.6)), diffuse=float(rng.uniform(0.4, 0.7)),
        tint=(1.0 + warm, 1.0, 1.0 - warm), background=background,
        colors=(_rgb((rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.95))),
                _rgb((rng.random(), rng.uniform(0, 0.5), rng.uniform(0.1, 0.8)))),
        scale=float(rng.uniform(0.3, 1.2)), texture_seed=int(rng.integers(2**31)),
        folder_pick=int(rng.integers(folder_size)) if use_folder else -1,
        crop=(float(rng.random()), float(rng.random()), float(rng.uniform(0.5, 1.0))),
        blur_sigma=blur, noise_sigma=float(draw(rng, settings.noise_sigma)),
        jpeg_quality=int(round(draw(rng, settings.jpeg_quality))),
    )
