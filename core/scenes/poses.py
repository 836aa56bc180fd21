"""Body poses on SMPL's 24-joint tree: a keyframe library, joint limits, and samplers.

Conventions (SMPL rest pose, body frame): y up, z forward (the face looks along +z), x toward the
body's left; every joint's local frame is aligned with the body frame at rest, so a local rotation
of a joint whose ancestors are at rest is about the body axes. A joint's rotation is written as
Euler angles in degrees, ``(x, y, z)`` applied in the joint's order :data:`EULER_ORDER` (extrinsic,
scipy's lower-case convention), chosen so that each axis means one movement:

* hips ``yzx``: twist about the leg (y), abduction (z, + = outward for the left leg), flexion (x,
  - = thigh forward);
* knees ``xyz``: flexion x (+ = shin backward); ankles x (- = toes up, + = pointed);
* spine, neck, head ``xyz``: x flexion (+ = forward bend), y twist, z side bend;
* shoulders ``xyz``: twist about the arm (x), swing in the transverse plane (y, - = forward for the
  left arm), elevation (z, - = down for the left arm; about -75 hangs the arm by the side);
* elbows: flexion about y (- for the left arm). Right-side joints mirror the left: same x, y and z
  negated (mirroring across the sagittal plane conjugates rotations by diag(-1, 1, 1)).

The two hand joints (22, 23) stay zero, as in ROMP / BEV output.

Joint limits (:data:`LIMITS_LEFT`) are within the normal active ranges of motion of the American
Academy of Orthopaedic Surgeons (Greene & Heckman, "The Clinical Measurement of Joint Motion", 1994):
hip flexion 120 / extension 30 / abduction 45 / rotation 45, knee flexion 135, ankle dorsiflexion 20 /
plantar flexion 50, shoulder flexion 180 / abduction 180, elbow flexion 150 deg, spine and neck split
over their segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

NUM_JOINTS = 24
JOINT = {name: i for i, name in enumerate((
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand"))}
MIRROR = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22])
EULER_ORDER = ["xyz"] * NUM_JOINTS
EULER_ORDER[1] = EULER_ORDER[2] = "yzx"

# (x, y, z) degree ranges for the left side and the centre joints; the right side mirrors them.
LIMITS_LEFT: dict[str, tuple[tuple[float, float], ...]] = {
    "l_hip": ((-115, 25), (-35, 35), (-20, 45)),
    "l_knee": ((0, 135), (-10, 10), (-5, 5)),
    "l_ankle": ((-20, 45), (-15, 15), (-20, 20)),
    "l_foot": ((-35, 15), (-5, 5), (-5, 5)),
    "spine1": ((-10, 30), (-15, 15), (-12, 12)),
    "spine2": ((-10, 25), (-15, 15), (-12, 12)),
    "spine3": ((-10, 25), (-15, 15), (-12, 12)),
    "neck": ((-25, 35), (-35, 35), (-20, 20)),
    "head": ((-20, 25), (-30, 30), (-15, 15)),
    "l_collar": ((-10, 10), (-15, 10), (-10, 20)),
    "l_shoulder": ((-60, 60), (-95, 40), (-85, 85)),
    "l_elbow": ((-30, 30), (-145, 0), (-5, 5)),
    "l_wrist": ((-40, 40), (-30, 30), (-50, 50)),
    "l_hand": ((0, 0), (0, 0), (0, 0)),
}


def _limit_table() -> np.ndarray:
    """(24, 3, 2) degree limits; the pelvis (placement decides it) is unlimited."""
    table = np.zeros((NUM_JOINTS, 3, 2))
    table[0] = [[-180, 180]] * 3
    for name, limits in LIMITS_LEFT.items():
        i = JOINT[name]
        table[i] = limits
        if name.startswith("l_"):
            table[MIRROR[i]] = [limits[0], (-limits[1][1], -limits[1][0]), (-limits[2][1], -limits[2][0])]
    return table


LIMITS = _limit_table()


def _keyframe(**joints: tuple[float, float, float]) -> np.ndarray:
    """(24, 3) Euler degrees from ``name=(x, y, z)``; ``both_<name>`` sets the left joint and its mirror."""
    euler = np.zeros((NUM_JOINTS, 3))
    for name, angles in joints.items():
        if name.startswith("both_"):
            left = JOINT["l_" + name[5:]]
            euler[left] = angles
            euler[MIRROR[left]] = (angles[0], -angles[1], -angles[2])
        else:
            euler[JOINT[name]] = angles
    return euler


def mirror_euler(euler: np.ndarray) -> np.ndarray:
    """(24, 3) Euler degrees of the left-right mirrored pose."""
    out = euler[MIRROR].copy()
    out[:, 1:] *= -1
    return out


ARMS_DOWN = {"both_shoulder": (0.0, -10.0, -72.0), "both_elbow": (0.0, -12.0, 0.0)}
# Each keyframe is written for one side; mirror_euler gives the other (both are in the library).
KEYFRAMES: dict[str, np.ndarray] = {
    # standing relaxed: arms hanging slightly in front of the body, elbows a little bent
    "standing": _keyframe(**ARMS_DOWN, both_knee=(3, 0, 0)),
    # walking, heel strike of the left foot: left thigh 25 deg forward, right leg 15 deg behind with a
    # bent knee and pointed foot, arms swinging opposite to the legs
    "walking": _keyframe(l_hip=(-25, 0, 0), l_knee=(8, 0, 0), l_ankle=(-5, 0, 0), r_hip=(15, 0, 0),
                         r_knee=(25, 0, 0), r_ankle=(15, 0, 0), l_shoulder=(0, 25, -75),
                         r_shoulder=(0, 25, 75), both_elbow=(0, -20, 0), spine1=(3, 0, 0)),
    # walking, passing phase: the left leg supports, the right swings past it with a bent knee
    "walking_passing": _keyframe(l_hip=(-3, 0, 0), l_knee=(5, 0, 0), r_hip=(-20, 0, 0), r_knee=(45, 0, 0),
                                 r_ankle=(-5, 0, 0), **ARMS_DOWN, spine1=(3, 0, 0)),
    # running: forward lean, left thigh 50 deg up with the knee bent 60, right leg pushing off, elbows 90
    "running": _keyframe(l_hip=(-50, 0, 0), l_knee=(60, 0, 0), r_hip=(20, 0, 0), r_knee=(80, 0, 0),
                         r_ankle=(25, 0, 0), l_shoulder=(0, 35, -70), r_shoulder=(0, 40, 70),
                         both_elbow=(0, -90, 0), spine1=(10, 0, 0), spine2=(5, 0, 0)),
    # sitting on the floor, legs stretched forward, hands resting beside the hips
    "sitting": _keyframe(both_hip=(-88, 0, 5), both_knee=(10, 0, 0), spine1=(10, 0, 0), spine2=(5, 0, 0),
                         both_shoulder=(0, 10, -70), both_elbow=(0, -15, 0), neck=(5, 0, 0)),
    # sitting on the floor with knees up, arms around the knees
    "sitting_knees_up": _keyframe(both_hip=(-100, 0, 10), both_knee=(110, 0, 0), both_ankle=(-10, 0, 0),
                                  spine1=(20, 0, 0), spine2=(10, 0, 0), both_shoulder=(0, -60, -45),
                                  both_elbow=(0, -70, 0)),
    # kneeling upright: thighs vertical, shins flat on the floor behind, feet pointed
    "kneeling": _keyframe(both_knee=(90, 0, 0), both_ankle=(40, 0, 0), **ARMS_DOWN),
    # crouching / deep squat: hips and knees folded, heels down, arms forward for balance
    "crouching": _keyframe(both_hip=(-110, 0, 10), both_knee=(130, 0, 0), both_ankle=(-20, 0, 0),
                           spine1=(25, 0, 0), spine2=(10, 0, 0), both_shoulder=(0, -70, -40),
                           both_elbow=(0, -30, 0), neck=(-10, 0, 0)),
    # reaching forward with the left arm at shoulder height, slight forward lean
    "reaching": _keyframe(l_shoulder=(0, -85, 5), l_elbow=(0, -5, 0), r_shoulder=(0, -10, 72),
                          r_elbow=(0, 12, 0), spine1=(10, 0, 0), spine2=(5, 0, 0), l_hip=(-5, 0, 0)),
    # both arms raised overhead, elbows slightly bent
    "arms_raised": _keyframe(both_shoulder=(0, -10, 75), both_elbow=(0, -15, 0), neck=(-10, 0, 0)),
    # lying on the back (root tilted 90 deg backward: face up), arms by the sides, knees slightly bent
    "lying": _keyframe(pelvis=(-90, 0, 0), both_hip=(-10, 0, 0), both_knee=(15, 0, 0), both_shoulder=(0, 0, -70)),
    # lying on the right side (root rolled 90 deg), legs bent, upper arm forward
    "lying_side": _keyframe(pelvis=(0, 0, 90), both_hip=(-40, 0, 0), both_knee=(60, 0, 0),
                            l_shoulder=(0, -60, -20), r_shoulder=(0, 30, 70), both_elbow=(0, -30, 0)),
    # crawling on hands and knees (babies): root pitched forward 90 deg, thighs vertical, shins on the
    # floor, arms straight down, head raised to look ahead
    "crawling": _keyframe(pelvis=(90, 0, 0), both_hip=(-85, 0, 0), both_knee=(90, 0, 0),
                          both_shoulder=(0, -85, -10), neck=(-25, 0, 0), head=(-15, 0, 0)),
}
# Which keyframes suit which age class (0 adult, 1 teen, 2 kid, 3 baby).
BABY_POSES = ("sitting", "sitting_knees_up", "lying", "lying_side", "crawling", "standing")
WALK_CYCLE = ("walking", "walking_passing")  # the half cycle; the other half is mirrored


def euler_to_axis_angle(euler: np.ndarray) -> np.ndarray:
    """(24, 3) Euler degrees in each joint's order -> (72,) axis-angle radians (float64)."""
    out = np.zeros((NUM_JOINTS, 3))
    for order in set(EULER_ORDER):
        rows = [i for i, o in enumerate(EULER_ORDER) if o == order]
        angles = euler[rows][:, ["xyz".index(c) for c in order]]
        out[rows] = Rotation.from_euler(order, angles, degrees=True).as_rotvec()
    return out.reshape(-1)


