"""Plain float64 reference implementations of the loss specification, one row at a time.

Deliberately naive: Python loops over anchors (and over candidates for the weights), math-module
scalars for the detached hard-negative weights, torch only where autograd is needed for gradient
parity. They follow the text in docs/losses.md, not the vectorised code.
"""

from __future__ import annotations

import math

import torch


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def log_weights_row(c_row: list[float], y_i: int, y_b: list[int], strategy: str, k: float, alpha: float,
                    tau: float) -> list[float]:
    """log w_ij for one anchor row, from plain Python floats (no gradient)."""
    n = len(c_row)
    neg = [j for j in range(n) if y_b[j] != y_i]
    logw = [0.0] * n
    if not neg or strategy == "none":
        return logw
    if strategy == "topk":
        n_top = max(1, math.ceil(k * len(neg)))
        for j in sorted(neg, key=lambda j: -c_row[j])[:n_top]:
            logw[j] = math.log(alpha)
    elif strategy == "linear":
        lo, hi = min(c_row[j] for j in neg), max(c_row[j] for j in neg)
        for j in neg:
            logw[j] = math.log(1.0 + (alpha - 1.0) * (c_row[j] - lo) / (hi - lo + 1e-8))
    elif strategy == "exp":
        for j in neg:
            x = alpha * c_row[j] / tau
            logw[j] = x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))  # log(1 + e^x)
    else:
        raise ValueError(strategy)
    return logw


def ahnp_direction(a, b, y, strategy, k, alpha, beta, tau):
    a, b = unit(a), unit(b)
    y = [int(v) for v in y]
    n = len(y)
    total = 0.0
    for i in range(n):
        s = torch.stack([a[i] @ b[j] for j in range(n)]) / tau
        c_row = [float(a[i].detach() @ b[j].detach()) for j in range(n)]
        logw = torch.tensor(log_weights_row(c_row, y[i], y, strategy, k, alpha, tau), dtype=s.dtype)
        lse = torch.logsumexp(s + logw, dim=0)
        num, den = 0.0, 0.0
        for j in range(n):
            if y[j] == y[i]:
                m = beta if j == i else 1.0
                num = num + m * (s[j] - lse)
                den += m
        total = total - num / den
    return total / n


def ahnp_supcon(z_ecg, z_img, labels, *, strategy, k, alpha, beta, tau):
    return 0.5 * (ahnp_direction(z_ecg, z_img, labels, strategy, k, alpha, beta, tau)
                  + ahnp_direction(z_img, z_ecg, labels, strategy, k, alpha, beta, tau))


def published_supcon(z_ecg, z_img, labels, *, beta, tau):
    """The published CroMoTEX formulation for strategy none: exp / divide / log, mask-weighted positives,
    beta on the diagonal. Overflows for small tau (kept naive on purpose)."""
    a, b = unit(z_ecg), unit(z_img)
    mask = (labels[:, None] == labels[None, :]).to(a.dtype)
    mask = mask + (beta - 1.0) * torch.eye(len(labels), dtype=a.dtype)

    def one(logits):
        exp_logits = torch.exp(logits)
        log_prob = torch.log(exp_logits / exp_logits.sum(1, keepdim=True))
        return -((mask * log_prob).sum(1) / mask.sum(1)).mean()

    logits = a @ b.T / tau
    return 0.5 * (one(logits) + one(logits.T))


def clip_infonce(z_a, z_b, *, tau):
    a, b = unit(z_a), unit(z_b)
    n = len(a)
    ab, ba = 0.0, 0.0
    for i in range(n):
        row = torch.stack([a[i] @ b[j] for j in range(n)]) / tau
        col = torch.stack([a[j] @ b[i] for j in range(n)]) / tau
        ab = ab - (row[i] - torch.logsumexp(row, 0))
        ba = ba - (col[i] - torch.logsumexp(col, 0))
    return 0.5 * (ab / n + ba / n)


def ntxent(z1, z2, *, tau):
    z = unit(torch.cat([z1, z2]))
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        others = [j for j in range(n2) if j != i]
        sims = torch.stack([z[i] @ z[j] for j in others]) / tau
        pos = (i + n2 // 2) % n2
        total = total - (z[i] @ z[pos] / tau - torch.logsumexp(sims, 0))
    return total / n2


def phase_target_matrix(t: int, sigma: float) -> list[list[float]]:
    """G[k][t] before normalisation (identity for sigma = 0)."""
    g = [[0.0] * t for _ in range(t)]
    for k in range(t):
        for j in range(t):
            d = min(abs(k - j), t - abs(k - j)) / t
            g[k][j] = float(k == j) if sigma == 0 else math.exp(-d * d / (2 * sigma * sigma))
    return g


def local_temporal(e_tokens, c_tokens, *, sigma, tau):
    e, c = unit(e_tokens), unit(c_tokens)
    n, t, _ = e.shape
    g = phase_target_matrix(t, sigma)
    total = 0.0
    for b in range(n):
        s = [[e[b, k] @ c[b, j] / tau for j in range(t)] for k in range(t)]
        rows, cols = 0.0, 0.0
        for k in range(t):  # ECG segment k: softmax over cine phases, target G[k, :] / sum_t
            srow = torch.stack(s[k])
            z = sum(g[k])
            rows = rows - sum(g[k][j] / z * (srow[j] - torch.logsumexp(srow, 0)) for j in range(t))
        for j in range(t):  # cine phase j: softmax over ECG segments, target G[:, j] / sum_k
            scol = torch.stack([s[k][j] for k in range(t)])
            z = sum(g[k][j] for k in range(t))
            cols = cols - sum(g[k][j] / z * (scol[k] - torch.logsumexp(scol, 0)) for k in range(t))
        total = total + 0.5 * (rows / t + cols / t)
    return total / n


def multi_phase_clip(z_ecg, z_ed, z_es, *, lambdas, tau):
    total = sum(lambdas)
    pairs = ((z_ecg, z_ed), (z_ecg, z_es), (z_ed, z_es))
    return sum(lam / total * clip_infonce(a, b, tau=tau) for lam, (a, b) in zip(lambdas, pairs))
