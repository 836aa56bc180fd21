"""Synthetic ground truth in the official layouts that meshfleet's evaluators read unchanged.

Every layout is computed from the training-annotation rows (``labels/``) of ``meshfleet synth``, the
one record of each scene, with the evaluators' own constants, so that the oracle (the same rows as
results) scores perfectly:

* AGORA (``agora/``, what ``eval agora --data`` takes): ``gt_dataframe_smpl/<unit>_withjv.pkl`` (one
  row per image: ``imgPath`` = ``<stem>.png``, per person ``isValid`` = occlusion <= 90 %,
  ``occlusion`` %, ``kid`` = age class kid or baby, ``gt_joints_2d`` (45, 2) at 3840 x 2160,
  ``gt_joints_3d`` (45, 3) / ``gt_verts`` camera frame, m), ``utils/body_verts_smpl.npy`` (every vertex)
  and ``utils/smpl_kid_template.npy`` (the set's). AGORA's kid model has no SMIL swap, so its joints
  and vertices are those of SMPL-A with the person's 11 betas, as the evaluator computes them from
  parameters (for babies this differs from the rendered SMIL mesh). AGORA frames are 16:9 and both
  protocols' 2D scalings agree only there: only 16:9 images (+-1 %) enter this layout.
* Relative Human (``relative_human/synth_annots.npz``, ``eval relative-human --annots``): per image
  name, per person ``kp2d`` (14 CrowdPose joints (x, y, flag), flag 2 visible, 1 hidden or outside the
  image -- synthetic truth knows every joint), ``bbox`` (visible mask) and ``bbox_wb`` (joints),
  ``depth_id`` (-1 where layers are ambiguous), ``age``, ``gender`` / ``body_type`` -1,
  ``occluded_by_others``. Still images only.
* CMU Panoptic (``cmu_panoptic/panoptic_annot/<unit>.pkl``, ``eval cmu-panoptic --data``): CRMH
  records keyed ``processed/<sequence>/synth/<index>.png`` (the image ``<sequence>-<index>.jpg``),
  2D at the 832-px annotation scale, 3D minus the protocol's (0, 0.06, 0.03) m offset. Still images.
* MOT (``mot/<video stem>/gt/gt.txt``, ``eval tracking --gt``): per frame and track, the box of the 71
  projected joints clipped to the image (as tracks are boxed from ``pj2d_org``), class 1, visibility.
"""

from __future__ import annotations

import io
import pickle
import posixpath
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from core.body_models import BodyModelSet
from core.boxes import joint_boxes
from eval.agora_format import IMG_HEIGHT, IMG_WIDTH, NUM_VERTS
from eval.cmu_panoptic import ANNOT_SCALE, GT_OFFSET, GT_ROOT, H36M17_COLUMNS, J17_TO_J14, J24_TO_J14
from eval.relative_human import SMPL54_TO_CROWDPOSE14
from pipelines.schema import column_array
from pipelines.storage import join, list_files, read_parquet, write_bytes_atomic

AGORA_JOINTS = 45  # SMPL's 24 + the 21 vertex joints, AGORA's gt_joints_2d / gt_joints_3d
AGORA_ASPECT = IMG_WIDTH / IMG_HEIGHT
ASPECT_TOLERANCE = 0.01
RH_SPLIT = "synth"
VISIBLE, LABELLED = 2, 1  # COCO-style keypoint flags


def images(labels: pa.Table) -> Iterator[tuple[str, np.ndarray]]:
    """(source, row indices in person order) of every still image, in row order."""
    frame = labels.select(["source", "frame", "person", "track_id"]).to_pandas()
    stills = frame[frame["track_id"].isna()]
    for source, group in stills.groupby("source", sort=False):
        yield str(source), group.sort_values("person", kind="stable").index.to_numpy()


def image_name(source: str) -> str:
    return posixpath.basename(source)


def stem(source: str) -> str:
    return posixpath.splitext(image_name(source))[0]


def _arrays(labels: pa.Table) -> dict[str, np.ndarray]:
    return {"joints2d": column_array(labels, "joints2d", (71, 2)),
            "joints3d": column_array(labels, "joints3d", (71, 3)),
            "bbox": column_array(labels, "bbox", (4,)), "betas": column_array(labels, "smpl_betas", (11,)),
            "thetas": column_array(labels, "smpl_thetas", (72,)), "trans": column_array(labels, "cam_trans", (3,)),
            "visible": np.array(labels.column("joints2d_visible").to_pylist(), bool).reshape(-1, 71)}


# -- AGORA -----------------------------------------------------------------------------------------

def is_agora_frame(height: int, width: int) -> bool:
    return abs(width / height / AGORA_ASPECT - 1) <= ASPECT_TOLERANCE


