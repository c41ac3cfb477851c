import numpy as np
import pytest
import torch

from xmodal.errors import ConfigError
from xmodal.models.phase import even_boundaries, phase_pool, rpeak_phase_boundaries


def loop_reference(tokens, boundaries, segments):
    """Plain per-sample, per-segment mean with the documented non-empty rule."""
    b, n, w = tokens.shape
    out = torch.zeros(b, segments, w)
    for i in range(b):
        for t in range(segments):
            start = min(max(int(boundaries[i, t]), 0), n - 1)
            end = max(min(int(boundaries[i, t + 1]), n), start + 1)
            out[i, t] = tokens[i, start:end].mean(0)
    return out


def test_phase_pool_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(4, 40, 8, generator=g)
    boundaries = torch.tensor([
        [0, 5, 10, 15, 20],
        [3, 4, 9, 30, 40],
        [10, 10, 12, 12, 13],  # two degenerate (empty) segments -> widened to one token
        [38, 39, 40, 40, 45],  # runs off the end -> clamped to the last token
    ])
    got = phase_pool(tokens, boundaries, 4)
    assert got.shape == (4, 4, 8)
    torch.testing.assert_close(got, loop_reference(tokens, boundaries, 4))


def test_phase_pool_none_splits_evenly():
    tokens = torch.arange(20, dtype=torch.float32).view(1, 20, 1).repeat(2, 1, 3)
    got = phase_pool(tokens, None, 4)
    expected = torch.tensor([2.0, 7.0, 12.0, 17.0]).view(1, 4, 1).expand(2, 4, 3)
    torch.testing.assert_close(got, expected)


def test_phase_pool_gradients_and_shape_check():
    tokens = torch.randn(2, 10, 4, requires_grad=True)
    phase_pool(tokens, None, 5).sum().backward()
    torch.testing.assert_close(tokens.grad, torch.ones(2, 10, 4) / 2)
    with pytest.raises(ValueError):
        phase_pool(tokens, torch.zeros(2, 4, dtype=torch.long), 5)


def test_even_boundaries():
    np.testing.assert_array_equal(even_boundaries(200, 8), np.arange(0, 201, 25))
    b = even_boundaries(10, 4)
    assert b[0] == 0 and b[-1] == 10 and np.all(np.diff(b) >= 1)
    with pytest.raises(ConfigError, match="ecg_segments"):
        even_boundaries(3, 4)


def test_rpeak_boundaries_first_beat():
    # 1000 samples -> 200 tokens (5 samples per token); R-peaks every 100 samples from 50
    b = rpeak_phase_boundaries([50, 150, 250, 350], 1000, 200, 4)
    np.testing.assert_array_equal(b, [10, 15, 20, 25, 30])


def test_rpeak_boundaries_skips_implausible_interval():
    # 50 -> 250 is a missed beat (2x median RR); the first plausible beat is 250 -> 350
    b = rpeak_phase_boundaries([50, 250, 350, 450], 1000, 200, 4)
    np.testing.assert_array_equal(b, [50, 55, 60, 65, 70])


def test_rpeak_boundaries_median_fallback():
    # RR = [10, 200]: median 105, neither within [0.5, 1.5] x median -> first peak + median RR
    b = rpeak_phase_boundaries([100, 110, 310], 1000, 200, 3)
    assert b[0] == 20 and b[-1] == int(np.ceil(205 * 0.2))
    assert np.all(np.diff(b) >= 1)


@pytest.mark.parametrize("peaks", [[], [500], [np.nan, 300], [-10, 2000]])
def test_rpeak_boundaries_too_few_peaks_split_evenly(peaks):
    np.testing.assert_array_equal(rpeak_phase_boundaries(peaks, 1000, 200, 8), even_boundaries(200, 8))


def test_rpeak_boundaries_short_beat_widened():
    # beat of 2 samples (< 1 token) near the end -> widened to exactly T tokens inside [0, N)
    b = rpeak_phase_boundaries([996, 998], 1000, 200, 6)
    np.testing.assert_array_equal(b, np.arange(194, 201))
    assert b.dtype == np.int64


def test_rpeak_boundaries_pool_nonempty():
    tokens = torch.randn(1, 200, 4)
    b = torch.as_tensor(rpeak_phase_boundaries([5, 47, 95], 1000, 200, 8))[None]
    assert torch.all(b[:, 1:] > b[:, :-1])
    torch.testing.assert_close(phase_pool(tokens, b, 8), loop_reference(tokens, b, 8))
