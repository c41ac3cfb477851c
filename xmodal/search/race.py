"""The race after the search, and the guard on the final choice (no Ray, no training: scores in, verdict out).

After the search, its best K distinct configs (the *challengers*) and the published defaults race on
shared seeds, as irace and SMAC's intensifier compare a challenger with the incumbent on the same seeds
and instances:

- every round trains each candidate still in the race with one more seed, from seeds the search did not
  select on, and scores all of them on the same validation pairs;
- from round ``first_drop_round`` on, a candidate whose paired gain over the round's leader has a 95 %
  CI entirely below 0 is dropped and gets no further seeds;
- the race ends when one candidate is left or the seeds are spent.

The guard: the race's best challenger replaces the published defaults only when the lower bound of its
paired gain over them is above ``min_gain``. That interval counts both noise sources and the selection:

- the seeds: the spread of per-seed AUROC differences, pooled over the challengers;
- the validation pairs: DeLong's variance of the seed-averaged AUROC difference (the same pairs score
  every model, so this noise does not shrink with more seeds);
- the quantile: Student's t with the Welch-Satterthwaite degrees of freedom of the two variances (the
  seeds' is estimated from a few seeds, the pairs' is a large-sample one);
- the best of K: the level is Bonferroni-corrected over the K challengers, and the race's seeds are not
  the seed the search picked them on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A paired AUROC gain: its estimate and confidence interval."""

    estimate: float
    lo: float
    hi: float
    seeds: int = 0  # seeds the estimate averages over
    seed_df: int = 0  # degrees of freedom of the seed variance (0: seed noise not measured)

    def to_dict(self) -> dict[str, float]:
        return {"estimate": round(self.estimate, 4), "lo": round(self.lo, 4), "hi": round(self.hi, 4)}

    def text(self) -> str:
        return f"{self.estimate:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"


