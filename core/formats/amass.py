"""SMPL motion as an AMASS-style npz: the keys the usual SMPL-to-FBX tools and Blender add-ons read.

Keys: ``poses`` (T, 72) axis-angle (global orient + 23 body joints; AMASS's SMPL-H files have 156,
whose first 66 are the same joints), ``trans`` (T, 3) metres, ``betas`` (K,), ``mocap_framerate``
(scalar), ``gender`` (string), plus any extra arrays the caller names. SMPL with these arrays gives
the body as ``SMPL(poses, betas).joints + trans``.
Layout: https://amass.is.tue.mpg.de (AMASS npz, also read by e.g. the SMPL Blender add-on).
"""

from __future__ import annotations

import io

import numpy as np

STANDARD_KEYS = ("poses", "trans", "betas", "mocap_framerate", "gender")


def amass_npz_bytes(poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, fps: float, gender: str,
                    extra: dict[str, np.ndarray] | None = None) -> bytes:
    """The npz file (uncompressed, no pickled objects: ``np.load`` reads it with allow_pickle=False)."""
    if poses.ndim != 2 or poses.shape[1] != 72 or trans.shape != (len(poses), 3):
        raise ValueError(f"poses must be (T, 72) and trans (T, 3), got {poses.shape} and {trans.shape}")
    clash = set(extra or {}) & set(STANDARD_KEYS)
    if clash:
        raise ValueError(f"extra arrays may not replace {sorted(clash)}")
    arrays = {"poses": np.asarray(poses, np.float64), "trans": np.asarray(trans, np.float64),
              "betas": np.asarray(betas, np.float64), "mocap_framerate": np.asarray(fps, np.float64),
              "gender": np.asarray(gender), **(extra or {})}
    out = io.BytesIO()
    np.savez(out, allow_pickle=False, **arrays)
    return out.getvalue()
