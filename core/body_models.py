"""SMPL-family body models (SMPL, SMPL-A, SMIL) with the 71-joint set of ROMP / BEV.

The official files are read once (``BodyModelSet.from_dir``), turned into plain arrays, and held
by stateless :class:`BodyModel` layers whose forward is ``smplx.lbs.lbs``. The 71 joints are:

====== =================================================================================
0-23   SMPL kinematic joints (J_regressor on the posed mesh)
24-44  21 vertex joints (nose, eyes, ears, feet, finger tips; SMPL-H vertex ids)
45-53  ``J_regressor_extra.npy``: R_Hip, L_Hip, Neck_LSP, Head_top, Pelvis, Thorax_MPII,
       Spine_H36M, Jaw_H36M, Head
54-70  ``J_regressor_h36m.npy`` rows in the H36M_TO_J17 order
====== =================================================================================

SMPL-A (BEV) is SMPL with an 11th shape direction toward the infant template,
``(kid_template - mean(kid_template)) - v_template``, as the official packer builds it.
People with ``betas[:, 10] > 0.8`` are meshed with SMIL and their first 10 betas (the "SMIL swap").

Two sets exist: the official, licensed files (``BodyModelSet.from_dir``, named ``"smpl"``) and the
open, license-free model shipped with meshfleet (``BodyModelSet.open()``, named ``"open-<version>"``,
see ``core/open_body_model.py``): same joints and layers, another mesh (13,718 vertices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx.lbs
import torch
from torch import nn

from core.smpl_pickle import BodyModelFileError, load_model_pickle

NUM_VERTS = 6890  # the official SMPL / SMIL mesh; other sets carry their own (BodyModelSet.num_verts)
NUM_JOINTS = 71
BABY_THRESHOLD = 0.8
ROOT_ALIGN_JOINTS = (45, 46)  # LSP R_Hip / L_Hip: "the pelvis of most 2D datasets"

VERTEX_JOINT_IDS = (
    332, 6260, 2800, 4071, 583,  # nose, R eye, L eye, R ear, L ear
    3216, 3226, 3387, 6617, 6624, 6787,  # L big toe, L small toe, L heel, R big toe, R small toe, R heel
    2746, 2319, 2445, 2556, 2673,  # L thumb, index, middle, ring, pinky tips
    6191, 5782, 5905, 6016, 6133,  # R thumb, index, middle, ring, pinky tips
)
H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)

JOINT_NAMES = (
    "Pelvis_SMPL", "L_Hip_SMPL", "R_Hip_SMPL", "Spine_SMPL", "L_Knee", "R_Knee", "Thorax_SMPL",
    "L_Ankle", "R_Ankle", "Thorax_up_SMPL", "L_Toe_SMPL", "R_Toe_SMPL", "Neck", "L_Collar", "R_Collar",
    "Jaw", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
    "Nose", "R_Eye", "L_Eye", "R_Ear", "L_Ear", "L_BigToe", "L_SmallToe", "L_Heel", "R_BigToe",
    "R_SmallToe", "R_Heel", "L_Hand_thumb", "L_Hand_index", "L_Hand_middle", "L_Hand_ring",
    "L_Hand_pinky", "R_Hand_thumb", "R_Hand_index", "R_Hand_middle", "R_Hand_ring", "R_Hand_pinky",
    "R_Hip", "L_Hip", "Neck_LSP", "Head_top", "Pelvis", "Thorax_MPII", "Spine_H36M", "Jaw_H36M", "Head",
    *(f"H36M17_{i:02d}" for i in range(17)),
)

SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass(frozen=True)
class BodyModelArrays:
    """Plain float32/int64 arrays of one SMPL-family model, ready for LBS.

    v_template (V,3); shapedirs (V,3,K); posedirs (207, V*3); J_regressor (24,V);
    weights (V,24); parents (24,) with parents[0] = -1; faces (F,3);
    extra_regressor (9,V); h36m_regressor (17,V) already in H36M_TO_J17 order;
    vertex_joint_ids: the 21 vertices of joints 24-44 (SMPL-H ids on the official mesh).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray
    extra_regressor: np.ndarray
    h36m_regressor: np.ndarray
    vertex_joint_ids: tuple[int, ...] = VERTEX_JOINT_IDS

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[-1])


