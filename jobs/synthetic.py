"""Synthetic stand-ins, in the official file formats, for what cannot be downloaded here.

The real SMPL / SMIL files are licensed and the released checkpoints are large downloads; the
demo and the tests generate look-alikes instead:

* ``SMPL_NEUTRAL.pkl`` / ``smil_web.pkl``: Python-2 style pickles (protocol 2 or lower, old
  module paths) whose big arrays are chumpy ``Ch`` objects and whose ``J_regressor`` is a
  ``scipy.sparse.csc_matrix`` -- the layout of the official files -- with a random but
  body-like template (vertices scattered around a T-pose skeleton).
* ``J_regressor_extra.npy``, ``J_regressor_h36m.npy``, ``smpl_kid_template.npy``.
* ``ROMP.pkl`` / ``BEV.pth``: random-initialised state_dicts with the official keys.
* :func:`labelled_stick_figures`: tiny training images with exact labels (posed bodies drawn as
  stick figures) for the training tests and benchmarks.

Results computed with these are not meaningful; they exercise every code path.
"""

from __future__ import annotations

import pickle
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import scipy.sparse
import torch

from core.body_models import NUM_VERTS, BodyModelSet
from core.cameras import CANVAS, FOCAL_512
from core.params import age_class
from core.train.labels import NUM_BETAS, ImageLabels

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
T_POSE = np.array([
    [0.00, 0.00, 0.00], [0.06, -0.09, 0.00], [-0.06, -0.09, 0.00], [0.00, 0.11, -0.02],
    [0.10, -0.47, 0.01], [-0.10, -0.47, 0.01], [0.00, 0.25, 0.00], [0.09, -0.87, -0.03],
    [-0.09, -0.87, -0.03], [0.00, 0.31, 0.02], [0.12, -0.93, 0.10], [-0.12, -0.93, 0.10],
    [0.00, 0.52, -0.01], [0.08, 0.43, -0.01], [-0.08, 0.43, -0.01], [0.01, 0.61, 0.04],
    [0.17, 0.46, -0.02], [-0.17, 0.46, -0.02], [0.43, 0.44, -0.04], [-0.43, 0.44, -0.04],
    [0.68, 0.45, -0.04], [-0.68, 0.45, -0.04], [0.76, 0.44, -0.05], [-0.76, 0.44, -0.05],
]) - np.array([0.0, 0.22, 0.0])
NUM_FACES = 13776


@contextmanager
def _fake_chumpy():
    """Temporarily register a module ``chumpy.ch`` with a class ``Ch`` so pickle can name it."""
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        """Pickles like chumpy's terminal ``Ch``: state is a dict holding the value in 'x'."""

        def __init__(self, x: np.ndarray):
            self.x = x
            self._dirty_vars: set[str] = set()
            self._itr = None

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    package.ch = module
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        yield Ch
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _python2_layout(blob: bytes) -> bytes:
    """Rewrite module paths of a protocol <= 2 pickle to those of the Python-2 era files."""
    for new, old in ((b"numpy._core.multiarray", b"numpy.core.multiarray"),
                     (b"scipy.sparse._csc", b"scipy.sparse.csc")):
        blob = blob.replace(b"c" + new + b"\n", b"c" + old + b"\n")
    return blob


def synthetic_model_dict(rng: np.random.Generator, num_shapes: int = 20, scale: float = 1.0) -> dict:
    """Arrays of a random, body-like SMPL-topology model (float64, as the official files)."""
    joints = T_POSE * scale
    owner = np.arange(NUM_VERTS) % 24
    v_template = joints[owner] + rng.normal(0.0, 0.03 * scale, (NUM_VERTS, 3))
    rows, cols = owner, np.arange(NUM_VERTS)
    counts = np.bincount(owner, minlength=24)
    J_regressor = scipy.sparse.csc_matrix((1.0 / counts[owner], (rows, cols)), shape=(24, NUM_VERTS))
    weights = np.zeros((NUM_VERTS, 24))
    weights[cols, owner] = 0.8
    parents = np.array(SMPL_PARENTS)
    weights[cols, np.where(parents[owner] < 0, owner, parents[owner])] += 0.2
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64) % 2**32, np.arange(24)]).astype(np.uint32)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(0.0, 0.01 * scale, (NUM_VERTS, 3, num_shapes)),
        "posedirs": rng.normal(0.0, 0.002 * scale, (NUM_VERTS, 3, 207)),
        "J_regressor": J_regressor,
        "J_regressor_prior": J_regressor.copy(),
        "weights": weights,
        "weights_prior": weights.copy(),
        "kintree_table": kintree,
        "f": rng.integers(0, NUM_VERTS, (NUM_FACES, 3)).astype(np.uint32),
        "J": joints,
        "vert_sym_idxs": np.arange(NUM_VERTS),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_model_pickle(path: Path, model: dict, protocol: int = 2,
                       chumpy_keys: tuple[str, ...] = ("v_template", "shapedirs", "posedirs", "J", "weights")) -> None:
    """Write ``model`` as the official files are: chumpy ``Ch`` for ``chumpy_keys``, py2 paths."""
    with _fake_chumpy() as Ch:
        payload = {k: Ch(v) if k in chumpy_keys else v for k, v in model.items()}
        blob = pickle.dumps(payload, protocol=protocol)
    Path(path).write_bytes(_python2_layout(blob))


