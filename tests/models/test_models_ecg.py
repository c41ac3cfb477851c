import pytest
import torch

from xmodal.models.ecg import ECGEncoder, token_count


def test_token_count():
    assert token_count(1000) == 200
    assert token_count(5) == 1
    assert token_count(1003) == 200
    with pytest.raises(ValueError):
        token_count(4)


def test_tiny_ecg_encoder_shapes():
    enc = ECGEncoder(seq_len=1000, width=32, layers=1, heads=2, dropout=0.0)
    out = enc(torch.randn(3, 12, 1000))
    assert out["tokens"].shape == (3, 200, 32)
    assert out["embedding"].shape == (3, 32)
    assert enc.out_dim == 32 and enc.n_tokens == 200
    torch.testing.assert_close(out["embedding"], out["tokens"].mean(1))


def test_ecg_encoder_rejects_wrong_length():
    enc = ECGEncoder(seq_len=500, width=32, layers=1, heads=2)
    with pytest.raises(ValueError, match="500 samples"):
        enc(torch.randn(2, 12, 1000))


def test_ecg_encoder_stem_layout():
    enc = ECGEncoder(seq_len=250, width=48, layers=2, heads=4)
    conv1, conv2 = enc.stem[0], enc.stem[3]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride) == (12, 128, (5,), (5,))
    assert (conv2.out_channels, conv2.kernel_size, conv2.padding) == (48, (5,), (2,))
    assert enc.pos_embed.shape == (1, 50, 48)
    assert len(enc.transformer.layers) == 2


def test_attention_dropout_is_separate_from_residual_dropout():
    """attn_dropout=0 (default) keeps the fused attention kernel; the residual branches still drop."""
    torch.manual_seed(0)
    enc = ECGEncoder(seq_len=100, width=16, layers=2, heads=2, dropout=0.5)
    assert all(layer.self_attn.dropout == 0.0 and layer.dropout1.p == 0.5 for layer in enc.transformer.layers)
    x = torch.randn(3, 12, 100)
    enc.train()
    assert not torch.allclose(enc(x)["embedding"], enc(x)["embedding"])  # residual dropout is live
    enc.eval()
    torch.testing.assert_close(enc(x)["embedding"], enc(x)["embedding"])

    # Same parameters either way: a checkpoint trained with attention dropout loads into the fast encoder.
    slow = ECGEncoder(seq_len=100, width=16, layers=2, heads=2, dropout=0.5, attn_dropout=0.2)
    assert slow.transformer.layers[0].self_attn.dropout == 0.2
    slow.load_state_dict(enc.state_dict())
    slow.eval()
    torch.testing.assert_close(slow(x)["embedding"], enc(x)["embedding"])