def _check_shape(name: str, array: np.ndarray, shape: tuple, source: str) -> np.ndarray:
    if array.ndim != len(shape) or any(s is not None and a != s for a, s in zip(array.shape, shape, strict=True)):
        raise BodyModelFileError(f"{source}: {name} has shape {array.shape}, expected {shape}")
    return array


def arrays_from_pickle(
    model: dict, extra_regressor: np.ndarray, h36m_regressor: np.ndarray, num_betas: int, source: str
) -> BodyModelArrays:
    """Official SMPL/SMIL pickle contents -> :class:`BodyModelArrays` with ``num_betas`` shapes."""
    missing = [k for k in SMPL_KEYS if k not in model]
    if missing:
        raise BodyModelFileError(f"{source}: not a SMPL-family model, missing {missing}")
    shapedirs = _check_shape("shapedirs", np.asarray(model["shapedirs"]), (NUM_VERTS, 3, None), source)
    if shapedirs.shape[-1] < num_betas:
        raise BodyModelFileError(f"{source}: {shapedirs.shape[-1]} shape components, need {num_betas}")
    posedirs = _check_shape("posedirs", np.asarray(model["posedirs"]), (NUM_VERTS, 3, 207), source)
    parents = np.asarray(model["kintree_table"])[0].astype(np.int64)
    parents[0] = -1
    return BodyModelArrays(
        v_template=_check_shape("v_template", np.asarray(model["v_template"]), (NUM_VERTS, 3), source)
        .astype(np.float32),
        shapedirs=shapedirs[:, :, :num_betas].astype(np.float32),
        posedirs=posedirs.reshape(-1, 207).T.astype(np.float32),
        J_regressor=_check_shape("J_regressor", np.asarray(model["J_regressor"]), (24, NUM_VERTS), source)
        .astype(np.float32),
        weights=_check_shape("weights", np.asarray(model["weights"]), (NUM_VERTS, 24), source)
        .astype(np.float32),
        parents=parents,
        faces=np.asarray(model["f"]).astype(np.int64),
        extra_regressor=extra_regressor.astype(np.float32),
        h36m_regressor=h36m_regressor[list(H36M_TO_J17)].astype(np.float32),
    )


def with_kid_shape(arrays: BodyModelArrays, kid_template: np.ndarray) -> BodyModelArrays:
    """SMPL -> SMPL-A: append ``(kid - mean(kid)) - v_template`` as the last shape direction.

    Computed as the official packer does: the kid template in its own precision, minus the
    float32 ``v_template``, rounded to float32.
    """
    kid = np.asarray(kid_template)
    kid = kid - np.mean(kid, axis=0)
    diff = np.array(kid - arrays.v_template, dtype=np.float32)[:, :, None]
    return BodyModelArrays(
        **{**arrays.__dict__, "shapedirs": np.concatenate([arrays.shapedirs, diff], axis=-1)}
    )


@dataclass
class BodyOutput:
    """verts (N, V, 3) (V = 6890 for SMPL) and joints (N, 71, 3), metres, in the body frame (no translation)."""

    verts: torch.Tensor
    joints: torch.Tensor


