import pytest
import torch

from xmodal.models.cmr import CineEncoder, PhaseEncoder, resample_phase_tokens
from xmodal.models.heads import ClassificationHead, ProjectionHead
from xmodal.models.small_cnn import SmallCNN


def test_small_cnn_shapes():
    net = SmallCNN(in_chans=1, width=8)
    assert net(torch.randn(2, 1, 32, 32))["embedding"].shape == (2, 32) and net.out_dim == 32
    assert net(torch.randn(2, 1, 5, 7))["embedding"].shape == (2, 32)  # tiny inputs still pool
    with pytest.raises(ValueError):
        net(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("frames", [10, 7])
def test_cine_encoder_shapes(frames):
    enc = CineEncoder(width=8, n_frames=10, layers=1, heads=2)
    out = enc(torch.randn(2, frames, 24, 24))
    assert out["tokens"].shape == (2, frames, 32)
    assert out["embedding"].shape == (2, 32) and enc.out_dim == 32


def test_resample_phase_tokens_periodic_linear():
    tokens = torch.arange(4, dtype=torch.float32).view(1, 4, 1)  # phases 0, .25, .5, .75
    got = resample_phase_tokens(tokens, 8)[0, :, 0]
    torch.testing.assert_close(got, torch.tensor([0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5]))  # last wraps to frame 0
    assert resample_phase_tokens(tokens, 4) is tokens
    assert resample_phase_tokens(torch.randn(3, 50, 16), 8).shape == (3, 8, 16)


def test_phase_encoder_single_and_stack():
    assert PhaseEncoder(1, width=8)(torch.randn(2, 1, 32, 32))["embedding"].shape == (2, 32)
    assert PhaseEncoder(3, width=8)(torch.randn(2, 3, 32, 32))["embedding"].shape == (2, 32)


def test_heads():
    proj = ProjectionHead(32, 64, 16)
    assert proj(torch.randn(4, 32)).shape == (4, 16)
    assert [type(m).__name__ for m in proj.net] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert ClassificationHead(32)(torch.randn(4, 32)).shape == (4, 1)
    assert ClassificationHead(32, n_out=5, dropout=0.2)(torch.randn(4, 32)).shape == (4, 5)
