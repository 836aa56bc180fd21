"""AGORA on-disk formats: ground-truth dataframes, prediction pickles, and writing predictions.

Ground truth (``--data DIR``, as AGORA distributes it):

* ``gt_dataframe_smpl/*_withjv.pkl``: pandas DataFrames pickled by pandas (1.x when AGORA made
  them), one row per image. Per row: ``imgPath`` (4K image name), ``camYaw``; per person (lists):
  ``isValid``, ``occlusion`` (%), ``kid``, ``Yaw`` (or ``YawLocal``), ``gt_joints_2d`` (45, 2) px at
  3840x2160, ``gt_joints_3d`` (45, 3) m and ``gt_verts`` (6890, 3) m in camera coordinates.
* ``utils/body_verts_smpl.npy``: indices of the SMPL body vertices used for MVE.

Predictions: a folder with one pickle per predicted person, ``<image stem>_personId_<k>.pkl``, each
a dict with ``joints`` (24, 2) px at 3840x2160 and either ``params`` {``global_orient`` (1, 1, 3),
``body_pose`` (1, 23, 3), ``betas`` (1, B), ``transl`` (1, 3)} or ``allSmplJoints3d`` + ``verts``
(m); optional ``pose2rot``, ``kid_flag``, ``age``, ``gender``, ``num_betas``.

Every pickle goes through :mod:`eval.safe_pickle`; the dataframes need the pandas classes listed
in :data:`FRAME_CLASSES` and nothing else.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
import posixpath
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.smpl_pickle import UnsafePickleError
from eval.common import EvalError
from eval.safe_pickle import DataUnpickler, load_pickle
from pipelines.storage import join, list_files, read_bytes, url_to_fs, write_bytes_atomic

log = logging.getLogger(__name__)

IMG_WIDTH, IMG_HEIGHT = 3840, 2160  # the resolution every AGORA 2D quantity is expressed in
NUM_BODY_JOINTS = 24
NUM_VERTS = 6890
LOW_RES_SUFFIX = "_1280x720"  # AGORA's 1280x720 images are named <4K stem>_1280x720.png
PERSON_FILE = re.compile(r"^(?P<stem>.+)_personId_(?P<k>\d+)\.pkl$")

# (module, name) pairs referenced by DataFrame pickles: pandas 1.0-1.2 (NEWOBJ BlockManager with
# '0.14.1' state, Int64Index), 1.3-2.x (BlockManager reduced over _unpickle_block / new_block),
# and pandas 3 (public module paths; strings as Arrow- or Python-backed StringArray).
FRAME_CLASSES = frozenset({
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.blocks", "new_block"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.indexes.numeric", "Int64Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"),
    ("pandas.core.indexes.numeric", "Float64Index"),
    ("pandas", "DataFrame"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas", "StringDtype"),
    ("pandas.arrays", "ArrowStringArray"),
    ("pandas.arrays", "StringArray"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
    ("pyarrow.lib", "_restore_array"),
    ("pyarrow.lib", "py_buffer"),
    ("pyarrow.lib", "type_for_alias"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
})
# Names that moved or disappeared since pandas 1.x, resolved as pandas' own pickle_compat does.
LEGACY_NAMES = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("__builtin__", "bytearray"): ("builtins", "bytearray"),
}
GT_COLUMNS = ("imgPath", "isValid", "occlusion", "kid", "gt_joints_2d", "gt_joints_3d", "gt_verts")


class _BlockManagerCompat:
    """Stands in for ``BlockManager`` while unpickling. pandas <= 1.2 pickled it as NEWOBJ without
    arguments (its state follows in BUILD), which today's class cannot construct; later pandas
    pickle ``BlockManager(blocks, axes)`` as a plain call."""

    def __new__(cls, *args: Any) -> Any:
        from pandas.core.internals import BlockManager

        if not args:
            return BlockManager.__new__(BlockManager, (), [], False)  # type: ignore[call-arg]
        return BlockManager(*args)


class FrameUnpickler(DataUnpickler):
    """:class:`DataUnpickler` for DataFrame pickles: :data:`FRAME_CLASSES` only, names that moved
    since pandas 1.x resolved to today's classes."""

    def allow(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            return None
        if (module, name) == ("pandas.core.internals.managers", "BlockManager"):
            return _BlockManagerCompat
        module, name = LEGACY_NAMES.get((module, name), (module, name))
        return getattr(importlib.import_module(module), name)


def load_dataframe(uri: str) -> pd.DataFrame:
    """Unpickle an AGORA ground-truth DataFrame admitting only :data:`FRAME_CLASSES`."""
    try:
        data = read_bytes(uri)
    except OSError as err:
        raise EvalError(f"{uri}: cannot read ({err})") from err
    try:
        frame = FrameUnpickler(io.BytesIO(data), uri, FRAME_CLASSES).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # pandas' __setstate__ code can fail in many ways on a malformed file
        raise EvalError(f"{uri}: not a readable DataFrame pickle ({type(err).__name__}: {err})") from err
    if not isinstance(frame, pd.DataFrame):
        raise EvalError(f"{uri}: expected a pandas DataFrame, got {type(frame).__name__}")
    _validate_arrow(frame, uri)
    return frame


def _validate_arrow(frame: pd.DataFrame, uri: str) -> None:
    """Arrow arrays rebuilt from pickled buffers are not checked when built; check them fully
    before anything reads them (offsets out of range would read outside the buffers)."""
    arrays = [frame.columns.array, frame.index.array, *(frame.iloc[:, i].array for i in range(frame.shape[1]))]
    for array in arrays:
        pa_array = getattr(array, "_pa_array", None)
        if pa_array is None:
            continue
        try:
            pa_array.validate(full=True)
        except Exception as err:  # pyarrow.lib.ArrowInvalid
            raise EvalError(f"{uri}: invalid Arrow string data in the DataFrame ({err})") from err


# -- ground truth ----------------------------------------------------------------------------------

@dataclass
class GtImage:
    """One row of a ground-truth dataframe: P people.

    is_valid / kid (P,) bool; occlusion (P,) %; orientation (P,) degrees (NaN if the dataframe has
    no Yaw); joints2d: P arrays (45, 2) px at 3840x2160; joints3d: P arrays (>=24, 3) m;
    verts: P arrays (6890, 3) m. Arrays keep the dtype they were stored with.
    """

    frame_file: str
    img_path: str
    is_valid: np.ndarray
    occlusion: np.ndarray
    kid: np.ndarray
    orientation: np.ndarray
    joints2d: list[np.ndarray]
    joints3d: list[np.ndarray]
    verts: list[np.ndarray]

    @property
    def valid(self) -> np.ndarray:
        """(P,) bool: what the official matcher treats as valid, 0 <= occlusion <= 90 and isValid."""
        return (self.occlusion <= 90) & (self.occlusion >= 0) & self.is_valid


def frame_files(data: str) -> list[str]:
    """The ground-truth dataframes ``<data>/gt_dataframe_smpl/*_withjv.pkl``, sorted."""
    folder = join(data, "gt_dataframe_smpl")
    files = direct_children(list_files(folder, "_withjv.pkl"), folder)
    if not files:
        raise EvalError(f"{folder}: no ground-truth dataframes (*_withjv.pkl)")
    return files


def direct_children(files: list[str], folder: str) -> list[str]:
    """The files that lie directly in ``folder`` (``list_files`` also descends into sub-folders)."""
    parent = url_to_fs(folder)[1].rstrip("/")
    return [f for f in files if posixpath.dirname(url_to_fs(f)[1]) == parent]


def load_body_vertex_ids(data: str) -> np.ndarray:
    """``<data>/utils/body_verts_smpl.npy``: (K,) int64 indices into the 6890 SMPL vertices."""
    uri = join(join(data, "utils"), "body_verts_smpl.npy")
    try:
        ids = np.load(io.BytesIO(read_bytes(uri)), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise EvalError(f"{uri}: cannot read the SMPL body-vertex indices ({err})") from err
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= NUM_VERTS:
        raise EvalError(f"{uri}: expected integer vertex indices in [0, {NUM_VERTS}), got {ids.dtype} {ids.shape}")
    return ids.astype(np.int64)


def load_gt_images(uri: str) -> list[GtImage]:
    """All rows of one ground-truth dataframe, validated (errors name the file, image and field)."""
    frame = load_dataframe(uri)
    missing = [c for c in GT_COLUMNS if c not in frame.columns]
    if missing:
        raise EvalError(f"{uri}: ground-truth dataframe lacks the field(s) {missing}")
    return [_gt_image(uri, row) for _, row in frame.iterrows()]


def _gt_image(uri: str, row: pd.Series) -> GtImage:
    img = str(row["imgPath"])
    where = f"{uri} (imgPath {img})"
    people = _person_list(row["isValid"], where, "isValid")
    n = len(people)
    fields = {name: _person_list(row[name], where, name) for name in GT_COLUMNS[2:]}
    for name, values in fields.items():
        if len(values) != n:
            raise EvalError(f"{where}: field {name!r} has {len(values)} entries for {n} people (isValid)")
    return GtImage(
        frame_file=uri, img_path=img,
        is_valid=np.array([bool(v) for v in people], dtype=bool),
        occlusion=_floats(fields["occlusion"], where, "occlusion"),
        kid=np.array([bool(v) for v in fields["kid"]], dtype=bool),
        orientation=_orientation(row, n),
        joints2d=[_points(a, where, "gt_joints_2d", 2, NUM_BODY_JOINTS) for a in fields["gt_joints_2d"]],
        joints3d=[_points(a, where, "gt_joints_3d", 3, NUM_BODY_JOINTS) for a in fields["gt_joints_3d"]],
        verts=[_points(a, where, "gt_verts", 3, NUM_VERTS) for a in fields["gt_verts"]],
    )


def _person_list(value: Any, where: str, field: str) -> list:
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return list(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    raise EvalError(f"{where}: field {field!r} must be a per-person list, got {type(value).__name__}")


def _floats(values: list, where: str, field: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EvalError(f"{where}: field {field!r} must hold numbers ({err})") from err


def _points(value: Any, where: str, field: str, dims: int, min_rows: int) -> np.ndarray:
    """An (R, dims) float array with R >= min_rows, dtype kept (3-D fields are reshaped to (-1, 3))."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise EvalError(f"{where}: field {field!r} must be a numeric array, got {array.dtype}")
    if dims == 3 and array.size % 3 == 0:
        array = array.reshape(-1, 3)
    if array.ndim != 2 or array.shape[1] < dims or array.shape[0] < min_rows:
        raise EvalError(f"{where}: field {field!r} has shape {array.shape}, expected ({min_rows}+, {dims})")
    return array


def _orientation(row: pd.Series, n: int) -> np.ndarray:
    """Body yaw relative to the camera, degrees in [0, 360): (Yaw - 90 + 22.5 - camYaw) mod 360,
    from YawLocal where present and not NaN, as the official analysis plots compute it."""
    out = np.full(n, np.nan)
    cam_yaw = row.get("camYaw")
    if cam_yaw is None:
        return out
    for j in range(n):
        for name in ("YawLocal", "Yaw"):
            values = row.get(name)
            try:
                yaw = float(values[j])  # type: ignore[index]
            except (TypeError, IndexError, ValueError, KeyError):
                continue
            if not np.isnan(yaw):
                out[j] = (yaw - 90 + 22.5 - float(cam_yaw)) % 360
                break
    return out


# -- predictions -----------------------------------------------------------------------------------

@dataclass
class PredictedPerson:
    """One predicted person in the official layout (arrays keep their stored dtype).

    joints2d (J >= 24, C >= 2) px at 3840x2160; params: global_orient, body_pose, betas (1, B),
    transl (1, 3) (axis-angle if pose2rot, else rotation matrices); or joints3d (J >= 24, 3) and
    verts (6890, 3) m given directly.
    """

    source: str
    joints2d: np.ndarray
    params: dict[str, np.ndarray] | None
    joints3d: np.ndarray | None
    verts: np.ndarray | None
    kid_flag: bool
    age: str
    pose2rot: bool


PARAM_ALIASES = {"root_pose": "global_orient", "translation": "transl"}  # SMPL-X->SMPL tool names
PARAM_KEYS = ("global_orient", "body_pose", "betas", "transl")


def parse_prediction(obj: Any, where: str) -> PredictedPerson:
    """Validate one prediction dict; errors name ``where`` (the file) and the field."""
    if not isinstance(obj, Mapping):
        raise EvalError(f"{where}: a prediction must be a dict, got {type(obj).__name__}")
    if "joints" not in obj:
        raise EvalError(f"{where}: missing field 'joints' (24 projected joints at 3840x2160)")
    joints2d = np.asarray(obj["joints"]).squeeze()
    if joints2d.ndim != 2 or joints2d.shape[0] < NUM_BODY_JOINTS or joints2d.shape[1] < 2 \
            or not np.issubdtype(joints2d.dtype, np.number):
        raise EvalError(f"{where}: field 'joints' has shape {joints2d.shape}, expected (24, 2)")
    pose2rot = bool(obj.get("pose2rot", True))
    params = _parse_params(obj["params"], where, pose2rot) if "params" in obj else None
    joints3d = verts = None
    if "allSmplJoints3d" in obj:
        joints3d = _points(np.asarray(obj["allSmplJoints3d"]).squeeze(), where, "allSmplJoints3d", 3,
                           NUM_BODY_JOINTS)
    if "verts" in obj:
        verts = _points(np.asarray(obj["verts"]).squeeze(), where, "verts", 3, NUM_VERTS)
    if params is None and joints3d is None:
        raise EvalError(f"{where}: missing field 'params' (or 'allSmplJoints3d' with 'verts')")
    if params is None and verts is None:
        raise EvalError(f"{where}: missing field 'verts' (required with 'allSmplJoints3d')")
    return PredictedPerson(source=where, joints2d=joints2d, params=params, joints3d=joints3d, verts=verts,
                           kid_flag=bool(obj.get("kid_flag", False)), age=str(obj.get("age", "adult")),
                           pose2rot=pose2rot)


def _parse_params(raw: Any, where: str, pose2rot: bool) -> dict[str, np.ndarray]:
    if not isinstance(raw, Mapping):
        raise EvalError(f"{where}: field 'params' must be a dict, got {type(raw).__name__}")
    params = {PARAM_ALIASES.get(k, k): v for k, v in raw.items()}
    sizes = {"global_orient": 3 if pose2rot else 9, "body_pose": 69 if pose2rot else 207, "transl": 3}
    out = {}
    for key in PARAM_KEYS:
        if key not in params:
            raise EvalError(f"{where}: missing field 'params.{key}'")
        value = np.asarray(params[key])
        if not np.issubdtype(value.dtype, np.number):
            raise EvalError(f"{where}: field 'params.{key}' must be numeric, got {value.dtype}")
        if key in sizes and value.size != sizes[key]:
            raise EvalError(f"{where}: field 'params.{key}' has shape {value.shape} "
                            f"({sizes[key]} values expected with pose2rot={pose2rot})")
        if key == "betas" and (value.ndim != 2 or value.shape[0] != 1 or value.shape[1] < 10):
            raise EvalError(f"{where}: field 'params.betas' has shape {value.shape}, expected (1, num_betas >= 10)")
        out[key] = value
    return out


def load_prediction(uri: str) -> PredictedPerson:
    """Read one ``<stem>_personId_<k>.pkl`` (numpy and inert builtins only)."""
    return parse_prediction(load_pickle(uri), uri)


def person_file_key(name: str, protocol: str) -> tuple[str, int] | None:
    """(image name the file belongs to, person index) from a prediction file name.

    official: the image is ``'_'.join(name.split('_')[:-2]) + '.png'`` (evaluate_agora's rule);
    fixed: ``<stem>_personId_<k>.pkl`` with ``_1280x720`` dropped from the stem. None if the
    name is not a person file.
    """
    match = PERSON_FILE.match(name)
    if match is None:
        return None
    if protocol == "official":
        return "_".join(name.split("_")[:-2]) + ".png", int(match["k"])
    return canonical_image(match["stem"]) + ".png", int(match["k"])


def canonical_image(name: str) -> str:
    """Image stem without extension and without the ``_1280x720`` resolution suffix."""
    stem = posixpath.basename(name)
    stem = stem[: stem.rfind(".")] if "." in stem else stem
    return stem.removesuffix(LOW_RES_SUFFIX)


def order_person_files(names: list[str], protocol: str) -> list[str]:
    """official: string order (``personId_10`` before ``personId_2``), as the official loader
    sorts paths; fixed: by person index."""
    if protocol == "official":
        return sorted(names)
    return sorted(names, key=lambda n: (int(PERSON_FILE.match(n)["k"]), n))  # type: ignore[index]


# -- writing predictions from meshfleet results ----------------------------------------------------

RESULT_COLUMNS = ["source", "frame", "person", "smpl_thetas", "smpl_betas", "cam_trans", "pj2d_org",
                  "image_height", "image_width"]


def results_to_dicts(uri: str, protocol: str = "official") -> dict[str, list[dict]]:
    """Official prediction dicts for every person of a meshfleet results dataset, per image stem
    (``canonical_image`` of the source), in person order. See :func:`prediction_dict`."""
    from eval.common import read_results
    from pipelines.schema import column_array

    table, _ = read_results(uri, RESULT_COLUMNS)
    frames = table.column("frame").to_pylist()
    if any(f not in (0, None) for f in frames):
        raise EvalError(f"{uri}: field 'frame': AGORA predictions must come from images, found video frames")
    sources = table.column("source").to_pylist()
    persons = table.column("person").to_pylist()
    arrays = {name: column_array(table, name) for name in ("smpl_thetas", "smpl_betas", "cam_trans", "pj2d_org")}
    heights, widths = table.column("image_height").to_pylist(), table.column("image_width").to_pylist()
    owner: dict[str, str] = {}
    grouped: dict[str, list[tuple[int, dict]]] = {}
    for i, source in enumerate(sources):
        stem = canonical_image(source)
        if owner.setdefault(stem, source) != source:
            raise EvalError(f"{uri}: field 'source': {source} and {owner[stem]} give the same AGORA image {stem}")
        row = {name: values[i] for name, values in arrays.items()}
        person = persons[i] if persons[i] is not None else len(grouped.get(stem, []))
        grouped.setdefault(stem, []).append((int(person), prediction_dict(row, heights[i], widths[i], protocol)))
    return {stem: [d for _, d in sorted(people, key=lambda p: p[0])] for stem, people in grouped.items()}


def prediction_dict(row: Mapping[str, np.ndarray], height: int, width: int, protocol: str) -> dict:
    """One person of a meshfleet result as the official prediction dict, as BEV's AGORA script
    (simple_romp/evaluation/eval_AGORA.py) writes it: axis-angle params, betas (1, B),
    ``transl`` = ``cam_trans``, ``joints`` = the first 24 ``pj2d_org`` scaled to 3840x2160.

    official: ``(pj2d_org + 1) * 3840 / width`` on both axes in float32, as BEV does (its ``+1``);
    fixed: ``pj2d_org * (3840 / width, 2160 / height)``. 11 betas (BEV) mark the person as a kid
    model user (``kid_flag`` True, ``age`` 'kid'); 10 (ROMP) as an adult.
    """
    thetas = np.asarray(row["smpl_thetas"], dtype=np.float32).reshape(72)
    betas = np.asarray(row["smpl_betas"], dtype=np.float32).reshape(-1)
    pj2d = np.asarray(row["pj2d_org"], dtype=np.float32).reshape(-1, 2)[:NUM_BODY_JOINTS]
    if protocol == "official":
        joints = (pj2d + 1) * IMG_WIDTH / float(width)
    else:
        joints = (pj2d * np.array([IMG_WIDTH / width, IMG_HEIGHT / height])).astype(np.float32)
    kid = betas.size == 11
    return {
        "params": {
            "global_orient": thetas[:3].reshape(1, 1, 3),
            "body_pose": thetas[3:72].reshape(1, 23, 3),
            "betas": betas[None],
            "transl": np.asarray(row["cam_trans"], dtype=np.float32).reshape(1, 3),
        },
        "pose2rot": True, "num_betas": int(betas.size), "gender": "neutral",
        "age": "kid" if kid else "adult", "kid_flag": kid, "joints": joints,
    }


def dump_prediction(prediction: dict) -> bytes:
    """Pickle a prediction dict so that the official tools (Python 3.8, numpy 1.x) can read it:
    protocol 2, numpy's pre-2.0 module path."""
    blob = pickle.dumps(prediction, protocol=2)
    return blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_predictions(results_uri: str, out_dir: str, zip_path: str | None = None, *,
                      protocol: str = "official") -> int:
    """Write a meshfleet results dataset in the official AGORA prediction format.

    One ``<image stem>_personId_<k>.pkl`` per person under ``out_dir`` (the stem is the AGORA image
    name: extension and ``_1280x720`` suffix removed); with ``zip_path``, also a zip holding them
    under ``predictions/``, as the AGORA test server and ``check_pred_format`` expect.
    Returns the number of person files written.
    """
    people = results_to_dicts(results_uri, protocol)
    blobs = {f"{stem}_personId_{k}.pkl": dump_prediction(d) for stem, dicts in people.items()
             for k, d in enumerate(dicts)}
    for name, blob in blobs.items():
        write_bytes_atomic(join(out_dir, name), blob)
    if zip_path is not None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, blob in sorted(blobs.items()):
                archive.writestr(f"predictions/{name}", blob)
        write_bytes_atomic(zip_path, buffer.getvalue())
    log.info("wrote %d AGORA prediction files for %d images to %s", len(blobs), len(people), out_dir)
    return len(blobs)