class BodyModel(nn.Module):
    """A stateless SMPL-family layer: (betas, axis-angle pose) -> vertices and the 71 joints."""

    v_template: torch.Tensor
    shapedirs: torch.Tensor
    posedirs: torch.Tensor
    J_regressor: torch.Tensor
    extra_regressor: torch.Tensor
    h36m_regressor: torch.Tensor
    lbs_weights: torch.Tensor
    parents: torch.Tensor
    faces: torch.Tensor
    vertex_joint_ids: torch.Tensor

    def __init__(self, arrays: BodyModelArrays):
        super().__init__()
        self.num_betas = arrays.num_betas
        for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "extra_regressor", "h36m_regressor"):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(getattr(arrays, name))))
        self.register_buffer("lbs_weights", torch.from_numpy(arrays.weights))
        self.register_buffer("parents", torch.from_numpy(arrays.parents))
        self.register_buffer("faces", torch.from_numpy(arrays.faces))
        self.register_buffer("vertex_joint_ids", torch.tensor(arrays.vertex_joint_ids, dtype=torch.int64))

    def forward(self, betas: torch.Tensor, thetas: torch.Tensor) -> BodyOutput:
        """betas (N, num_betas), thetas (N, 72) axis-angle -> :class:`BodyOutput` (float32)."""
        return self._lbs(betas, thetas.float(), pose2rot=True)

    def forward_rotmats(self, betas: torch.Tensor, rotmats: torch.Tensor) -> BodyOutput:
        """betas (N, num_betas), rotmats (N, 24, 3, 3) joint rotations -> :class:`BodyOutput`
        (the training path: no axis-angle round trip, gradients straight to the matrices)."""
        return self._lbs(betas, rotmats.float().reshape(rotmats.shape[0], -1, 3, 3), pose2rot=False)

    def _lbs(self, betas: torch.Tensor, pose: torch.Tensor, pose2rot: bool) -> BodyOutput:
        n = betas.shape[0]
        if n == 0:
            empty = self.v_template.new_zeros
            return BodyOutput(verts=empty(0, self.v_template.shape[0], 3), joints=empty(0, NUM_JOINTS, 3))
        verts, joints24 = smplx.lbs.lbs(
            betas.float(), pose, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, self.parents, self.lbs_weights, pose2rot=pose2rot,
        )
        joints = torch.cat(
            [
                joints24,
                verts.index_select(1, self.vertex_joint_ids),
                torch.einsum("bik,ji->bjk", verts, self.extra_regressor),
                torch.einsum("bik,ji->bjk", verts, self.h36m_regressor),
            ],
            dim=1,
        )
        return BodyOutput(verts=verts, joints=joints)


def root_offset(out: BodyOutput) -> torch.Tensor:
    """(N, 3) the midpoint of joints 45/46 (LSP hips): what root alignment moves to the origin."""
    return out.joints[:, list(ROOT_ALIGN_JOINTS)].mean(1)


def root_align(out: BodyOutput) -> BodyOutput:
    """Subtract the midpoint of joints 45/46 (LSP hips) from joints and vertices."""
    root = root_offset(out)[:, None]
    return BodyOutput(verts=out.verts - root, joints=out.joints - root)


class BodyModelSet(nn.Module):
    """The body models one predictor needs: SMPL (ROMP) or SMPL-A + SMIL (BEV).

    ``name`` says which set it is ("smpl": the official files; "open-<version>": meshfleet's open
    model); results record it.
    """

    def __init__(self, smpl: BodyModel, smpla: BodyModel | None = None, smil: BodyModel | None = None,
                 name: str = "smpl"):
        super().__init__()
        self.smpl = smpl
        self.smpla = smpla
        self.smil = smil
        self.name = name

    @property
    def num_verts(self) -> int:
        """Vertices per body (6890 for SMPL)."""
        return int(self.smpl.v_template.shape[0])

    def smpl_forward(self, betas: torch.Tensor, thetas: torch.Tensor) -> BodyOutput:
        """ROMP: plain SMPL with 10 betas."""
        return self.smpl(betas[:, :10], thetas)

    def smpla_forward(self, betas: torch.Tensor, thetas: torch.Tensor) -> BodyOutput:
        """BEV: SMPL-A with 11 betas, SMIL with betas[:, :10] where betas[:, 10] > 0.8."""
        if self.smpla is None or self.smil is None:
            raise ValueError("this body-model set was loaded without SMPL-A / SMIL (load it for BEV)")
        baby = betas[:, 10] > BABY_THRESHOLD
        if not bool(baby.any()):
            return self.smpla(betas, thetas)
        verts = betas.new_zeros(betas.shape[0], self.num_verts, 3)
        joints = betas.new_zeros(betas.shape[0], NUM_JOINTS, 3)
        infants = self.smil(betas[baby, :10], thetas[baby])
        verts[baby], joints[baby] = infants.verts, infants.joints
        if bool((~baby).any()):
            others = self.smpla(betas[~baby], thetas[~baby])
            verts[~baby], joints[~baby] = others.verts, others.joints
        return BodyOutput(verts=verts, joints=joints)

    def layer_for(self, model: str, betas: torch.Tensor) -> tuple[BodyModel, torch.Tensor]:
        """The layer that meshes one person of ``model`` ("romp" or "bev") with shape ``betas`` (K,),
        and the betas that layer takes: the same choice as ``smpl_forward`` / ``smpla_forward``."""
        if model == "romp":
            return self.smpl, betas[:10]
        if model != "bev":
            raise ValueError(f"model must be romp or bev, not {model!r}")
        if self.smpla is None or self.smil is None:
            raise ValueError("this body-model set was loaded without SMPL-A / SMIL (load it for BEV)")
        return (self.smil, betas[:10]) if float(betas[10]) > BABY_THRESHOLD else (self.smpla, betas)

    @classmethod
    def from_dir(cls, directory: str | Path, gender: str = "neutral", for_bev: bool = False) -> BodyModelSet:
        """Load the official files from ``directory`` (or an open model written by ``meshfleet
        body-model build-open``); BEV also needs SMPL-A and SMIL."""
        from core import open_body_model

        if open_body_model.is_open_model_dir(directory):
            return cls.open(for_bev=for_bev, gender=gender, directory=directory)
        return BodyModelFiles.find(directory, gender).load(for_bev=for_bev)

    @classmethod
    def open(cls, for_bev: bool = False, gender: str = "neutral", directory: str | Path | None = None) -> BodyModelSet:
        """The open, license-free model shipped with meshfleet (or the one in ``directory``):
        SMPL, and for BEV SMPL-A (11th direction toward the infant) and the infant model as SMIL."""
        from core import open_body_model

        model = open_body_model.read_open_model(directory or open_body_model.SHIPPED_DIR, gender)
        if not for_bev:
            return cls(BodyModel(model.smpl), name=model.name)
        smpla = with_kid_shape(model.smpl, model.kid_template)
        return cls(BodyModel(model.smpl), BodyModel(smpla), BodyModel(model.smil), name=model.name)


