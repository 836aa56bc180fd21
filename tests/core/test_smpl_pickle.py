import os
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse

from core.smpl_pickle import BodyModelFileError, UnsafePickleError, load_model_pickle
from jobs.synthetic import synthetic_model_dict, write_model_pickle


@pytest.fixture(scope="module")
def model():
    return synthetic_model_dict(np.random.default_rng(3), num_shapes=12)


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_chumpy_pickle_loads_without_chumpy(tmp_path, model, protocol):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_model_pickle(path, model, protocol=protocol)
    raw = path.read_bytes()
    assert b"chumpy.ch" in raw and b"scipy.sparse.csc" in raw  # the official layout
    loaded = load_model_pickle(path)
    assert "chumpy" not in sys.modules
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J"):
        assert isinstance(loaded[key], np.ndarray)
        np.testing.assert_array_equal(loaded[key], model[key])
    np.testing.assert_array_equal(loaded["J_regressor"], model["J_regressor"].toarray())
    np.testing.assert_array_equal(loaded["kintree_table"], model["kintree_table"])
    assert loaded["bs_style"] == "lbs"


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_code_in_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_model_pickle(path)
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_refuses_reconstructing_arbitrary_class(tmp_path):
    path = tmp_path / "evil.pkl"
    # copy_reg._reconstructor(collections.OrderedDict, ...) must not reach a non-allow-listed class
    path.write_bytes(b"ccopy_reg\n_reconstructor\n(ccollections\nOrderedDict\nc__builtin__\nobject\nNtR.")
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        load_model_pickle(path)


def test_truncated_file_names_the_file(tmp_path, model):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_model_pickle(path, model)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(BodyModelFileError, match=str(path)):
        load_model_pickle(path)


def test_missing_file(tmp_path):
    with pytest.raises(BodyModelFileError, match="not found"):
        load_model_pickle(tmp_path / "nope.pkl")


def test_derived_chumpy_expression_is_rejected(tmp_path, model):
    path = tmp_path / "m.pkl"
    write_model_pickle(path, {"v_template": model["v_template"]}, chumpy_keys=("v_template",))
    blob = path.read_bytes().replace(b"X\x01\x00\x00\x00x", b"X\x01\x00\x00\x00y")  # rename state key 'x'
    path.write_bytes(blob)
    with pytest.raises(BodyModelFileError, match="derived chumpy"):
        load_model_pickle(path)


def test_sparse_csr_and_plain_arrays(tmp_path):
    reg = scipy.sparse.random(4, 10, density=0.3, format="csr", random_state=0)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": reg, "f": np.arange(6).reshape(2, 3)}, protocol=2))
    loaded = load_model_pickle(path)
    np.testing.assert_array_equal(loaded["J_regressor"], reg.toarray())
    np.testing.assert_array_equal(loaded["f"], np.arange(6).reshape(2, 3))
