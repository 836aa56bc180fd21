import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoints import CheckpointError, load_weights
from core.models import build_network
from core.nets.bev import cam3d_anchors, cam_to_center_index

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "checkpoints"
TSV = {"romp": "ROMP.pkl.keys.tsv", "bev": "BEV.pth.keys.tsv"}
PARAMS = {"romp": 29_048_274, "bev": 35_878_223}


def official_layout(kind):
    path = REFERENCE / TSV[kind]
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with path.open() as handle:
        return [(r["key"], eval(r["shape"]), r["dtype"]) for r in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module", params=["romp", "bev"])
def kind_and_net(request):
    return request.param, build_network(request.param)


def test_state_dict_equals_official_layout(kind_and_net):
    kind, net = kind_and_net
    state = net.state_dict()
    layout = official_layout(kind)
    assert [k for k, _, _ in layout] == list(state)
    for key, shape, dtype in layout:
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype) == f"torch.{dtype}", key
    assert sum(p.numel() for p in net.parameters()) == PARAMS[kind]


def test_round_trip_and_strictness(kind_and_net, tmp_path):
    kind, net = kind_and_net
    path = tmp_path / "ck.pth"
    state = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
             for k, v in net.state_dict().items()}
    torch.save(state, path)
    other = build_network(kind)
    digest = load_weights(other, path)
    assert len(digest) == 64
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_training_checkpoint_prefix_and_extras(tmp_path):
    net = build_network("romp")
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    state["module._result_parser.params_map_parser.smpl_model.v_template"] = torch.zeros(3)
    state["_calc_loss.something"] = torch.zeros(1)
    torch.save({"model_state_dict": state}, tmp_path / "train.pkl")
    load_weights(build_network("romp"), tmp_path / "train.pkl")


def test_errors_name_file_and_keys(tmp_path):
    net = build_network("romp")
    state = net.state_dict()
    missing = dict(state)
    missing.pop("final_layers.2.2.bias")
    torch.save(missing, tmp_path / "missing.pkl")
    with pytest.raises(CheckpointError, match=r"missing.pkl.*missing keys: final_layers.2.2.bias"):
        load_weights(build_network("romp"), tmp_path / "missing.pkl")

    shaped = dict(state)
    shaped["final_layers.3.2.weight"] = torch.zeros(4, 64, 1, 1)
    torch.save(shaped, tmp_path / "shape.pkl")
    with pytest.raises(CheckpointError, match=r"wrong shapes: final_layers.3.2.weight \(4, 64, 1, 1\)"):
        load_weights(build_network("romp"), tmp_path / "shape.pkl")

    # a BEV checkpoint given to ROMP: unexpected and missing keys
    torch.save(build_network("bev").state_dict(), tmp_path / "BEV.pth")
    with pytest.raises(CheckpointError, match=r"BEV.pth.*unexpected keys: coordmap_3d"):
        load_weights(build_network("romp"), tmp_path / "BEV.pth")


def test_truncated_and_foreign_files(tmp_path):
    torch.save(build_network("romp").state_dict(), tmp_path / "ROMP.pkl")
    data = (tmp_path / "ROMP.pkl").read_bytes()
    (tmp_path / "trunc.pkl").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="trunc.pkl: not a readable PyTorch checkpoint"):
        load_weights(build_network("romp"), tmp_path / "trunc.pkl")
    (tmp_path / "text.pkl").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pkl"):
        load_weights(build_network("romp"), tmp_path / "text.pkl")
    torch.save({"weights": "not tensors"}, tmp_path / "dict.pkl")
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_weights(build_network("romp"), tmp_path / "dict.pkl")
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(build_network("romp"), tmp_path / "absent.pkl")


class _Evil:
    def __reduce__(self):
        import os

        return os.system, ("true",)


def test_weights_only_refuses_code(tmp_path):
    torch.save({"x": torch.zeros(1), "evil": _Evil()}, tmp_path / "evil.pkl")
    with pytest.raises(CheckpointError, match="evil.pkl"):
        load_weights(build_network("romp"), tmp_path / "evil.pkl")


def test_bev_coordmap_optional_and_loaded_when_present(tmp_path):
    net = build_network("bev")
    state = net.state_dict()
    computed = state["coordmap_3d"].clone()
    without = {k: v for k, v in state.items() if k != "coordmap_3d"}
    torch.save(without, tmp_path / "a.pth")
    other = build_network("bev")
    load_weights(other, tmp_path / "a.pth")
    assert torch.equal(other.coordmap_3d, computed)
    state["coordmap_3d"] = computed + 1
    torch.save(state, tmp_path / "b.pth")
    load_weights(other, tmp_path / "b.pth")  # as the official strict=False load: the file's value wins
    assert torch.equal(other.coordmap_3d, computed + 1)


def test_depth_anchors_and_coordinate_volume():
    anchors = cam3d_anchors()
    assert anchors.shape == (64,)
    np.testing.assert_allclose(anchors[:4], [6.433, 4.866, 3.299, 1.732], atol=1e-3)
    np.testing.assert_allclose(anchors[[53, 59, 63]], [0.1732, 0.0866, 0.01732], atol=1e-4)
    vol = build_network("bev").coordmap_3d
    assert vol.shape == (1, 64, 128, 128, 3)
    assert vol[0, 5, 3, 7, 0] == torch.tensor(anchors[5], dtype=torch.float32)
    assert vol[0, 0, 3, 7, 1] == 3 / 128 * 2 - 1 and vol[0, 0, 3, 7, 2] == 7 / 128 * 2 - 1


def test_cam_to_center_index_matches_voxel():
    anchors = torch.from_numpy(cam3d_anchors()).float()
    cams = torch.tensor([[anchors[10].item(), 3 / 128 * 2 - 1 + 1e-4, 100 / 128 * 2 - 1 + 1e-4],
                         [9.0, -1.0, 0.999]])
    idx = cam_to_center_index(cams, anchors)
    assert idx.tolist() == [[10, 3, 100], [1, 1, 127]]  # z clamped to >= 1 and xy to [1, 127]


def test_forward_shapes(romp_net, bev_net):
    images = torch.randint(0, 255, (2, 512, 512, 3)).float()
    with torch.inference_mode():
        center, params = romp_net(images[:1])
        maps = bev_net.forward_maps(images[:1])
    assert center.shape == (1, 1, 64, 64) and params.shape == (1, 145, 64, 64)
    assert maps.center_3d.shape == (1, 64, 128, 128) and maps.cam_3d.shape == (1, 3, 64, 128, 128)
    assert maps.features.shape == (1, 128, 128, 128)