@dataclass(frozen=True)
class BodyModelFiles:
    """Where the official body-model files are, under their official names."""

    smpl: Path
    extra_regressor: Path
    h36m_regressor: Path
    kid_template: Path | None
    smil: Path | None

    @classmethod
    def find(cls, directory: str | Path, gender: str = "neutral") -> BodyModelFiles:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise BodyModelFileError(f"{root}: body-model directory not found")
        gender = gender.upper()
        if gender not in ("NEUTRAL", "MALE", "FEMALE"):
            raise ValueError(f"gender must be neutral, male or female, not {gender.lower()!r}")
        required = {
            "smpl": root / f"SMPL_{gender}.pkl",
            "extra_regressor": root / "J_regressor_extra.npy",
            "h36m_regressor": root / "J_regressor_h36m.npy",
        }
        missing = [str(p) for p in required.values() if not p.is_file()]
        if missing:
            raise BodyModelFileError(f"{root}: missing body-model files: {', '.join(missing)}")
        kid = root / "smpl_kid_template.npy"
        smil = next((p for p in (root / "smil_web.pkl", root / "smil" / "smil_web.pkl") if p.is_file()), None)
        return cls(**required, kid_template=kid if kid.is_file() else None, smil=smil)

    def load(self, for_bev: bool = False) -> BodyModelSet:
        """Read and convert the files; BEV (``for_bev``) requires the kid template and SMIL."""
        if for_bev:
            absent = [name for name, p in (("smpl_kid_template.npy", self.kid_template),
                                           ("smil_web.pkl", self.smil)) if p is None]
            if absent:
                raise BodyModelFileError(f"{self.smpl.parent}: BEV needs {' and '.join(absent)}")
        extra = _load_regressor(self.extra_regressor, 9)
        h36m = _load_regressor(self.h36m_regressor, 17)
        raw = load_model_pickle(self.smpl)
        smpl_arrays = arrays_from_pickle(raw, extra, h36m, 10, str(self.smpl))
        if not for_bev:
            return BodyModelSet(BodyModel(smpl_arrays))
        assert self.kid_template is not None and self.smil is not None
        kid = _load_array(self.kid_template, (NUM_VERTS, 3))
        smpla = with_kid_shape(smpl_arrays, kid)
        smil = arrays_from_pickle(load_model_pickle(self.smil), extra, h36m, 10, str(self.smil))
        return BodyModelSet(BodyModel(smpl_arrays), BodyModel(smpla), BodyModel(smil))


def _load_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise BodyModelFileError(f"{path}: not a readable .npy array ({err})") from err
    return _check_shape(path.name, np.asarray(array), shape, str(path))


def _load_regressor(path: Path, rows: int) -> np.ndarray:
    return _load_array(path, (rows, NUM_VERTS))
