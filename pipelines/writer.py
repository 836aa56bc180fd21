"""Writes the Parquet results dataset: part files that appear atomically, never half-written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.schema import read_metadata

PART_GLOB = "part-*.parquet"


class OutputExistsError(RuntimeError):
    """The output already holds results and the job was not asked to overwrite them."""


class ResultsWriter:
    """Writes ``part-NNNNN.parquet`` files of one schema under a local output directory.

    Each part goes to a hidden temporary name first and is renamed into place, so a reader
    listing the dataset never sees a partial file.
    """

    def __init__(self, output: str | Path, schema: pa.Schema, overwrite: bool = False):
        self.root = Path(output).expanduser()
        self.schema = schema
        existing = sorted(self.root.glob(PART_GLOB)) if self.root.is_dir() else []
        if existing and not overwrite:
            found = read_metadata(pq.read_schema(existing[0]))
            raise OutputExistsError(
                f"{self.root}: already holds {len(existing)} result files "
                f"(model {found.get('model', '?')}); pass --overwrite to replace them"
            )
        for path in existing:
            path.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        self.parts: list[Path] = []

    def write(self, table: pa.Table) -> Path | None:
        """Write ``table`` as the next part; empty tables write nothing."""
        if table.num_rows == 0:
            return None
        final = self.root / f"part-{len(self.parts):05d}.parquet"
        tmp = self.root / f".{final.name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table.cast(self.schema), tmp, compression="zstd")
        os.replace(tmp, final)
        self.parts.append(final)
        return final
