import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    load_weights,
    read_checkpoint,
    recorded_model,
    save_checkpoint,
    save_state_dict,
)
from core.models import build_network, load_checkpoint
from core.nets.bev import cam3d_anchors, cam_to_center_index
from core.nets.config import NetworkConfig

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


# -- configurable architectures and meshfleet checkpoints -------------------------------------

def head_params(in_ch, width=64, blocks=2, strides=1):
    """Parameter count of one ROMP head (convs with bias in the stride layers, BN, BasicBlocks)."""
    stride_layers = (in_ch * width * 9 + width + 2 * width) + (strides - 1) * (width * width * 9 + 3 * width)
    block = 2 * width * width * 9 + 4 * width
    return stride_layers + blocks * block


def test_resnet50_romp_layout():
    net = build_network(NetworkConfig("romp", "resnet50"))
    state = net.state_dict()
    # torchvision's ResNet-50 without fc has 23,508,032 parameters; the three deconvolutions
    # 2048->256->128->64 (4x4, no bias) and their BN add 9,043,968 + 896
    backbone = sum(p.numel() for n, p in net.named_parameters() if n.startswith("backbone."))
    assert backbone == 23_508_032 + 9_043_968 + 896
    heads = sum(p.numel() for n, p in net.named_parameters() if n.startswith("final_layers."))
    assert heads == 3 * head_params(64 + 2) + (64 * 142 + 142) + (64 + 1) + (64 * 3 + 3)
    expected = {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "backbone.deconv_layers.0.weight": (2048, 256, 4, 4),
        "backbone.deconv_layers.7.running_mean": (64,),
        "final_layers.1.0.0.weight": (64, 66, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert len([k for k in state if k.startswith("backbone.layer3.") and k.endswith("conv1.weight")]) == 6


def test_official_head_formula_matches_reference_count():
    net = build_network("romp")
    heads = sum(p.numel() for n, p in net.named_parameters() if n.startswith("final_layers."))
    assert heads == 512_722 == 3 * head_params(34) + 9_490  # reference 5.3


@pytest.mark.parametrize(("config", "maps"), [
    (NetworkConfig("romp", "small", 128), (16, (2,))),
    (NetworkConfig("romp", "small", 256), (32, (2,))),
    (NetworkConfig("romp", "small", 256, map_size=64), (64, (1,))),
    (NetworkConfig("romp", "small", 256, map_size=16), (16, (2, 2))),
    (NetworkConfig("bev", "small", 256), (64, (1,))),
    (NetworkConfig.official("romp"), (64, (2,))),
])
def test_network_config_sizes(config, maps):
    assert (config.map_size, config.head_strides) == maps
    assert NetworkConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("bad", [
    {"model": "bev", "backbone": "resnet50"},
    {"model": "romp", "backbone": "small", "input_size": 100},
    {"model": "bev", "backbone": "small", "input_size": 64},
    {"model": "romp", "backbone": "small", "input_size": 256, "map_size": 48},
    {"model": "romp", "backbone": "vgg"},
])
def test_network_config_rejects(bad):
    with pytest.raises(ValueError):
        NetworkConfig(**bad)


def test_small_networks_forward_at_any_size():
    romp = build_network(NetworkConfig("romp", "small", 128)).eval()
    bev = build_network(NetworkConfig("bev", "small", 128)).eval()
    images = torch.randint(0, 255, (2, 128, 128, 3)).float()
    with torch.inference_mode():
        center, params = romp(images)
        maps = bev.forward_maps(images)
    assert center.shape == (2, 1, 16, 16) and params.shape == (2, 145, 16, 16)
    depth = len(cam3d_anchors(map_size=32))
    assert maps.center_3d.shape == (2, depth, 32, 32) and maps.cam_3d.shape == (2, 3, depth, 32, 32)
    assert bev.coordmap_3d.shape == (1, depth, 32, 32, 3)


def test_meshfleet_checkpoint_round_trip(tmp_path):
    config = NetworkConfig("bev", "small", 128)
    net = build_network(config)
    info = CheckpointInfo(network=config.to_dict(), body_model_set="open-0.1", training={"lr": 1e-3, "steps": 5},
                          data_digest="abc", step=5)
    save_checkpoint(tmp_path / "model.pth", net.state_dict(), info)
    assert recorded_model(tmp_path / "model.pth") == "bev"
    loaded = load_checkpoint(tmp_path / "model.pth")
    assert loaded.info == info and loaded.network.config == config and loaded.network.input_size == 128
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key
    with pytest.raises(CheckpointError, match="holds a bev model"):
        load_checkpoint(tmp_path / "model.pth", "romp")
    torch.save({"format": "meshfleet-checkpoint", "version": 1, "info": {"network": {"model": "romp", "x": 1},
                "body_model_set": "smpl"}, "state_dict": net.state_dict()}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth: unusable network config"):
        load_checkpoint(tmp_path / "bad.pth")


def test_official_architecture_checkpoint_keeps_official_layout(tmp_path):
    net = build_network("romp")
    assert net.config.is_official and not NetworkConfig("romp", "small", 256).is_official
    info = CheckpointInfo(network=net.config.to_dict(), body_model_set="smpl")
    save_checkpoint(tmp_path / "ours.pth", net.state_dict(), info)
    state, read_info = read_checkpoint(tmp_path / "ours.pth")
    assert read_info == info
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, s) for k, s, _ in official_layout("romp")]
    load_weights(build_network("romp"), tmp_path / "ours.pth")  # the official loader path reads it too
    save_state_dict(tmp_path / "ROMP.pkl", net.state_dict())  # what the official tools load
    plain = torch.load(tmp_path / "ROMP.pkl", weights_only=True)
    assert list(plain) == [k for k, _, _ in official_layout("romp")]
    assert recorded_model(tmp_path / "ROMP.pkl") is None
    with pytest.raises(CheckpointError, match="say which model"):
        load_checkpoint(tmp_path / "ROMP.pkl")
    assert load_checkpoint(tmp_path / "ROMP.pkl", "romp").info is None
