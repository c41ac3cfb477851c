import pytest
import torch

from xmodal.errors import RecordError
from xmodal.models.densenet import DenseNet121
from xmodal.models.weights import load_image_weights

TORCHVISION_DENSENET121_PARAMS = 7_978_856  # with the 1000-class classifier


def torchvision_densenet121_keys() -> list[str]:
    """torchvision densenet121 state-dict keys, written out from its architecture (6/12/24/16 layers)."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["features.conv0.weight"] + [f"features.norm0.{s}" for s in bn]
    for block, n_layers in enumerate((6, 12, 24, 16), start=1):
        for layer in range(1, n_layers + 1):
            p = f"features.denseblock{block}.denselayer{layer}"
            keys += [f"{p}.norm1.{s}" for s in bn] + [f"{p}.conv1.weight"]
            keys += [f"{p}.norm2.{s}" for s in bn] + [f"{p}.conv2.weight"]
        if block < 4:
            keys += [f"features.transition{block}.norm.{s}" for s in bn] + [f"features.transition{block}.conv.weight"]
    keys += [f"features.norm5.{s}" for s in bn] + ["classifier.weight", "classifier.bias"]
    return keys


@pytest.fixture(scope="module")
def rgb_imagenet_like():
    torch.manual_seed(0)
    return DenseNet121(in_chans=3, num_classes=1000)


def test_keys_and_param_count_match_torchvision(rgb_imagenet_like):
    sd = rgb_imagenet_like.state_dict()
    assert list(sd) == torchvision_densenet121_keys()
    assert sum(p.numel() for p in rgb_imagenet_like.parameters()) == TORCHVISION_DENSENET121_PARAMS
    assert sd["features.conv0.weight"].shape == (64, 3, 7, 7)
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)
    assert sd["features.denseblock4.denselayer16.conv2.weight"].shape == (32, 128, 3, 3)
    assert sd["features.transition3.conv.weight"].shape == (512, 1024, 1, 1)
    assert sd["features.norm5.weight"].shape == (1024,)
    assert sd["classifier.weight"].shape == (1000, 1024)


def test_forward_small_input():
    net = DenseNet121(in_chans=1).eval()
    out = net(torch.randn(2, 1, 32, 32))
    assert set(out) == {"embedding"} and out["embedding"].shape == (2, 1024)
    assert net.out_dim == 1024 and (out["embedding"] >= 0).all()  # relu before pooling


def test_load_3ch_weights_into_1ch_model(rgb_imagenet_like, tmp_path):
    path = tmp_path / "chexpert.pth"
    sd = rgb_imagenet_like.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    gray = DenseNet121(in_chans=1)
    skipped = load_image_weights(gray, path)
    assert sorted(skipped) == ["classifier.bias", "classifier.weight"]
    got = gray.state_dict()
    torch.testing.assert_close(got["features.conv0.weight"], sd["features.conv0.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(got["features.denseblock3.denselayer7.conv2.weight"],
                               sd["features.denseblock3.denselayer7.conv2.weight"])
    # a gray image through the 1-channel model equals it repeated over RGB through the 3-channel one
    rgb_imagenet_like.eval(), gray.eval()
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(gray(x)["embedding"], rgb_imagenet_like(x.repeat(1, 3, 1, 1))["embedding"],
                               rtol=1e-4, atol=1e-4)


def test_legacy_key_names_load(tmp_path):
    src = DenseNet121(in_chans=1)
    legacy = {k.replace("denselayer1.norm1.", "denselayer1.norm.1.").replace("denselayer1.conv2.", "denselayer1.conv.2."): v
              for k, v in src.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "old.pt")
    dst = DenseNet121(in_chans=1)
    load_image_weights(dst, tmp_path / "old.pt")
    torch.testing.assert_close(dst.state_dict()["features.denseblock1.denselayer1.norm1.weight"],
                               src.state_dict()["features.denseblock1.denselayer1.norm1.weight"])


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(RecordError, match="nope.pt.*not found"):
        load_image_weights(DenseNet121(), tmp_path / "nope.pt")


def test_mismatched_weights_name_file_and_keys(tmp_path):
    sd = DenseNet121(in_chans=1).state_dict()
    sd.pop("features.norm5.weight")
    sd["features.extra.weight"] = torch.zeros(3)
    sd["features.conv0.weight"] = torch.zeros(64, 2, 7, 7)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(RecordError) as err:
        load_image_weights(DenseNet121(in_chans=1), path)
    msg = str(err.value)
    assert "bad.pth" in msg
    for key in ("features.norm5.weight", "features.extra.weight", "features.conv0.weight"):
        assert key in msg


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(RecordError, match="junk.pt"):
        load_image_weights(DenseNet121(), path)
    path.write_bytes(b"garbage\n")  # an unpickling error: one line that says what to save instead
    with pytest.raises(RecordError, match=r"junk.pt: not a tensor state dict .*torch.save\(model.state_dict") as err:
        load_image_weights(DenseNet121(), path)
    assert "\n" not in str(err.value)
    torch.save({"epoch": 3}, tmp_path / "meta.pt")
    with pytest.raises(RecordError, match="meta.pt.*state dict"):
        load_image_weights(DenseNet121(), tmp_path / "meta.pt")
