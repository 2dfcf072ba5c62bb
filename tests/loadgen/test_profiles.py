"""Rate profiles: a diurnal cycle with mean 1 and exact extremes; piecewise-linear profiles."""

import numpy as np
import pytest

from loadgen.profiles import Diurnal, PiecewiseLinear


def test_diurnal_profile_has_mean_one_and_the_requested_peak_and_trough():
    for peak, trough in [(1.9, 0.37), (3.5, 0.09)]:
        profile = Diurnal(600.0, peak, trough)
        m = profile.values(np.linspace(0, 600, 60_001)[:-1])
        assert m.mean() == pytest.approx(1.0, abs=1e-6)
        assert m.max() == pytest.approx(peak, rel=1e-6) and m.min() == pytest.approx(trough)
        assert profile(0.0) == pytest.approx(trough) and profile(300.0) == pytest.approx(peak)


def test_diurnal_rejects_a_trough_above_the_mean():
    with pytest.raises(ValueError, match="trough < 1 < peak"):
        Diurnal(600.0, 1.9, 1.2)
    assert Diurnal(600.0, 1.0, 1.0)(123.0) == 1.0  # flat is allowed


def test_piecewise_linear_interpolates_holds_ends_and_repeats():
    ramp = PiecewiseLinear(((0.0, 0.0), (10.0, 2.0)))
    assert ramp(5.0) == 1.0 and ramp(50.0) == 2.0 and ramp(-1.0) == 0.0
    daily = PiecewiseLinear(((0.0, 1.0), (50.0, 3.0), (100.0, 1.0)), period_s=100.0)
    assert np.allclose(daily.values(np.array([25.0, 125.0, 250.0])), [2.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        PiecewiseLinear(((1.0, 1.0), (0.0, 1.0)))
