import torch
import torch.nn.functional as F

from xmodal.models.ecg import ECGEncoder
from xmodal.models.heads import ClassificationHead, ProjectionHead


def toy_batch(g: torch.Generator, n: int = 32, length: int = 100):
    """Class 1 has a 4 Hz-ish sinusoid on all leads, class 0 only noise: linearly separable."""
    y = torch.randint(0, 2, (n,), generator=g).float()
    t = torch.arange(length) / 100.0
    wave = torch.sin(2 * torch.pi * 4 * t)
    x = 0.5 * torch.randn(n, 12, length, generator=g) + y.view(n, 1, 1) * wave
    return x, y


def test_tiny_encoder_and_heads_learn_toy_problem():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    enc = ECGEncoder(seq_len=100, width=32, layers=1, heads=2, dropout=0.0)
    proj = ProjectionHead(32, 32, 16)
    cls = ClassificationHead(16, 1)
    params = [*enc.parameters(), *proj.parameters(), *cls.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(30):
        x, y = toy_batch(g)
        logits = cls(proj(enc(x)["embedding"]))[:, 0]
        loss = F.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, losses
