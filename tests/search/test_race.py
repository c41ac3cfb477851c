"""The race and the guard (xmodal.search.race), on simulated scores: no training.

The simulation: every model scores the same validation pairs. A pair's score is its own difficulty (shared
by every model: the pairs), plus a config × pair effect (fixed over seeds: what selecting on the same pairs
can overfit), plus the config's true quality times the label, plus fresh noise per seed (the seeds). The
search trains seed 0 of 8 configs (config 0: the published defaults) and sends its best K = 5 to the race,
which trains them and the published defaults on seeds 1..5.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from xmodal.search.race import (
    Race,
    RaceRules,
    auroc,
    delong_components,
    effective_df,
    gain_of,
    paired_gain,
    pooled_seed_variance,
)

K, SEEDS, CONFIGS, PAIRS = 5, 5, 8, 400


class Cohort:
    def __init__(self, rng: np.random.Generator, quality: list[float], *, seed_sd: float = 0.05,
                 config_sd: float = 0.1, noise: float = 0.3):
        self.rng, self.quality, self.seed_sd, self.noise = rng, quality, seed_sd, noise
        self.y = (rng.random(PAIRS) < 0.3).astype(int)
        self.pair = rng.normal(size=PAIRS) + self.y
        self.config = [rng.normal(scale=config_sd, size=PAIRS) for _ in quality]

    def scores(self, c: int, seed: int) -> np.ndarray:
        r = np.random.default_rng([int(self.rng.integers(1 << 30)), c, seed])
        return (self.pair + (self.quality[c] + r.normal(0, self.seed_sd)) * self.y + self.config[c]
                + r.normal(scale=self.noise, size=PAIRS))


def race_once(rng: np.random.Generator, quality: list[float], rules: RaceRules = RaceRules()):
    """One search + race; returns (the recommended config's index in ``quality``, the race)."""
    data = Cohort(rng, quality)
    search = {c: auroc(data.y, data.scores(c, 0)) for c in range(1, CONFIGS)}
    candidates = sorted(search, key=search.get, reverse=True)[:K] + [0]  # the published defaults last
    race = Race(len(candidates), published=K, seeds=list(range(1, SEEDS + 1)), rules=rules)
    while (nxt := race.pending()) is not None:
        seed, alive = nxt
        race.record(seed, data.y, {c: data.scores(candidates[c], seed) for c in alive})
    return candidates[race.verdict().winner], race


def test_delong_components_give_sklearns_auroc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # many ties
    auc, v10, v01 = delong_components(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert v10.mean() == pytest.approx(v01.mean(), abs=1e-12) and len(v10) == y.sum()


def test_gain_variance_matches_the_plain_delong_formula():
    """One seed: the interval is DeLong's for two correlated AUROCs (pairwise kernel, written out)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    a, b = rng.normal(size=120) + y, rng.normal(size=120) + 0.7 * y
    g = paired_gain(y, [a], [b])

    def kernel(s):  # psi(pos_i, neg_j)
        p, n = s[y == 1][:, None], s[y == 0][None, :]
        return (p > n) + 0.5 * (p == n)

    ka, kb = kernel(a), kernel(b)
    m, n = ka.shape
    v10 = np.stack([ka.mean(1), kb.mean(1)])
    v01 = np.stack([ka.mean(0), kb.mean(0)])
    cov = np.cov(v10) / m + np.cov(v01) / n
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert g.estimate == pytest.approx(ka.mean() - kb.mean())
    assert (g.hi - g.lo) / 2 == pytest.approx(1.959964 * se, rel=1e-6)
    assert g.seed_df == 0  # one seed: the pairs' noise only


def test_seed_noise_widens_the_interval_and_pools_over_comparisons():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    base = rng.normal(size=300) + y
    a = [base + (0.3 + rng.normal(0, 0.3)) * y for _ in range(4)]
    b = [base + rng.normal(0, 0.3) * y for _ in range(4)]
    pairs_only = gain_of([delong_components(y, x) for x in a], [delong_components(y, x) for x in b], seed_var=(0, 3))
    both = paired_gain(y, a, b)
    assert both.hi - both.lo > pairs_only.hi - pairs_only.lo and both.seed_df == 3
    comps = lambda xs: [delong_components(y, x) for x in xs]  # noqa: E731
    var, df = pooled_seed_variance([(comps(a), comps(b)), (comps(a[:2]), comps(b[:2]))])
    assert df == 3 + 1 and var > 0


def test_the_quantile_takes_the_degrees_of_freedom_of_both_variances():
    """Welch-Satterthwaite: seed noise alone gives t with the seeds' df; pairs' noise alone the normal
    quantile; a little seed noise next to much pairs' noise stays near normal, not t with 2 df."""
    assert effective_df(0.0, 1e-4, 2) == pytest.approx(2)
    assert effective_df(1e-4, 0.0, 2) == np.inf and effective_df(1e-4, 1e-4, 0) == np.inf
    assert effective_df(3.2e-4, 3.8e-5, 2) > 100  # the CXR demo's cardiomegaly vs ECG-only, about
    assert effective_df(1e-4, 1e-4, 4) == pytest.approx(16)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    base = rng.normal(size=300) + y
    a = [base + (0.3 + rng.normal(0, 0.01)) * y for _ in range(3)]  # seeds barely differ
    b = [base + rng.normal(0, 0.01) * y for _ in range(3)]
    comps = lambda xs: [delong_components(y, x) for x in xs]  # noqa: E731
    both, pairs_only = gain_of(comps(a), comps(b)), gain_of(comps(a), comps(b), seed_var=(0, 0))
    assert both.seed_df == 2 and (both.hi - both.lo) < 1.1 * (pairs_only.hi - pairs_only.lo)


def test_under_the_null_the_guard_keeps_the_published_defaults():
    """No config differs from the defaults: in 1,000 simulated races with K = 5, the guard chooses the
    published defaults in 97.6 % (the test asks for at least 95 %)."""
    rng = np.random.default_rng(0)
    kept = np.mean([race_once(rng, [0.0] * CONFIGS)[0] == 0 for _ in range(1000)])
    assert kept >= 0.95, kept


def test_a_truly_better_config_is_chosen():
    """One config separates the classes better (+0.25 on the label's latent shift, about +0.05 validation
    AUROC over the defaults): the race and guard recommend it in 96.8 % of 1,000 races (at least 80 % asked),
    after 2.9 rounds on average."""
    rng = np.random.default_rng(1)
    quality = [0.0] * CONFIGS
    quality[3] = 0.25
    chosen = np.mean([race_once(rng, quality)[0] == 3 for _ in range(1000)])
    assert chosen >= 0.80, chosen


def test_min_gain_raises_the_bar():
    rng = np.random.default_rng(1)
    quality = [0.0] * CONFIGS
    quality[3] = 0.25
    chosen = np.mean([race_once(rng, quality, RaceRules(min_gain=0.1))[0] == 3 for _ in range(100)])
    assert chosen <= 0.05


def test_a_clearly_worse_candidate_is_dropped_after_the_first_rounds_and_gets_no_more_seeds():
    rng = np.random.default_rng(3)
    data = Cohort(rng, [0.0, 0.0, -1.5, 0.0])  # candidate 2 is much worse
    race = Race(4, published=3, seeds=[1, 2, 3, 4, 5])
    trained: dict[int, list[int]] = {c: [] for c in range(4)}
    while (nxt := race.pending()) is not None:
        seed, alive = nxt
        for c in alive:
            trained[c].append(seed)
        race.record(seed, data.y, {c: data.scores(c, seed) for c in alive})
    assert race.dropped[2][0] == RaceRules().first_drop_round  # dropped as soon as drops are allowed
    assert trained[2] == [1, 2] and race.verdict().seeds[2] == [1, 2]
    assert len(trained[3]) == race.rounds  # the published defaults are never dropped


def test_no_drop_and_no_choice_on_one_seed():
    rng = np.random.default_rng(4)
    data = Cohort(rng, [0.5, 0.0])
    race = Race(2, published=1, seeds=[1])
    seed, alive = race.pending()
    race.record(seed, data.y, {c: data.scores(c, seed) for c in alive})
    assert race.pending() is None and not race.dropped
    v = race.verdict()
    assert v.chosen == "published" and "one seed" in v.sentence


def test_a_failed_candidate_is_dropped_and_a_lone_published_default_is_recommended():
    rng = np.random.default_rng(5)
    data = Cohort(rng, [0.0, 0.0])
    race = Race(2, published=1, seeds=[1, 2, 3])
    race.record(1, data.y, {0: None, 1: data.scores(1, 1)})
    assert race.dropped[0] == (1, "training failed") and race.pending() is None
    assert Race(1, published=0, seeds=[1, 2]).pending() == (1, [0])  # nothing found but the defaults: all seeds
    v = race.verdict()
    assert v.chosen == "published" and v.winner == 1 and v.delta_vs_published is None


def test_the_race_stops_once_the_last_challenger_has_passed_the_guard():
    rng = np.random.default_rng(6)
    data = Cohort(rng, [2.0, 0.0])  # far better than the defaults
    race = Race(2, published=1, seeds=list(range(1, 9)))
    while (nxt := race.pending()) is not None:
        seed, alive = nxt
        race.record(seed, data.y, {c: data.scores(c, seed) for c in alive})
    v = race.verdict()
    assert v.chosen == "found" and v.delta_vs_published.lo > 0 and race.rounds <= 3  # of 8 seeds


def test_rounds_must_score_the_same_pairs():
    race = Race(2, published=1, seeds=[1, 2])
    race.record(1, np.array([0, 1, 0, 1]), {0: np.arange(4.0), 1: np.arange(4.0)})
    with pytest.raises(ValueError, match="same validation pairs"):
        race.record(2, np.array([1, 1, 0, 0]), {0: np.arange(4.0), 1: np.arange(4.0)})
