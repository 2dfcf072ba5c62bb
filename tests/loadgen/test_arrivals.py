"""Arrival processes: absolute seeded schedules whose achieved rate and IAT CV match the request."""

import itertools

import numpy as np
import pytest

from loadgen.arrivals import (
    Arrivals,
    Constant,
    Diurnal,
    Gamma,
    OnOff,
    PiecewiseLinear,
    Poisson,
    Ramp,
    RateModulated,
    achieved_stats,
    first_offsets_ns,
    parse_arrivals,
)

N = 20_000


def stats(arrivals: Arrivals, n: int = N, seed: int = 0) -> tuple[float, float]:
    return achieved_stats(first_offsets_ns(arrivals, seed, n))


@pytest.mark.parametrize(
    "arrivals, rate, cv, rate_tol, cv_tol",
    [
        (Constant(10.0), 10.0, 0.0, 1e-9, 1e-6),
        (Poisson(10.0), 10.0, 1.0, 0.03, 0.03),
        (Gamma(10.0, 2.0), 10.0, 2.0, 0.05, 0.1),
        (Gamma(50.0, 0.5), 50.0, 0.5, 0.02, 0.02),
        (Gamma.from_burstiness(10.0, 0.25), 10.0, 2.0, 0.05, 0.1),
    ],
)
def test_renewal_processes_achieve_the_requested_rate_and_cv(arrivals, rate, cv, rate_tol, cv_tol):
    achieved_rate, achieved_cv = stats(arrivals)
    assert abs(achieved_rate / rate - 1) <= rate_tol
    assert abs(achieved_cv - cv) <= cv_tol


def test_onoff_mean_rate_is_on_rate_times_the_on_fraction():
    onoff = OnOff()  # Azure code: 9/s for ~17 s, silent for ~43 s
    assert onoff.mean_rate == pytest.approx(9 * 17 / 60)
    # Whole ON/OFF cycles are the unit of averaging, so this needs many of them (~6,500).
    rate, cv = stats(onoff, n=1_000_000)
    assert abs(rate / onoff.mean_rate - 1) < 0.04
    assert 10 < cv < 16  # the trace's IAT CV is 13.2


def test_onoff_sends_nothing_during_off_periods():
    t = first_offsets_ns(OnOff(on_cv=1.0), 0, N) / 1e9
    gaps = np.diff(t)
    long_gaps = gaps[gaps > 5.0]  # OFF periods, as the trace analysis cut them
    assert 0.6 < long_gaps.sum() / (t[-1] - t[0]) < 0.8  # OFF 72% of the time in the trace
    assert abs(np.median(gaps[gaps < 5.0]) - np.log(2) / 9) < 0.01  # Poisson at 9/s while ON


def test_ramp_rate_rises_linearly_and_the_schedule_ends():
    t = first_offsets_ns(Ramp(10.0, 210.0, 100.0), 0, 10**6) / 1e9
    assert t[-1] <= 100.0 and abs(t.size / (100.0 * 110.0) - 1) < 0.03  # integral of the rate
    counts, _ = np.histogram(t, bins=4, range=(0, 100))
    expected = np.array([35, 85, 135, 185]) * 25  # rate at each quarter's midpoint
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))  # 4 sigma, Poisson counts


def test_ramp_over_a_constant_base_is_evenly_spaced_at_a_flat_rate():
    t = first_offsets_ns(Ramp(5.0, 5.0, 10.0, cv=0.0), 0, 1000) / 1e9
    assert np.allclose(np.diff(t), 0.2) and t.size == 51


