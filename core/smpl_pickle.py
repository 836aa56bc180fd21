"""Read the official SMPL / SMIL ``.pkl`` files without chumpy, and without running their code.

The official files are Python-2 pickles of a dict whose big arrays are chumpy ``Ch`` objects and
whose ``J_regressor`` is a ``scipy.sparse`` matrix. A pickle can name any callable, so loading
one with :mod:`pickle` runs whatever it names. :class:`RestrictedUnpickler` admits only what
such files hold - numpy arrays, dtypes and scalars, scipy sparse matrices, chumpy objects and a
few inert builtins - and refuses anything else with an error naming the file and the class.

Sparse matrices and chumpy objects are not rebuilt by their own code either: they are captured
as inert records of their pickled state, then converted to plain numpy arrays here.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

try:  # numpy >= 2 keeps the pickle helpers in numpy._core; numpy.core is a deprecated alias
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a class or function that a body-model file never holds."""


class BodyModelFileError(ValueError):
    """A body-model file is missing, unreadable or malformed."""


class _PickledState:
    """Inert stand-in for a chumpy object or scipy sparse matrix: it only stores its state."""

    kind = "object"

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyObject(_PickledState):
    kind = "chumpy"


class _SparseMatrix(_PickledState):
    kind = "sparse"
    fmt = "csc"


def _sparse_stub(fmt: str) -> type[_SparseMatrix]:
    return type(f"_Sparse_{fmt}", (_SparseMatrix,), {"fmt": fmt})


NUMPY_CLASSES = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,  # type: ignore[attr-defined]
}

_BUILTINS_ALLOWED = {"object", "set", "frozenset", "slice", "complex", "tuple", "list", "dict"}

_SPARSE_FORMATS = ("csc", "csr", "coo")


class AllowListUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays, dtypes and scalars, a few inert builtins, and whatever
    :meth:`allow` returns for a (module, name); everything else is refused naming the file."""

    what = "data file"

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def allow(self, module: str, name: str) -> Any:
        """Subclasses admit more classes here (return the object, or None to refuse)."""
        return None

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NUMPY_CLASSES:
            return NUMPY_CLASSES[(module, name)]
        if module == "_codecs" and name == "encode":  # bytes in protocol-2 pickles written by Python 3
            return codecs.encode
        if module in ("__builtin__", "builtins") and name in _BUILTINS_ALLOWED:
            return getattr(__import__("builtins"), name)
        allowed = self.allow(module, name)
        if allowed is not None:
            return allowed
        raise UnsafePickleError(
            f"{self.source}: refusing to load {module}.{name}; a {self.what} holds no such object"
        )


class RestrictedUnpickler(AllowListUnpickler):
    """Unpickler for SMPL-family model files: numpy, scipy sparse matrices and chumpy objects."""

    what = "SMPL-family model file"

    def allow(self, module: str, name: str) -> Any:
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyObject
        if module.startswith("scipy.sparse"):
            for fmt in _SPARSE_FORMATS:
                if name == f"{fmt}_matrix" or name == f"{fmt}_array":
                    return _sparse_stub(fmt)
        return None


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Safe ``copyreg._reconstructor``: it only ever builds the inert stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledState)):
        raise UnsafePickleError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


def _state_dict(obj: _PickledState) -> dict:
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
        state = state[1]  # (dict_state, slots_state) form
    return state if isinstance(state, dict) else {}


def _sparse_to_dense(obj: _SparseMatrix, source: str, key: str) -> np.ndarray:
    state = _state_dict(obj)
    shape = state.get("_shape", state.get("shape"))
    try:
        if obj.fmt == "coo":
            row = state.get("row", state.get("coords", (None, None))[0])
            col = state.get("col", state.get("coords", (None, None))[1])
            matrix = scipy.sparse.coo_matrix((state["data"], (row, col)), shape=shape)
        else:
            cls = scipy.sparse.csc_matrix if obj.fmt == "csc" else scipy.sparse.csr_matrix
            matrix = cls((state["data"], state["indices"], state["indptr"]), shape=shape)
    except (KeyError, TypeError, ValueError) as err:
        raise BodyModelFileError(f"{source}: malformed sparse matrix in {key!r}: {err}") from err
    return np.asarray(matrix.todense())


def to_numpy(value: Any, source: str, key: str) -> Any:
    """Turn a loaded entry (array, chumpy stand-in, sparse stand-in) into plain numpy."""
    if isinstance(value, _SparseMatrix):
        return _sparse_to_dense(value, source, key)
    if isinstance(value, _ChumpyObject):
        state = _state_dict(value)
        if "x" not in state:
            raise BodyModelFileError(
                f"{source}: entry {key!r} is a derived chumpy expression without a stored value; "
                "only terminal chumpy arrays (Ch with 'x') are supported"
            )
        return np.asarray(to_numpy(state["x"], source, key))
    if isinstance(value, _PickledState):
        raise BodyModelFileError(f"{source}: entry {key!r} holds an unsupported object")
    return value


def load_model_pickle(path: str | Path) -> dict[str, Any]:
    """Load an official SMPL / SMIL ``.pkl`` as a dict of numpy arrays (and plain values).

    Raises ``BodyModelFileError`` for a missing or malformed file and ``UnsafePickleError`` for
    a pickle that names anything outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise BodyModelFileError(f"{path}: body-model file not found")
    try:
        with path.open("rb") as handle:
            raw = RestrictedUnpickler(handle, str(path)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise BodyModelFileError(f"{path}: not a readable SMPL-family pickle ({err})") from err
    if not isinstance(raw, dict):
        raise BodyModelFileError(f"{path}: expected a dict of model arrays, got {type(raw).__name__}")
    return {str(k): to_numpy(v, str(path), str(k)) for k, v in raw.items()}