def write_synthetic_body_models(directory: str | Path, seed: int = 0, num_shapes: int = 20) -> Path:
    """Create a complete body-model directory (SMPL, regressors, kid template, SMIL)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    smpl = synthetic_model_dict(rng, num_shapes)
    write_model_pickle(root / "SMPL_NEUTRAL.pkl", smpl)
    np.save(root / "J_regressor_extra.npy", _random_regressor(rng, 9))
    np.save(root / "J_regressor_h36m.npy", _random_regressor(rng, 17))
    kid = smpl["v_template"] * 0.55 + rng.normal(0.0, 0.005, (NUM_VERTS, 3)) + np.array([0.3, 0.1, -0.2])
    np.save(root / "smpl_kid_template.npy", kid)
    write_model_pickle(root / "smil_web.pkl", synthetic_model_dict(rng, num_shapes, scale=0.45))
    return root


def _random_regressor(rng: np.random.Generator, rows: int) -> np.ndarray:
    """(rows, 6890) non-negative, sparse-ish, rows summing to 1 (like the SPIN regressors)."""
    reg = np.zeros((rows, NUM_VERTS))
    for r in range(rows):
        picks = rng.choice(NUM_VERTS, size=12, replace=False)
        reg[r, picks] = rng.dirichlet(np.ones(12))
    return reg


def write_random_checkpoint(kind: str, path: str | Path, seed: int = 0) -> Path:
    """A random-initialised ROMP or BEV state_dict with the official keys, via ``torch.save``.

    Output layers are biased so that the result is shaped like a real model's: some centers
    pass the default thresholds, bodies are near an upright rest pose with small shape
    coefficients (so that ROMP's PnP is well conditioned), people stand a few metres away.
    The weights carry no learned knowledge.
    """
    from core.models import build_network

    torch.manual_seed(seed)
    net = build_network(kind)
    params = dict(net.named_parameters())
    upright = torch.tensor([1.0, 0.0, 0.0, -1.0, 0.0, 0.0])  # 6D of diag(1, -1, -1): camera y points down
    rest = torch.cat([upright, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(21)])
    with torch.no_grad():
        if kind == "romp":
            params["final_layers.2.2.weight"].mul_(0.5)
            _bias_output(params["final_layers.1.2.weight"], params["final_layers.1.2.bias"], rest, 10)
            params["final_layers.3.2.weight"].mul_(0.02)
            params["final_layers.3.2.bias"].copy_(torch.tensor([-7.0, 0.0, 0.0]))  # s = 1.1 ** -7 ~ 0.5
        else:
            params["det_head.1.weight"][0].mul_(0.5)
            params["bv_out_layers.2.bn2.bias"][:64].fill_(1.0)
            _bias_output(params["transformer.6.weight"], params["transformer.6.bias"], rest, 11)
        _calibrate_centers(net, kind, people=DETECTIONS_PER_IMAGE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


DETECTIONS_PER_IMAGE = 6


def _calibrate_centers(net: torch.nn.Module, kind: str, people: int) -> None:
    """Shift the center head's bias so that about ``people`` peaks of a drawn scene pass the
    official default threshold (ROMP 0.25, BEV 0.1). ROMP's map is linear in the bias (one
    round is exact); BEV's goes through the bird's-eye product and the 3D refiner."""
    from core.centers import keep_local_maxima
    from core.preprocess import prepare_input

    image = torch.from_numpy(prepare_input(draw_scene(480, 640, 4, seed=7))[0][None]).float()
    threshold = 0.25 if kind == "romp" else 0.1
    bias = dict(net.named_parameters())["final_layers.2.2.bias" if kind == "romp" else "det_head.1.bias"]
    net.eval()
    for _ in range(1 if kind == "romp" else 3):
        maps = net(image)[0] if kind == "romp" else net.forward_maps(image).center_3d  # type: ignore[operator]
        peaks = keep_local_maxima(maps).flatten().sort(descending=True).values
        bias[0] += threshold - float(peaks[people - 1] + peaks[people]) / 2


def _bias_output(weight: torch.Tensor, bias: torch.Tensor, rest: torch.Tensor, num_betas: int) -> None:
    """Shrink a parameter head's weights and centre its output on ``rest`` pose, zero betas."""
    weight.mul_(0.02)
    bias.copy_(torch.cat([rest, torch.zeros(num_betas)]))


