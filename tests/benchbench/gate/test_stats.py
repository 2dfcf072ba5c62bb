"""Intervals of a change: the order-statistic bootstrap equals brute-force resampling and is
seeded. (Its cost on 100k requests a side: benchmarks/gate_bootstrap.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from benchbench.gate.stats import bootstrap_draws, change_of_runs, change_of_statistic


@pytest.mark.parametrize(("n", "q"), [(50, 0.99), (50, 0.5), (41, 0.95), (200, 0.9)])
def test_order_statistic_bootstrap_matches_resampling_whole_arrays(n: int, q: float) -> None:
    x = np.sort(np.random.default_rng(1).lognormal(3.0, 0.5, n))
    exact = bootstrap_draws(x, q, 100_000, np.random.default_rng(2))
    idx = np.random.default_rng(3).integers(0, n, (10_000, n))
    brute = np.quantile(x[idx], q, axis=1)
    for p in (0.025, 0.25, 0.75, 0.975):
        # Both are distributions over the same few order statistics: equal up to MC noise.
        assert np.quantile(exact, p) == pytest.approx(np.quantile(brute, p), abs=0.03 * x.std())
    assert exact.mean() == pytest.approx(brute.mean(), abs=0.02 * x.std())


def test_a_shift_larger_than_the_noise_is_inside_the_interval_and_zero_is_not() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 5, 60), rng.normal(120, 5, 60)
    c = change_of_statistic(a, b, 0.5, confidence=0.95, resamples=2000, rng=rng)
    assert c.diff == pytest.approx(np.median(b) - np.median(a))
    assert c.low is not None and c.high is not None
    assert 0 < c.low < 20 < c.high


def test_same_seed_same_interval() -> None:
    a, b = np.arange(100.0), np.arange(100.0) + 3
    c1 = change_of_statistic(
        a, b, 0.99, confidence=0.95, resamples=500, rng=np.random.default_rng(5)
    )
    c2 = change_of_statistic(
        a, b, 0.99, confidence=0.95, resamples=500, rng=np.random.default_rng(5)
    )
    assert c1 == c2


def test_mean_interval_uses_the_standard_error() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(10, 1, 10_000)
    c = change_of_statistic(a, a + 1, None, confidence=0.95, resamples=4000, rng=rng)
    half = (c.high - c.low) / 2
    assert half == pytest.approx(1.96 * np.sqrt(2) / 100, rel=0.1)


def test_run_level_change_has_an_interval_only_with_repeats() -> None:
    assert change_of_runs([100.0], [90.0], confidence=0.95).low is None
    c = change_of_runs([100.0, 102.0, 98.0], [90.0, 91.0, 89.0], confidence=0.95)
    assert c.diff == pytest.approx(-10.0)
    assert c.low is not None and c.high is not None and c.low < -10 < c.high < 0