def delong_components(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUROC of scores ``s (N,)`` for labels ``y (N,)`` and DeLong's structural components:
    ``v10 (n_pos,)`` (each positive's share of negatives ranked below it, ties half) and ``v01 (n_neg,)``."""
    pos, neg = s[y == 1], s[y == 0]
    sn, sp = np.sort(neg), np.sort(pos)
    v10 = (np.searchsorted(sn, pos, "left") + np.searchsorted(sn, pos, "right")) / (2.0 * len(neg))
    v01 = 1.0 - (np.searchsorted(sp, neg, "left") + np.searchsorted(sp, neg, "right")) / (2.0 * len(pos))
    return float(v10.mean()), v10, v01


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    return delong_components(y, s)[0]


Components = tuple[float, np.ndarray, np.ndarray]  # delong_components' (auroc, v10, v01) of one model


def paired_gain(y: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray], *, level: float = LEVEL,
                seed_var: tuple[float, int] | None = None) -> Interval:
    """Gain in AUROC of models ``a`` over models ``b``, each a list of ``(N,)`` scores on the same pairs
    ``y (N,)``, one per shared seed (``a[i]`` and ``b[i]`` trained with the same seed).

    ``seed_var``: a pooled ``(variance of the per-seed gain, degrees of freedom)``; default: from these
    seeds alone. With no seed degrees of freedom (one seed), the interval counts the pairs' noise only.
    """
    return gain_of([delong_components(y, x) for x in a], [delong_components(y, x) for x in b], level=level,
                   seed_var=seed_var)


def gain_of(a: Sequence[Components], b: Sequence[Components], *, level: float = LEVEL,
            seed_var: tuple[float, int] | None = None) -> Interval:
    """:func:`paired_gain` on precomputed DeLong components."""
    d = _seed_gains(a, b)
    n = len(d)
    var_seed, df = seed_var if seed_var is not None else ((float(np.var(d, ddof=1)), n - 1) if n > 1 else (0.0, 0))
    d10 = np.mean([x[1] for x in a], axis=0) - np.mean([x[1] for x in b], axis=0)
    d01 = np.mean([x[2] for x in a], axis=0) - np.mean([x[2] for x in b], axis=0)
    var_pairs = np.var(d10, ddof=1) / len(d10) + np.var(d01, ddof=1) / len(d01)  # DeLong, seed-averaged
    var_seeds = var_seed / n if df else 0.0
    se = float(np.sqrt(var_pairs + var_seeds))
    q = float(stats.t.ppf(0.5 + level / 2, effective_df(var_pairs, var_seeds, df)))
    est = float(d.mean())
    return Interval(est, max(-1.0, est - q * se), min(1.0, est + q * se), seeds=n, seed_df=df)  # AUROC gains lie in [-1, 1]


def effective_df(var_pairs: float, var_seeds: float, df: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``var_pairs + var_seeds``: the pairs' DeLong variance is a
    large-sample one (infinite df), the seeds' is estimated from ``df`` degrees of freedom. The t quantile
    with ``df`` alone would treat the whole variance as if estimated from a few seeds."""
    if not df or var_seeds <= 0:
        return np.inf
    return float((var_pairs + var_seeds) ** 2 / (var_seeds ** 2 / df))


def _seed_gains(a: Sequence[Components], b: Sequence[Components]) -> np.ndarray:
    return np.array([x[0] - z[0] for x, z in zip(a, b)])


def pooled_seed_variance(comparisons: Sequence[tuple[Sequence[Components], Sequence[Components]]]
                         ) -> tuple[float, int]:
    """Variance of per-seed AUROC gains pooled over several comparisons ``(a, b)`` (as :func:`gain_of`
    takes them), with its degrees of freedom."""
    ss, df = 0.0, 0
    for a, b in comparisons:
        d = _seed_gains(a, b)
        if len(d) > 1:
            ss += float(((d - d.mean()) ** 2).sum())
            df += len(d) - 1
    return (ss / df if df else 0.0), df


@dataclass(frozen=True)
class RaceRules:
    min_gain: float = 0.0  # the guard: lower bound of the gain over the published defaults must exceed it
    level: float = LEVEL  # the guard's confidence, before the Bonferroni correction over K challengers
    drop_level: float = LEVEL  # a candidate is dropped when this CI of its gain over the leader is below 0
    first_drop_round: int = 2  # no drops before this many seeds (one seed cannot measure seed noise)

    def text(self) -> str:
        return (f"race on shared fresh seeds (drop when the {self.drop_level:.0%} CI of the gain over the leader "
                f"is below 0, from round {self.first_drop_round}); the best found replaces the published defaults "
                f"only when the lower bound of its paired {self.level:.0%} CI (seeds + validation pairs, "
                f"Bonferroni over the challengers) exceeds {self.min_gain:+g} AUROC")


@dataclass
class Race:
    """A race between candidates ``0..n-1``; ``published`` is the index of the published defaults.

    Drive it with :meth:`pending` (the next seed and who trains on it) and :meth:`record` (their
    validation scores), until :meth:`pending` returns None; then :meth:`verdict`.
    """

    n: int
    published: int
    seeds: Sequence[int]
    rules: RaceRules = RaceRules()
    labels: np.ndarray | None = None
    scores: dict[int, dict[int, Components]] = field(default_factory=dict)  # candidate -> seed -> components
    alive: list[int] = field(default_factory=list)
    dropped: dict[int, tuple[int, str]] = field(default_factory=dict)  # candidate -> (round, reason)
    rounds: int = 0

    def __post_init__(self):
        self.alive = self.alive or list(range(self.n))
        self.scores = {c: {} for c in range(self.n)}

    @property
    def challengers(self) -> list[int]:
        return [c for c in range(self.n) if c != self.published]

    def pending(self) -> tuple[int, list[int]] | None:
        """``(seed, candidates)`` of the next round, or None when the race is over: the seeds are spent, every
        challenger is dropped, or the one left has passed the guard already. With no challenger at all (the
        search found nothing but the published defaults), they train on every seed (the ECG-only comparison)."""
        left = [c for c in self.alive if c != self.published]
        if self.rounds >= len(self.seeds) or self.published not in self.alive or (self.challengers and not left):
            return None
        if len(left) == 1 and (g := self.gain_over_published(left[0])) and g.seed_df and g.lo > self.rules.min_gain:
            return None
        return self.seeds[self.rounds], list(self.alive)

    def record(self, seed: int, labels: np.ndarray, scores: dict[int, np.ndarray | None]) -> None:
        """This round's validation ``scores (N,)`` per candidate (None: its training failed: it is dropped)."""
        labels = np.asarray(labels)
        if self.labels is None:
            self.labels = labels
        elif not np.array_equal(self.labels, labels):
            raise ValueError("every round must score the same validation pairs")
        self.rounds += 1
        for c, s in scores.items():
            if s is None:
                self._drop(c, "training failed")
            else:
                self.scores[c][seed] = delong_components(labels, np.asarray(s, dtype=np.float64))
        if self.rounds >= self.rules.first_drop_round and len(self.alive) > 1:
            lead = self.leader()
            shared = {c: [s for s in self._seeds(c) if s in self.scores[lead]] for c in self.alive if c != lead}
            pooled = pooled_seed_variance([(self._on(c, sc), self._on(lead, sc)) for c, sc in shared.items()])
            for c, sc in shared.items():
                g = gain_of(self._on(c, sc), self._on(lead, sc), level=self.rules.drop_level, seed_var=pooled)
                if g.hi < 0 and c != self.published:  # the incumbent stays: the guard compares with it
                    self._drop(c, f"worse than the leader by {g.text()}")

    def _drop(self, c: int, reason: str) -> None:
        if c in self.alive:
            self.alive.remove(c)
            self.dropped[c] = (self.rounds, reason)

    def _seeds(self, c: int) -> list[int]:
        return [s for s in self.seeds if s in self.scores[c]]

    def _on(self, c: int, seeds: Sequence[int]) -> list[Components]:
        return [self.scores[c][s] for s in seeds]

    def mean_auroc(self, c: int, seeds: Sequence[int] | None = None) -> float:
        seeds = self._seeds(c) if seeds is None else seeds
        return float(np.mean([x[0] for x in self._on(c, seeds)])) if seeds else float("nan")

    def leader(self) -> int:
        return max(self.alive, key=self.mean_auroc)

    def gain_over_published(self, c: int) -> Interval | None:
        """``c``'s paired gain over the published defaults on their shared seeds, at the guard's
        Bonferroni-corrected level, with the seed variance pooled over the challengers."""
        p = self.published
        pairs = {x: [s for s in self._seeds(x) if s in self.scores[p]] for x in self.challengers}
        if not pairs.get(c):
            return None
        pooled = pooled_seed_variance([(self._on(x, sx), self._on(p, sx)) for x, sx in pairs.items() if sx])
        level = 1 - (1 - self.rules.level) / max(1, len(self.challengers))
        return gain_of(self._on(c, pairs[c]), self._on(p, pairs[c]), level=level, seed_var=pooled)

    def verdict(self) -> "Selection":
        """The guard's choice: the best challenger (by mean AUROC on the seeds it shares with the
        published defaults) when its corrected lower bound exceeds ``min_gain``, else the published defaults."""
        scored = {c: g for c in self.challengers if (g := self.gain_over_published(c)) is not None}
        best = max(scored, key=lambda c: scored[c].estimate) if scored else None
        gain = scored.get(best)
        if gain is None:
            why = "the search found no setting other than the published defaults"
        elif gain.seed_df == 0:
            why = "one seed per candidate cannot measure the seeds' noise"
        elif gain.lo > self.rules.min_gain:
            why = ""
        else:
            why = f"no setting beat the published defaults beyond noise: {gain.text()}"
        chosen = "found" if gain is not None and not why else "published"
        winner = best if chosen == "found" else self.published
        if chosen == "found":
            why = f"the best found beat the published defaults beyond noise: {gain.text()}"
        return Selection(chosen=chosen, winner=winner, challenger=best, delta_vs_published=gain, sentence=why,
                         seeds={c: self._seeds(c) for c in range(self.n)},
                         dropped={c: r for c, r in self.dropped.items()}, rounds=self.rounds,
                         rule=self.rules.text())


@dataclass(frozen=True)
class Selection:
    """What the race and the guard decided."""

    chosen: str  # "found" or "published"
    winner: int  # candidate index of the recommendation
    challenger: int | None  # the best found candidate the guard tested (None: there was none)
    delta_vs_published: Interval | None
    sentence: str  # one sentence for the report
    seeds: dict[int, list[int]]
    dropped: dict[int, tuple[int, str]]
    rounds: int
    rule: str