def draw_scene(height: int, width: int, people: int, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with ``people`` coloured stick figures on a textured background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    for _ in range(people):
        x = int(rng.integers(width // 8, width - width // 8))
        size = int(rng.integers(height // 4, height // 2))
        y = int(rng.integers(size // 2, max(size // 2 + 1, height - size // 2)))
        color = tuple(int(c) for c in rng.integers(120, 255, 3))
        thick = max(2, size // 20)
        cv2.circle(image, (x, y - size // 2 + size // 10), size // 10, color, -1)
        cv2.line(image, (x, y - size // 3), (x, y + size // 8), color, thick)
        for dx in (-1, 1):
            cv2.line(image, (x, y - size // 4), (x + dx * size // 4, y), color, thick)
            cv2.line(image, (x, y + size // 8), (x + dx * size // 6, y + size // 2), color, thick)
    return image


# -- labelled training images -----------------------------------------------------------------
# Tiny images with exact labels for the training tests and benchmarks: posed SMPL-format bodies in
# front of the canonical FOV-60 camera of the image, drawn as stick figures of their bones.

UPRIGHT = np.array([np.pi, 0.0, 0.0])  # body y-up -> camera y-down


def canonical_focal(height: int, width: int) -> float:
    """Focal length (px) of the FOV-60 camera over the padded square of an h x w image."""
    return FOCAL_512 / CANVAS * max(height, width)


def random_people(rng: np.random.Generator, count: int, pose_scale: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(count, 72) thetas (upright, small random body pose) and (count, 11) betas (adults: no kid offset)."""
    thetas = np.zeros((count, 72))
    thetas[:, :3] = UPRIGHT + rng.normal(0.0, 0.1, (count, 3))
    thetas[:, 3:66] = rng.normal(0.0, pose_scale, (count, 63))
    betas = np.zeros((count, NUM_BETAS))
    betas[:, :10] = rng.normal(0.0, 0.5, (count, 10))
    return thetas, betas


def labelled_stick_figures(body_models: BodyModelSet, rng: np.random.Generator, height: int, width: int,
                           count: int, depth: tuple[float, float] = (4.0, 7.0)) -> tuple[np.ndarray, ImageLabels]:
    """A BGR image of ``count`` posed SMPL-format bodies as stick figures (farther first, side by
    side at ``depth`` metres), and their exact labels in the canonical camera of the image."""
    thetas, betas = random_people(rng, count)
    body = body_models.smpl(torch.from_numpy(betas[:, :10]).float(), torch.from_numpy(thetas).float())
    joints_body = body.joints.numpy().astype(np.float64)
    focal = canonical_focal(height, width)
    centre = np.array([width / 2.0, height / 2.0])
    trans = np.zeros((count, 3))
    trans[:, 2] = np.sort(rng.uniform(*depth, count))[::-1]
    trans[:, 0] = (np.linspace(-0.6, 0.6, count) if count > 1 else 0.0) * trans[:, 2] * width / (2 * focal)
    trans[:, 1] = rng.uniform(-0.1, 0.1, count)
    joints = joints_body + trans[:, None]
    joints2d = joints[..., :2] / joints[..., 2:] * focal + centre
    inside = (joints2d >= 0).all(-1) & (joints2d[..., 0] < width) & (joints2d[..., 1] < height)
    image = np.full((height, width, 3), 40, np.uint8)
    for k in range(count):  # far to near, so nearer people are drawn on top
        colour = tuple(int(c) for c in rng.integers(80, 256, 3))
        for child, parent in enumerate(SMPL_PARENTS):
            if parent >= 0:
                a, b = joints2d[k, child], joints2d[k, parent]
                cv2.line(image, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, 2)
    lo, hi = joints2d.min(1), joints2d.max(1)
    bbox = np.concatenate([np.clip(lo, 0, (width, height)), np.clip(hi, 0, (width, height))], 1)
    flags = np.ones(count, bool)
    labels = ImageLabels(
        joints2d=joints2d.astype(np.float32), joints2d_visible=inside, joints3d=joints.astype(np.float32),
        smpl_thetas=thetas.astype(np.float32), smpl_betas=betas.astype(np.float32),
        cam_trans=trans.astype(np.float32), bbox=bbox.astype(np.float32),
        depth_layer=np.argsort(np.argsort(trans[:, 2])).astype(np.int64),
        age_class=age_class(torch.from_numpy(betas[:, 10])).numpy().astype(np.int64),
        has_joints2d=flags, has_joints3d=flags.copy(),
        has_smpl=flags.copy(), has_depth_layer=flags.copy(), has_age=flags.copy(),
        weight=np.ones(count, np.float32), focal_px=focal, principal_point=centre.astype(np.float32),
    )
    return image, labels


def write_video(path: str | Path, frames: list[np.ndarray], fps: float = 24.0) -> Path:
    """Write BGR frames with OpenCV (mp4v for .mp4/.mov, MJPG for .avi/.mkv)."""
    path = Path(path)
    fourcc = "MJPG" if path.suffix.lower() in (".avi", ".mkv") else "mp4v"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write {fourcc} video here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