def agora_dataframe(labels: pa.Table, body: BodyModelSet) -> pd.DataFrame:
    """One AGORA ground-truth row per 16:9 still image of ``labels``."""
    a = _arrays(labels)
    occlusion = labels.column("occlusion").to_numpy(zero_copy_only=False)
    ages = labels.column("age_class").to_numpy()
    heights, widths = labels.column("image_height").to_numpy(), labels.column("image_width").to_numpy()
    assert body.smpla is not None
    rows = []
    for source, idx in images(labels):
        h, w = int(heights[idx[0]]), int(widths[idx[0]])
        if not is_agora_frame(h, w):
            continue
        with torch.inference_mode():
            out = body.smpla(torch.from_numpy(a["betas"][idx]), torch.from_numpy(a["thetas"][idx]))
        trans = a["trans"][idx][:, None]
        verts, joints = out.verts.numpy() + trans, out.joints.numpy()[:, :AGORA_JOINTS] + trans
        scale = np.array([IMG_WIDTH / w, IMG_HEIGHT / h], np.float32)
        percent = np.nan_to_num(occlusion[idx], nan=1.0) * 100
        rows.append({
            "imgPath": f"{stem(source)}.png",
            "isValid": [bool(p <= 90) for p in percent],
            "occlusion": [float(p) for p in percent],
            "kid": [bool(c >= 2) for c in ages[idx]],
            "gt_joints_2d": [a["joints2d"][i, :AGORA_JOINTS] * scale for i in idx],
            "gt_joints_3d": list(joints),
            "gt_verts": list(verts),
        })
    return pd.DataFrame(rows, columns=["imgPath", "isValid", "occlusion", "kid", "gt_joints_2d", "gt_joints_3d",
                                       "gt_verts"])


def agora_utils(body: BodyModelSet) -> dict[str, bytes]:
    """``utils/body_verts_smpl.npy`` and ``utils/smpl_kid_template.npy`` (the SMPL-A age direction plus
    template, i.e. the centred kid template the set was built from). MVE runs over every vertex the
    AGORA reader accepts: all of an SMPL mesh, the first 6890 of a larger one (its index check)."""
    assert body.smpla is not None
    template = body.smpla.v_template.numpy().astype(np.float64)
    kid = template + body.smpla.shapedirs[:, :, 10].numpy().astype(np.float64)
    ids = np.arange(min(len(template), NUM_VERTS), dtype=np.int64)
    return {"body_verts_smpl.npy": _npy(ids), "smpl_kid_template.npy": _npy(kid)}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def dataframe_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_pickle(buffer)
    return buffer.getvalue()


# -- Relative Human --------------------------------------------------------------------------------

def relative_human_annots(labels: pa.Table) -> dict[str, list[dict]]:
    """{image name: [person dict]} of the still images, people in person order."""
    a = _arrays(labels)
    depth = labels.column("depth_layer").to_numpy()
    has_depth = labels.column("has_depth_layer").to_numpy(zero_copy_only=False)
    ages = labels.column("age_class").to_numpy()
    occlusion = labels.column("occlusion").to_numpy(zero_copy_only=False)
    out: dict[str, list[dict]] = {}
    for source, idx in images(labels):
        people = []
        for i in idx:
            joints = a["joints2d"][i, SMPL54_TO_CROWDPOSE14].astype(np.float64)
            flags = np.where(a["visible"][i, SMPL54_TO_CROWDPOSE14], VISIBLE, LABELLED)
            box_wb = joint_boxes(a["joints2d"][i][None])[0].astype(np.float64)
            people.append({
                "kp2d": np.concatenate([joints, flags[:, None]], axis=1).reshape(-1),
                "bbox": a["bbox"][i].astype(np.float64),
                "bbox_wb": np.r_[box_wb[:2], box_wb[:2] + box_wb[2:]],
                "depth_id": int(depth[i]) if has_depth[i] else -1,
                "age": int(ages[i]), "gender": -1, "body_type": -1,
                "occluded_by_others": int(np.nan_to_num(occlusion[i]) > 0),
            })
        out[image_name(source)] = people
    return out


def annots_npz(annots: dict[str, list[dict]]) -> bytes:
    """``{split}_annots.npz`` bytes: member ``annots`` = the dict, pickled in a 0-d object array."""
    holder = np.empty((), dtype=object)
    holder[()] = annots
    buffer = io.BytesIO()
    np.savez(buffer, annots=holder)
    return buffer.getvalue()


# -- CMU Panoptic ----------------------------------------------------------------------------------

