"""The one reader of results datasets: every command that reads results (track, export mot, eval,
the demo) reads them through here, whoever wrote them.

The contract (README, "Reading results"):

* **Files.** With a ``_meshfleet_job.json``, the unit files its ledger lists (anything else in the
  folder is not part of the dataset); without one, every ``*.parquet`` under the URI (names starting
  with ``.`` or ``_`` skipped), sorted.
* **Types.** Columns come back with the documented types whatever the writer used: arrays as nested
  fixed-size lists of float32 (flat lists of the right length and float64 values are accepted),
  integers and floats at their documented width. Other columns pass through untouched.
* **Optional columns** (``error``, ``timestamp``, ``track_id``, ``verts``, ``age_class``, the
  ``*_smoothed`` columns) may be absent: they come back as nulls. A **required** column that is
  absent is a :class:`ResultsSchemaError` naming the file and the column, in one line.
* ``pandas=True`` gives a DataFrame with nullable integers (``track_id`` Int64, ``person`` Int32
  even when error rows are present) and array cells as numpy arrays of their documented shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.jobstate import read_ledger
from pipelines.schema import SMOOTHED, read_metadata, results_schema
from pipelines.storage import join, list_files, read_parquet, read_parquet_schema

if TYPE_CHECKING:
    import pandas as pd

_DOCUMENTED = results_schema(11, with_verts=True, with_age=True, with_tracking=True)
OPTIONAL = frozenset({"error", "timestamp", "track_id", "verts", "age_class", *(f"{n}_smoothed" for n in SMOOTHED)})
BETAS = ("smpl_betas", "smpl_betas_smoothed")  # 10 (ROMP) or 11 (BEV) values
BETA_SIZES = (10, 11)


class ResultsSchemaError(ValueError):
    """A results file lacks a required column or holds one of the wrong shape; names file and column."""


def results_files(uri: str) -> list[str]:
    """The files of the results dataset at ``uri`` (see the module docstring)."""
    ledger = read_ledger(uri)
    if ledger is None:
        return list_files(uri, ".parquet")
    return sorted(join(uri, name) for name in ledger.committed() if name.endswith(".parquet"))


def results_metadata(uri: str) -> dict:
    """The meshfleet metadata of the dataset (that of its first file; {} if none)."""
    files = results_files(uri)
    return read_metadata(read_parquet_schema(files[0])) if files else {}


def documented_type(name: str) -> pa.DataType | None:
    return _DOCUMENTED.field(name).type if name in _DOCUMENTED.names else None


def _shape(dtype: pa.DataType) -> tuple[int, ...]:
    sizes = []
    while pa.types.is_fixed_size_list(dtype):
        sizes.append(dtype.list_size)
        dtype = dtype.value_type
    return tuple(sizes)


def _fixed_type(shape: Sequence[int]) -> pa.DataType:
    dtype: pa.DataType = pa.float32()
    for size in reversed(shape):
        dtype = pa.list_(dtype, size)
    return dtype


def _is_list(dtype: pa.DataType) -> bool:
    return pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype)


def _row_lengths(array: pa.Array) -> np.ndarray:
    """Element counts of the non-null rows of a list array."""
    return pc.list_value_length(array).drop_null().to_numpy(zero_copy_only=False)


def _array_column(array: pa.Array, name: str, where: str) -> pa.Array:
    """An array column in the documented nested fixed-size float32 type (flat lists accepted)."""
    target = documented_type(name)
    assert target is not None
    shape = _shape(target)
    if name in BETAS and _is_list(array.type):
        lengths = np.unique(_row_lengths(array)) if not pa.types.is_fixed_size_list(array.type) else \
            np.array([array.type.list_size])
        if len(lengths) == 1 and int(lengths[0]) in BETA_SIZES:
            shape = (int(lengths[0]),)
    if _shape(array.type) == shape:
        return array.cast(_fixed_type(shape))
    if not _is_list(array.type):
        raise ResultsSchemaError(f"{where}: column {name!r} should hold lists of {prod(shape)} numbers, "
                                 f"not {array.type}")
    # Flat lists of prod(shape) values, or nested lists whose levels match the shape.
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    level, ok = array, True
    outer = _row_lengths(level)
    if len(shape) > 1 and outer.size and (outer == shape[0]).all():
        level = level.flatten()
        ok = _is_list(level.type) and bool((_row_lengths(level) == shape[1]).all())
    else:
        ok = bool((outer == prod(shape)).all())
    if not ok:
        raise ResultsSchemaError(f"{where}: column {name!r} should hold {' x '.join(map(str, shape))} numbers "
                                 "per row (nested or flat lists)")
    values = level.flatten() if _is_list(level.type) else level
    full = np.full((len(array), prod(shape)), np.nan, np.float32)
    full[valid] = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, prod(shape))
    column: pa.Array = pa.array(full.reshape(-1), pa.float32())
    for size in reversed(shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return pa.FixedSizeListArray.from_arrays(column, shape[0], mask=pa.array(~valid))


def normalise_table(table: pa.Table, columns: Sequence[str] | None, where: str) -> pa.Table:
    """``table`` with the documented types; ``columns`` (None: all present) in that order, optional
    ones added as nulls when absent, required ones missing -> :class:`ResultsSchemaError`."""
    names = list(columns) if columns is not None else list(table.column_names)
    if columns is None:  # every reader may rely on the optional bookkeeping columns being there
        names += [n for n in ("timestamp", "track_id", "error") if n not in names]
    out: dict[str, pa.Array] = {}
    for name in names:
        target = documented_type(name)
        if name not in table.column_names:
            if name not in OPTIONAL:
                raise ResultsSchemaError(f"{where}: missing required column {name!r}")
            assert target is not None
            out[name] = pa.nulls(table.num_rows, target)
            continue
        array = table.column(name).combine_chunks()
        if target is None:
            out[name] = array
        elif pa.types.is_fixed_size_list(target):
            out[name] = _array_column(array, name, where)
        elif array.type != target:
            try:
                out[name] = array.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise ResultsSchemaError(f"{where}: column {name!r} is {array.type}, expected {target}") from err
        else:
            out[name] = array
    return pa.table(out).replace_schema_metadata(table.schema.metadata)


def require(table: pa.Table, columns: Sequence[str], where: str) -> None:
    """Raise :class:`ResultsSchemaError` naming the first required column of ``columns`` absent from ``table``."""
    for name in columns:
        if name not in table.column_names and name not in OPTIONAL:
            raise ResultsSchemaError(f"{where}: missing required column {name!r}")


def check_columns(files: Sequence[str], columns: Sequence[str]) -> None:
    """Fail early (from the files' schemas alone) if a file lacks a required column of ``columns``."""
    for path in files:
        names = read_parquet_schema(path).names
        missing = [c for c in columns if c not in names and c not in OPTIONAL]
        if missing:
            raise ResultsSchemaError(f"{path}: missing required column {missing[0]!r}")


def read_results_file(path: str, columns: Sequence[str] | None = None, source: str | None = None) -> pa.Table:
    """One results file, normalised (see :func:`normalise_table`); only the rows of ``source`` if given."""
    present = read_parquet_schema(path).names
    wanted = None if columns is None else [c for c in dict.fromkeys([*columns, *(["source"] if source else [])])
                                           if c in present]
    table = read_parquet(path, wanted)
    if source is not None:
        if "source" not in table.column_names:
            raise ResultsSchemaError(f"{path}: missing required column 'source'")
        table = table.filter(pc.equal(table.column("source"), source))
    return normalise_table(table, columns, path)


def read_results(uri: str, columns: Sequence[str] | None = None, *, good_only: bool = False,
                 pandas: bool = False) -> Any:
    """Rows of the results dataset at ``uri`` as one Arrow table (or, with ``pandas``, a DataFrame).

    ``columns``: the columns wanted (None: all, plus the optional bookkeeping columns); ``good_only``:
    drop error rows. Raises ``FileNotFoundError`` when ``uri`` holds no results files.
    """
    files = results_files(uri)
    if not files:
        raise FileNotFoundError(f"{uri}: no results files (meshfleet *.parquet)")
    wanted = None if columns is None else list(dict.fromkeys([*columns, *(["error"] if good_only else [])]))
    tables = [read_results_file(f, wanted) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    if good_only:
        table = table.filter(table.column("error").is_null())
        if columns is not None and "error" not in columns:
            table = table.drop_columns(["error"])
    return to_pandas(table) if pandas else table


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A results table as a DataFrame: nullable integer columns, array cells shaped as documented."""
    import pandas as pd

    nullable = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype(),
                pa.int8(): pd.Int8Dtype()}
    arrays = [n for n in table.column_names if pa.types.is_fixed_size_list(table.schema.field(n).type)]
    frame = table.drop_columns(arrays).to_pandas(types_mapper=nullable.get)
    for name in arrays:
        column = table.column(name).combine_chunks()
        shape = _shape(column.type)
        flat = column.flatten()  # null rows are skipped
        while pa.types.is_fixed_size_list(flat.type):
            flat = flat.flatten()
        values = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, *shape)
        cells = np.empty(len(column), dtype=object)
        cells[np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))] = list(values)
        frame[name] = cells
    return frame[table.column_names]
