"""Loading benchmark pickles (AGORA, CMU Panoptic, 3DPW) without running their code.

Each format declares the classes its files hold; numpy arrays, dtypes and scalars and inert
builtins are always admitted (see :class:`core.smpl_pickle.AllowListUnpickler`). Anything else is
refused with an error naming the file and the class.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

from core.smpl_pickle import AllowListUnpickler, UnsafePickleError
from eval.common import EvalError
from pipelines.storage import read_bytes


class DataUnpickler(AllowListUnpickler):
    what = "benchmark file"

    def __init__(self, file: Any, source: str, allowed: frozenset[tuple[str, str]]):
        super().__init__(file, source)
        self.allowed = allowed

    def allow(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            return None
        target: Any = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        return target


def load_pickle(uri: str, allowed: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """Unpickle ``uri`` admitting only numpy, inert builtins and ``allowed`` (module, name) pairs.

    Raises :class:`EvalError` for unreadable files and :class:`UnsafePickleError` (naming the file
    and the class) for anything outside the allow-list.
    """
    try:
        data = read_bytes(uri)
    except OSError as err:
        raise EvalError(f"{uri}: cannot read ({err})") from err
    return loads_pickle(data, uri, allowed)


def loads_pickle(data: bytes, source: str, allowed: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """:func:`load_pickle` for bytes already read (a zip member, say); ``source`` names them in errors."""
    try:
        return DataUnpickler(io.BytesIO(data), source, allowed).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise EvalError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from err
