"""``meshfleet synth --motions``: folders of .npz and .bvh files, and a motion file it cannot read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from jobs.cli import app
from jobs.synth import motion_files

runner = CliRunner()


def test_folders_give_their_npz_and_bvh_files(tmp_path):
    for name in ("b.npz", "a.BVH", "c.bvh", "notes.txt", ".hidden.bvh"):
        (tmp_path / name).write_text("")
    assert motion_files((str(tmp_path), str(tmp_path / "c.bvh"))) == tuple(
        str(tmp_path / n) for n in ("a.BVH", "b.npz", "c.bvh", "c.bvh"))


def test_an_unmappable_bvh_exits_2_naming_it_before_anything_is_written(tmp_path: Path):
    motions = tmp_path / "motions"
    motions.mkdir()
    np.savez(motions / "good.npz", poses=np.zeros((2, 72)))
    # a skeleton of two joints: none of SMPL's but the pelvis
    (motions / "arm.bvh").write_text("HIERARCHY\nROOT Pelvis\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation "
                                     "Yrotation\n JOINT Arm\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Xrotation Yrotation "
                                     "Zrotation\n  End Site\n  {\n   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 1\n"
                                     "Frame Time: 0.033333\n0 0 0 10 20 30\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--output", str(out), "--scenes", "1", "--motions", str(motions),
                                 "--no-ray"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "arm.bvh" in lines[0] and "missing left_hip, right_hip" in lines[0]
    assert not out.exists()
