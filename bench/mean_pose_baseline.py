"""The mean-pose baseline of issue 17: every ground-truth person of a synthetic test set predicted
with the training set's mean pose, at its true location, as a meshfleet results dataset that
``meshfleet eval agora`` scores with the same evaluator as a trained model.

What is kept from the ground truth: the person's location (``cam_trans``, and the 2D joints the
AGORA matcher uses, so every person is detected and the score isolates the pose), and the shape
(``smpl_betas``, age offset included). What is replaced: all 24 joint rotations (global orientation
included, camera frame; with ``--true-orient`` the 23 body joints only, a stronger baseline that
knows which way each person faces) by the training set's mean rotation per joint: the chordal L2 mean (the
average rotation matrix projected back onto SO(3), Hartley et al., "Rotation Averaging", IJCV 2013,
section 5.3), which, unlike an average of axis-angle vectors, does not depend on how angles wrap.

    python bench/mean_pose_baseline.py --train data/train --test data/test --output data/mean-pose
    meshfleet eval agora --predictions data/mean-pose --data data/test/agora --body-models open
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch
from smplx.lbs import batch_rodrigues

from core.body_models import BodyModelSet
from core.rotations import rotmat_to_axis_angle
from pipelines.schema import METADATA_KEY, array_column, column_array, read_metadata
from pipelines.storage import join, list_files
from pipelines.synth.generator import write_table

BASELINE_MODEL = "mean-pose"


def mean_pose(labels: pa.Table) -> np.ndarray:
    """(72,) axis-angle: the chordal L2 mean rotation of each of the 24 joints over ``labels``."""
    thetas = torch.from_numpy(column_array(labels, "smpl_thetas", (72,)).reshape(-1, 24, 3).copy())
    mats = batch_rodrigues(thetas.reshape(-1, 3).double()).reshape(-1, 24, 3, 3).mean(dim=0)  # (24, 3, 3)
    u, _, vt = torch.linalg.svd(mats)
    fix = torch.ones(24, 3, dtype=mats.dtype)
    fix[:, 2] = torch.sign(torch.det(u @ vt))  # a rotation, not a reflection
    rotations = u @ torch.diag_embed(fix) @ vt
    return rotmat_to_axis_angle(rotations.float()).reshape(72).numpy()


def baseline_table(oracle: pa.Table, pose: np.ndarray, body_models: BodyModelSet, true_orient: bool = False
                   ) -> pa.Table:
    """The oracle rows with ``smpl_thetas`` set to ``pose`` (its body joints only with ``true_orient``)
    and ``joints`` re-meshed to match."""
    n = oracle.num_rows
    thetas = np.repeat(pose[None], n, axis=0)
    if true_orient:
        thetas[:, :3] = column_array(oracle, "smpl_thetas", (72,))[:, :3]
    betas = torch.from_numpy(column_array(oracle, "smpl_betas", (11,)).copy())
    joints = np.zeros((0, 71, 3), np.float32)
    if n:
        joints = body_models.smpla_forward(betas, torch.from_numpy(thetas)).joints.numpy()
    schema = oracle.schema
    meta = read_metadata(schema)
    meta.update({"model": BASELINE_MODEL, "baseline": "training-set mean pose at the true location"
                 + (" with the true global orientation" if true_orient else "")})
    schema = schema.with_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})
    columns = {name: oracle.column(name) for name in oracle.schema.names}
    columns["smpl_thetas"] = array_column(thetas.astype(np.float32), schema.field("smpl_thetas").type)
    columns["joints"] = array_column(joints.astype(np.float32), schema.field("joints").type)
    columns["model"] = pa.array([BASELINE_MODEL] * n, pa.string())
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="meshfleet synth folder whose labels give the mean pose")
    parser.add_argument("--test", required=True, help="meshfleet synth folder whose oracle/ gives the people")
    parser.add_argument("--output", required=True, help="results dataset to write")
    parser.add_argument("--true-orient", action="store_true", help="keep each person's true global orientation")
    args = parser.parse_args()
    labels = ds.dataset(join(args.train, "labels"), format="parquet").to_table(columns=["smpl_thetas"])
    pose = mean_pose(labels)
    body_models = BodyModelSet.open(for_bev=True)
    for path in list_files(join(args.test, "oracle"), ".parquet"):
        oracle = ds.dataset(path, format="parquet").to_table()
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        write_table(baseline_table(oracle, pose, body_models, args.true_orient), join(args.output, name))
    print(f"mean pose of {labels.num_rows} training people -> {args.output}")


if __name__ == "__main__":
    main()