def cmu_records(labels: pa.Table) -> list[dict]:
    """CRMH per-frame dicts of the still images (whose names are ``<sequence>-<index>.jpg``)."""
    a = _arrays(labels)
    heights, widths = labels.column("image_height").to_numpy(), labels.column("image_width").to_numpy()
    records = []
    for source, idx in images(labels):
        sequence, _, name = stem(source).partition("-")
        kp2d = np.tile([-1.0, -1.0, 0.0], (len(idx), 24, 1))
        kp3d = np.zeros((len(idx), 24, 4))
        h17 = slice(H36M17_COLUMNS.start, H36M17_COLUMNS.stop)
        j2d = a["joints2d"][idx, h17][:, list(J17_TO_J14)].astype(np.float64) / ANNOT_SCALE
        j3d = a["joints3d"][idx, h17][:, list(J17_TO_J14)].astype(np.float64)
        j3d[:, :GT_ROOT] -= GT_OFFSET  # the protocol adds it back to all but the pelvis
        kp2d[:, list(J24_TO_J14)] = np.concatenate([j2d, np.ones((len(idx), 14, 1))], axis=-1)
        kp3d[:, list(J24_TO_J14)] = np.concatenate([j3d, np.ones((len(idx), 14, 1))], axis=-1)
        records.append({"filename": f"processed/{sequence}/synth/{name}.png",
                        "width": float(widths[idx[0]]) / ANNOT_SCALE, "height": float(heights[idx[0]]) / ANNOT_SCALE,
                        "kpts2d": kp2d, "kpts3d": kp3d})
    return records


def cmu_bytes(records: list[dict]) -> bytes:
    return pickle.dumps(records, protocol=2)


# -- MOT -------------------------------------------------------------------------------------------

def mot_sequences(labels: pa.Table) -> dict[str, str]:
    """{video stem: MOTChallenge gt.txt} for the video rows: ``frame+1, track, left, top, width,
    height, 1, 1, visibility``."""
    videos = labels.filter(labels.column("track_id").is_valid())
    if videos.num_rows == 0:
        return {}
    sizes = np.column_stack([videos.column("image_height").to_numpy(), videos.column("image_width").to_numpy()])
    boxes = joint_boxes(column_array(videos, "joints2d", (71, 2)), sizes)
    visibility = 1.0 - np.nan_to_num(videos.column("occlusion").to_numpy(zero_copy_only=False), nan=1.0)
    frame = pd.DataFrame({"source": videos.column("source").to_pylist(), "frame": videos.column("frame").to_numpy(),
                          "track": videos.column("track_id").to_numpy()})
    out: dict[str, list[str]] = {}
    for row in frame.sort_values(["source", "frame", "track"], kind="stable").itertuples():
        box = ",".join(f"{v:.2f}" for v in boxes[row.Index])
        line = f"{row.frame + 1},{row.track},{box},1,1,{visibility[row.Index]:.3f}"
        out.setdefault(stem(row.source), []).append(line + "\n")
    return {name: "".join(lines) for name, lines in out.items()}


# -- writing ---------------------------------------------------------------------------------------

def write_layouts(output: str, body: BodyModelSet) -> dict[str, int]:
    """Write every benchmark layout of the synth dataset at ``output`` from its ``labels/`` files.

    Per-unit files (AGORA dataframes, CMU annotation files) are written once, for units that lack them;
    the dataset-wide ones (Relative Human npz, MOT sequences, AGORA utils) are rewritten. Returns counts
    of images / sequences per layout."""
    files = list_files(join(output, "labels"), ".parquet")
    counts = {"agora": 0, "relative_human": 0, "cmu_panoptic": 0, "mot": 0}
    annots: dict[str, list[dict]] = {}
    tables = []
    agora_dir = join(join(output, "agora"), "gt_dataframe_smpl")
    cmu_dir = join(join(output, "cmu_panoptic"), "panoptic_annot")
    done = {posixpath.basename(f) for f in list_files(agora_dir, ".pkl") + list_files(cmu_dir, ".pkl")}
    for uri in files:
        labels = read_parquet(uri)
        tables.append(labels.select(["source", "frame", "track_id", "image_height", "image_width", "joints2d",
                                     "occlusion"]))
        unit = posixpath.basename(uri.replace("\\", "/")).removesuffix(".parquet")
        heights, widths = labels.column("image_height").to_numpy(), labels.column("image_width").to_numpy()
        stills = [(int(heights[idx[0]]), int(widths[idx[0]])) for _, idx in images(labels)]
        counts["agora"] += sum(is_agora_frame(h, w) for h, w in stills)
        counts["cmu_panoptic"] += len(stills)
        if f"{unit}_withjv.pkl" not in done and (frame := agora_dataframe(labels, body)).shape[0]:
            write_bytes_atomic(join(agora_dir, f"{unit}_withjv.pkl"), dataframe_bytes(frame))
        if f"{unit}.pkl" not in done and (records := cmu_records(labels)):
            write_bytes_atomic(join(cmu_dir, f"{unit}.pkl"), cmu_bytes(records))
        annots.update(relative_human_annots(labels))
    if counts["agora"]:
        for name, data in agora_utils(body).items():
            write_bytes_atomic(join(join(join(output, "agora"), "utils"), name), data)
    if annots:
        write_bytes_atomic(join(join(output, "relative_human"), f"{RH_SPLIT}_annots.npz"), annots_npz(annots))
    counts["relative_human"] = len(annots)
    sequences = mot_sequences(pa.concat_tables(tables)) if tables else {}
    for name, text in sequences.items():
        write_bytes_atomic(join(join(join(output, "mot"), name), "gt/gt.txt"), text.encode())
    counts["mot"] = len(sequences)
    return counts