def within_limits(euler: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """(24, 3) Euler degrees -> (24,) bool, every axis inside :data:`LIMITS`."""
    inside = (euler >= LIMITS[..., 0] - tolerance) & (euler <= LIMITS[..., 1] + tolerance)
    return np.asarray(inside.all(axis=1))


def perturb(euler: np.ndarray, rng: np.random.Generator, noise_deg: float) -> np.ndarray:
    """Gaussian per-axis noise on every limited joint, clipped to the limits (pelvis untouched)."""
    out = euler + rng.normal(0.0, noise_deg, euler.shape)
    out[0] = euler[0]
    out = np.clip(out, LIMITS[..., 0], LIMITS[..., 1])
    out[JOINT["l_hand"]] = out[JOINT["r_hand"]] = 0.0
    return out


def random_pose(rng: np.random.Generator, spread: float) -> np.ndarray:
    """(24, 3) Euler degrees drawn uniformly from ``spread`` x each joint's range around the neutral
    pose (the range is scaled toward 0 and stays inside the limits); arms start from hanging."""
    low, high = LIMITS[..., 0] * spread, LIMITS[..., 1] * spread
    euler = rng.uniform(low, high)
    base = _keyframe(**ARMS_DOWN)
    euler = np.clip(euler + base * (1 - spread), LIMITS[..., 0], LIMITS[..., 1])
    euler[0] = 0.0
    euler[JOINT["l_hand"]] = euler[JOINT["r_hand"]] = 0.0
    return euler


@dataclass(frozen=True)
class PoseChoice:
    """A drawn body pose: name (keyframe, ``random`` or ``motion:<k>``), root (3, 3) rotation of the body
    in its upright frame (lying / crawling tilt it) and body (69,) axis-angle of joints 1-23."""

    name: str
    root: np.ndarray
    body: np.ndarray


def pose_from_euler(name: str, euler: np.ndarray) -> PoseChoice:
    aa = euler_to_axis_angle(euler)
    return PoseChoice(name, Rotation.from_rotvec(aa[:3]).as_matrix(), aa[3:])


def library_pose(rng: np.random.Generator, noise_deg: float, age_class: int) -> PoseChoice:
    """A keyframe (babies: :data:`BABY_POSES`), mirrored with probability 1/2, perturbed."""
    names = BABY_POSES if age_class == 3 else tuple(KEYFRAMES)
    name = names[int(rng.integers(len(names)))]
    euler = KEYFRAMES[name]
    if rng.random() < 0.5:
        euler = mirror_euler(euler)
    return pose_from_euler(name, perturb(euler, rng, noise_deg))


def walk_cycle(phase: float, style: np.ndarray | None = None) -> np.ndarray:
    """(72,) axis-angle of the walk at ``phase`` in [0, 1): heel strike left (0), passing (0.25), heel
    strike right (0.5), passing (0.75), per joint slerped; ``style`` (24, 3) Euler degrees offsets the
    keyframes (clipped to the limits) to give each walker its own gait."""
    walk, passing = KEYFRAMES["walking"], KEYFRAMES["walking_passing"]
    return _cycle([walk, passing, mirror_euler(walk), mirror_euler(passing)], phase, style)


def run_cycle(phase: float, style: np.ndarray | None = None) -> np.ndarray:
    """(72,) axis-angle of the run at ``phase``: the running keyframe and its mirror, slerped."""
    return _cycle([KEYFRAMES["running"], mirror_euler(KEYFRAMES["running"])], phase, style)


def _cycle(keys: list[np.ndarray], phase: float, style: np.ndarray | None) -> np.ndarray:
    if style is not None:
        keys = [np.clip(k + style, LIMITS[..., 0], LIMITS[..., 1]) for k in keys]
    t = (phase % 1.0) * len(keys)
    k = int(t)
    a = Rotation.from_rotvec(euler_to_axis_angle(keys[k]).reshape(-1, 3))
    b = Rotation.from_rotvec(euler_to_axis_angle(keys[(k + 1) % len(keys)]).reshape(-1, 3))
    return (a * Rotation.from_rotvec((t - k) * (a.inv() * b).as_rotvec())).as_rotvec().reshape(-1)


def motion_pose(motions: tuple[np.ndarray, ...], rng: np.random.Generator) -> PoseChoice:
    """A random frame of a random user motion ((T, >= 66) axis-angle, AMASS order): its body joints
    1-21 (hands zero); the motion's root orientation is replaced by the scene's placement."""
    k = int(rng.integers(len(motions)))
    clip = motions[k]
    frame = clip[int(rng.integers(len(clip)))]
    return PoseChoice(f"motion:{k}", np.eye(3), motion_body(frame))


def motion_body(frame: np.ndarray) -> np.ndarray:
    """(>= 66,) AMASS-style axis-angle -> (69,) SMPL body pose: joints 1-21, hand joints 22-23 zero."""
    body = np.zeros(69)
    body[:63] = np.asarray(frame, dtype=np.float64)[3:66]
    return body
