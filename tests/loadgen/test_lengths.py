"""Length distributions: seeded int64 draws >= 1, and the CLI's one-line specs."""

import math

import numpy as np
import pytest

from loadgen.lengths import (
    Clamped,
    Fixed,
    LengthDist,
    LogNormal,
    Normal,
    QuantileTable,
    Uniform,
    parse_length,
)


def draw(dist: LengthDist, n: int = 20_000, seed: int = 0) -> np.ndarray:
    return dist.sample(np.random.default_rng(seed), n)


@pytest.mark.parametrize(
    "dist",
    [
        Fixed(128),
        Uniform(64, 256),
        Normal(512, 64),
        LogNormal(6.6, 0.98),
        Normal(2, 50),
        QuantileTable.of([0, 50, 100], [1, 10, 1000]),
    ],
)
def test_every_distribution_draws_int64_of_at_least_one_token(dist):
    x = draw(dist)
    assert x.dtype == np.int64 and x.shape == (20_000,) and x.min() >= 1
    assert isinstance(dist, LengthDist) and dist.describe()


def test_the_same_seed_draws_the_same_lengths_and_another_seed_does_not():
    dist = LogNormal(6.6, 0.98)
    assert np.array_equal(draw(dist, seed=3), draw(dist, seed=3))
    assert not np.array_equal(draw(dist, seed=3), draw(dist, seed=4))


def test_moments_match_the_parameters():
    assert np.all(draw(Fixed(128)) == 128)
    u = draw(Uniform(64, 256))
    assert u.min() == 64 and u.max() == 256 and abs(u.mean() - 160) < 2
    n = draw(Normal(512, 64))
    assert abs(n.mean() - 512) < 2 and abs(n.std() - 64) < 2
    ln = draw(LogNormal(6.6, 0.98))
    assert abs(np.median(ln) - math.exp(6.6)) < 0.05 * math.exp(6.6)
    assert abs(np.log(ln).std() - 0.98) < 0.02


def test_quantile_table_interpolates_in_log_space():
    table = QuantileTable.of([0, 50, 100], [10, 100, 1000])
    assert table.quantile(0) == 10 and table.quantile(50) == 100 and table.quantile(100) == 1000
    assert table.quantile(25) == round(math.sqrt(10 * 100))  # geometric, not arithmetic, mean
    x = draw(table)
    assert abs(np.mean(x <= 100) - 0.5) < 0.015 and x.min() >= 10 and x.max() <= 1000


def test_quantile_table_cdf_is_that_of_the_rounded_draws():
    table = QuantileTable.of([0, 5, 10, 100], [6, 6, 7, 20])  # an atom at 6
    x = draw(table, 50_000)
    for k in (5, 6, 7, 12, 20):
        assert abs(np.mean(x <= k) - float(table.cdf(k))) < 0.01
    assert float(table.cdf(5)) == 0.0 and float(table.cdf(20)) == 1.0


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("128", Fixed(128)),
        ("fixed:128", Fixed(128)),
        ("uniform:min=64,max=256", Uniform(64, 256)),
        ("normal:mean=512,std=64", Normal(512, 64)),
        ("lognormal:mu=6.6,sigma=0.98", LogNormal(6.6, 0.98)),
        ("lognormal:median=1000,sigma=1", LogNormal(math.log(1000), 1.0)),
        ("normal:mean=512,std=64,min=256,max=1024", Clamped(Normal(512, 64), 256, 1024)),
        (" LogNormal:mu=6.6, sigma=0.98, max=4096 ", Clamped(LogNormal(6.6, 0.98), 1, 4096)),
    ],
)
def test_parse_length_accepts(spec, expected):
    assert parse_length(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "0",
        "-5",
        "abc",
        "fixed:",
        "uniform:min=64",
        "uniform:min=300,max=200",
        "normal:mean=512",
        "normal:mean=512,std=-1",
        "lognormal:sigma=1",
        "poisson:lam=3",
        "normal:mean=512,std=64,bogus=1",
        "normal:mean=x,std=1",
        "normal:mean=512,std=64,min=0",
        "lognormal:median=0,sigma=1",
        "normal:mean=nan,std=1",
    ],
)
def test_parse_length_rejects_with_one_line_naming_the_accepted_forms(spec):
    with pytest.raises(ValueError) as err:
        parse_length(spec)
    message = str(err.value)
    assert "\n" not in message and "accepted: N | fixed:N | uniform:min=A,max=B" in message


def test_clamps_apply_to_draws():
    x = draw(parse_length("lognormal:mu=6.6,sigma=2,min=100,max=2000"))
    assert x.min() == 100 and x.max() == 2000


@pytest.mark.parametrize(
    "spec",
    [
        "fixed:128",
        "uniform:min=64,max=256",
        "normal:mean=512,std=64,min=256,max=1024",
        "lognormal:mu=6.6,sigma=0.98,max=4096",
    ],
)
def test_describe_is_a_spec_that_parses_back_to_the_same_distribution(spec):
    dist = parse_length(spec)
    assert dist.describe() == spec and parse_length(dist.describe()) == dist
