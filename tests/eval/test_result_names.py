"""Evaluators that match results to benchmark images by name refuse two sources with the same name."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval.cmu_panoptic import load_predictions as cmu_predictions
from eval.common import EvalError
from eval.pw3d import read_predictions as pw3d_predictions
from eval.relative_human import load_meshfleet_results as rh_predictions
from pipelines.schema import array_column, results_schema


def _results(root, sources):
    schema = results_schema(10)
    n = len(sources)
    columns = {"source": pa.array(sources), "frame": pa.array(np.zeros(n, np.int64)),
               "person": pa.array(np.zeros(n, np.int32))}
    for name in ("joints", "pj2d_org", "cam_trans", "smpl_thetas", "smpl_betas"):
        dtype = schema.field(name).type
        columns[name] = array_column(np.ones((n, *_shape(dtype)), np.float32), dtype)
    root.mkdir()
    pq.write_table(pa.table(columns), root / "part-0.parquet")
    return str(root)


def _shape(dtype):
    sizes = []
    while pa.types.is_fixed_size_list(dtype):
        sizes.append(dtype.list_size)
        dtype = dtype.value_type
    return sizes


@pytest.mark.parametrize("reader, sources", [
    (rh_predictions, ["/data/rh/a/img_001.jpg", "/data/rh/b/img_001.jpg"]),
    (cmu_predictions, ["/x/160422_haggling1-00_16_00000001.jpg", "/y/160422_haggling1-00_16_00000001.jpg"]),
    (pw3d_predictions, ["/a/imageFiles/downtown_walking_00/image_00001.jpg",
                        "/b/imageFiles/downtown_walking_00/image_00001.jpg"]),
])
def test_ambiguous_names_are_refused_naming_both(tmp_path, reader, sources):
    with pytest.raises(EvalError, match="source") as raised:
        reader(_results(tmp_path / "res", sources))
    assert sources[0] in str(raised.value) and sources[1] in str(raised.value)
