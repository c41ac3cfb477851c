"""Cardiac-phase token pooling (PTACL): average the ECG tokens of each of T phase segments.

Boundaries are token indices ``b_0 < b_1 < ... < b_T``; segment ``t`` covers tokens
``[b_t, b_{t+1})``. They come from R-peaks (:func:`rpeak_phase_boundaries`, computed per record in
the data pipeline) or, when absent, split the whole sequence evenly (:func:`even_boundaries`).
"""

from __future__ import annotations

import numpy as np
import torch

from xmodal.errors import ConfigError

# A detected R-R interval counts as one beat when it is within these factors of the median R-R;
# outside it is likely a missed or a spurious R-peak.
RR_PLAUSIBLE = (0.5, 1.5)


def _check_segments(n_tokens: int, segments: int) -> None:
    if segments < 1 or n_tokens < segments:
        raise ConfigError(
            f"cannot split {n_tokens} ECG tokens into model.ecg_segments={segments} non-empty phase "
            f"segments; choose 1 <= ecg_segments <= {n_tokens}"
        )


def _split(start: int, end: int, segments: int) -> np.ndarray:
    """``segments + 1`` integer boundaries from ``start`` to ``end`` (``end - start >= segments``).

    ``b_k = start + (k * (end - start)) // segments``: consecutive differences are at least
    ``(end - start) // segments >= 1``, so every segment holds at least one token.
    """
    k = np.arange(segments + 1, dtype=np.int64)
    return start + (k * (end - start)) // segments


def even_boundaries(n_tokens: int, segments: int) -> np.ndarray:
    """``(segments + 1,)`` int64 boundaries splitting ``[0, n_tokens)`` evenly."""
    _check_segments(n_tokens, segments)
    return _split(0, n_tokens, segments)


def rpeak_phase_boundaries(rpeaks_samples, n_samples: int, n_tokens: int, segments: int) -> np.ndarray:
    """Token boundaries ``(segments + 1,)`` (int64) of one full beat split evenly into phases.

    Args:
        rpeaks_samples: R-peak positions in input samples (any order; out-of-range, NaN dropped).
        n_samples: input length in samples (e.g. 1000).
        n_tokens: encoder token count (``token_count(n_samples)``).
        segments: T, the number of phase segments.

    The beat is the first R-R interval whose length is plausible (within ``RR_PLAUSIBLE`` of the
    median R-R, which skips intervals made by a missed or spurious peak); if none is, it is one
    median R-R from the first peak, clipped to the record. With fewer than two peaks the whole
    sequence is split evenly. A beat shorter than ``segments`` tokens is widened to exactly
    ``segments`` tokens (kept inside ``[0, n_tokens)``), so each segment holds at least one token.
    """
    _check_segments(n_tokens, segments)
    peaks = np.asarray(rpeaks_samples, dtype=np.float64).ravel()
    peaks = np.unique(peaks[np.isfinite(peaks) & (peaks >= 0) & (peaks < n_samples)])
    if len(peaks) < 2:
        return _split(0, n_tokens, segments)
    rr = np.diff(peaks)
    median_rr = float(np.median(rr))
    ok = np.flatnonzero((rr >= RR_PLAUSIBLE[0] * median_rr) & (rr <= RR_PLAUSIBLE[1] * median_rr))
    if len(ok):
        beat_start, beat_end = peaks[ok[0]], peaks[ok[0] + 1]
    else:
        beat_start, beat_end = peaks[0], min(peaks[0] + median_rr, float(n_samples))
    scale = n_tokens / n_samples
    start = int(np.floor(beat_start * scale))
    end = min(int(np.ceil(beat_end * scale)), n_tokens)
    if end - start < segments:
        end = min(start + segments, n_tokens)
        start = end - segments
    return _split(start, end, segments)


def phase_pool(tokens: torch.Tensor, boundaries: torch.Tensor | None, segments: int) -> torch.Tensor:
    """Mean of the tokens in each phase segment.

    Args:
        tokens: ``(B, N, W)`` encoder tokens.
        boundaries: ``(B, segments + 1)`` long token indices, or None for an even split of all N.
        segments: T.

    Returns:
        ``(B, T, W)``.

    Segments are never empty: a start is clamped to ``[0, N - 1]`` and an end to
    ``[start + 1, N]``, so a degenerate segment (``b_{t+1} <= b_t``) becomes the single token at
    ``b_t``. Vectorised: a ``(B, T, N)`` averaging matrix times the tokens (``bmm``).
    """
    b, n, _ = tokens.shape
    if boundaries is None:
        boundaries = torch.as_tensor(even_boundaries(n, segments), device=tokens.device).expand(b, -1)
    if boundaries.shape != (b, segments + 1):
        raise ValueError(f"boundaries must have shape ({b}, {segments + 1}), got {tuple(boundaries.shape)}")
    boundaries = boundaries.to(device=tokens.device, dtype=torch.long)
    start = boundaries[:, :-1].clamp(0, n - 1)  # (B, T)
    end = torch.maximum(boundaries[:, 1:].clamp(max=n), start + 1)  # (B, T)
    idx = torch.arange(n, device=tokens.device)  # (N,)
    member = (idx >= start[..., None]) & (idx < end[..., None])  # (B, T, N)
    weights = member.to(tokens.dtype)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return torch.bmm(weights, tokens)