def test_rate_modulation_keeps_the_mean_rate_and_follows_the_profile():
    modulated = RateModulated(Poisson(20.0), Diurnal(60.0, 1.9, 0.37), step_s=0.01)
    t = first_offsets_ns(modulated, 0, 60_000) / 1e9
    whole = t[t < 60.0 * int(t[-1] // 60)]  # whole periods only
    assert abs(whole.size / (60.0 * int(t[-1] // 60)) / 20.0 - 1) < 0.03
    phase = np.mod(whole, 60.0)
    trough = np.mean((phase < 3) | (phase > 57))  # 10% of the period around the trough
    peak = np.mean(np.abs(phase - 30) < 3)
    assert peak / trough > 3.0  # 1.9 / 0.37 = 5.1 at the extremes


def test_rate_modulation_by_time_change_keeps_a_bursty_base_bursty():
    # Over a flat profile, a time change is the identity: gamma cv=2 stays cv=2.
    flat = RateModulated(Gamma(10.0, 2.0), PiecewiseLinear(((0.0, 1.0), (1.0, 1.0))))
    plain = first_offsets_ns(Gamma(10.0, 2.0), 0, N)
    assert np.max(np.abs(first_offsets_ns(flat, 0, N) - plain)) <= 1  # ns rounding only
    rate, cv = stats(RateModulated(Gamma(10.0, 2.0), Diurnal(600.0, 1.9, 0.37), step_s=0.05))
    assert cv > 1.8  # thinning would have pulled this towards 1


def test_a_plain_callable_works_as_a_multiplier():
    doubled = RateModulated(Constant(5.0), lambda t: 2.0)
    assert np.allclose(np.diff(first_offsets_ns(doubled, 0, 100)), 1e8, atol=1)


def test_schedules_are_absolute_and_do_not_drift():
    # Offset k of a constant schedule is exactly round(k / rate) however far out it is.
    t = first_offsets_ns(Constant(3.0), 0, 300_001)
    assert t[300_000] == 100_000 * 10**9 and t[3] == 10**9 and t[1] == 333_333_333
    poisson = first_offsets_ns(Poisson(1000.0), 0, 200_000)
    assert np.all(np.diff(poisson) >= 0) and poisson[0] == 0


@pytest.mark.parametrize(
    "arrivals",
    [
        Constant(7.0),
        Poisson(7.0),
        Gamma(7.0, 3.0),
        OnOff(),
        Ramp(0.0, 7.0, 600.0),
        RateModulated(Poisson(7.0), Diurnal(100.0)),
    ],
)
def test_same_seed_same_schedule_other_seed_other_schedule(arrivals):
    a, b = first_offsets_ns(arrivals, 5, 5000), first_offsets_ns(arrivals, 5, 5000)
    assert np.array_equal(a, b) and np.all(np.diff(a) >= 0) and a[0] == 0
    if not isinstance(arrivals, Constant):
        assert not np.array_equal(a, first_offsets_ns(arrivals, 6, 5000))


def test_offsets_are_lazy_python_ints():
    it = Poisson(1.0).offsets_ns(np.random.default_rng(0))
    head = list(itertools.islice(it, 3))
    assert all(type(x) is int for x in head) and head[0] == 0


@pytest.mark.parametrize(
    "kind, burstiness, expected",
    [
        ("poisson", None, Poisson(4.0)),
        ("poisson", 1.0, Poisson(4.0)),
        ("poisson", 0.25, Gamma(4.0, 2.0)),
        ("constant", None, Constant(4.0)),
        ("gamma:cv=2.1", None, Gamma(4.0, 2.1)),
        ("gamma:shape=0.25", None, Gamma(4.0, 2.0)),
        ("gamma", 4.0, Gamma(4.0, 0.5)),
        ("onoff", None, OnOff(on_rate=4.0 * 60 / 17)),
        ("onoff:on_rate=9,on_mean=17,off_mean=43", None, OnOff()),
        ("ramp:start=1,end=10,duration=60", None, Ramp(1.0, 10.0, 60.0)),
        ("ramp:duration=60", None, Ramp(0.0, 4.0, 60.0)),
    ],
)
def test_parse_arrivals_builds_the_named_process(kind, burstiness, expected):
    assert parse_arrivals(kind, 4.0, burstiness=burstiness) == expected


def test_parse_arrivals_diurnal_is_poisson_at_the_mean_rate_times_the_profile():
    arrivals = parse_arrivals("diurnal:period=600,peak=1.9,trough=0.37", 4.0)
    assert isinstance(arrivals, RateModulated) and arrivals.base == Poisson(4.0)
    assert arrivals.multiplier == Diurnal(600.0, 1.9, 0.37)


@pytest.mark.parametrize(
    "kind, rate, burstiness",
    [
        ("poisson", 0.0, None),
        ("poisson", -1.0, None),
        ("gamma", 4.0, None),
        ("gamma:cv=0", 4.0, None),
        ("burst", 4.0, None),
        ("poisson:cv=2", 4.0, None),
        ("ramp:start=1", 4.0, None),
        ("diurnal:peak=0.5", 4.0, None),
        ("poisson", 4.0, 0.0),
        ("gamma:cv=x", 4.0, None),
    ],
)
def test_parse_arrivals_rejects_with_one_line_naming_the_accepted_forms(kind, rate, burstiness):
    with pytest.raises(ValueError) as err:
        parse_arrivals(kind, rate, burstiness=burstiness)
    assert "\n" not in str(err.value) and "accepted: poisson | constant" in str(err.value)


def test_achieved_stats_needs_a_few_offsets():
    assert achieved_stats([0, 10**9, 2 * 10**9]) == (1.0, 0.0)
    with pytest.raises(ValueError):
        achieved_stats([0, 1])
