"""When requests are sent: open-loop arrival processes as absolute, seeded schedules.

An arrival process yields the *intended* send offsets in ns from the run start, lazily and
non-decreasing. Offsets are cumulative sums of seeded inter-arrival draws kept in float64
seconds and converted to ns once per offset, never by adding rounded ns gaps or sleeping
between sends, so the schedule cannot drift: a late runner falls behind the schedule (which
it records as schedule lag) instead of shifting it. Every process sends its first request at
offset 0.

Closed loop (a fixed number of users, with think time) is not a schedule: the runner drives
it, and think times come from ``loadgen.sessions.ThinkTime``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from loadgen.profiles import Diurnal, PiecewiseLinear, VectorProfile

__all__ = [
    "Arrivals",
    "Diurnal",
    "PiecewiseLinear",
    "Constant",
    "Gamma",
    "OnOff",
    "Poisson",
    "Ramp",
    "RateModulated",
    "achieved_stats",
    "first_offsets_ns",
    "parse_arrivals",
]

_BATCH = 4096  # draws per numpy call: large enough to be cheap, small enough to stay lazy

ARRIVAL_FORMS = (
    "accepted: poisson | constant | gamma:cv=C | gamma:shape=K | "
    "onoff[:on_rate=9,on_mean=17,off_mean=43,on_cv=2.2] | ramp:start=A,end=B,duration=S[,cv=C] | "
    "diurnal:period=S,peak=P,trough=T[,cv=C]"
)


@runtime_checkable
class Arrivals(Protocol):
    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        """Absolute intended send offsets (ns from the run start), non-decreasing."""
        ...


def _to_ns(batches: Iterable[np.ndarray]) -> Iterator[int]:
    for batch_s in batches:
        yield from np.rint(batch_s * 1e9).astype(np.int64).tolist()


def _renewal(rng: np.random.Generator, draw: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """Offsets (float s) of a renewal process with one arrival at 0 and IATs from ``draw``."""
    start_s = 0.0
    while True:
        cum = np.cumsum(draw(_BATCH))
        yield start_s + np.concatenate(([0.0], cum[:-1]))
        start_s += float(cum[-1])


def _gamma_draw(rng: np.random.Generator, mean: float, cv: float) -> Callable[[int], np.ndarray]:
    """A sampler of positive values with the given mean and CV (0: fixed, 1: exponential)."""
    if cv == 0:
        return lambda n: np.full(n, mean)
    if cv == 1:
        return lambda n: rng.exponential(mean, n)
    shape = 1.0 / (cv * cv)
    return lambda n: rng.gamma(shape, mean / shape, n)


def _check_rate(rate: float, what: str = "rate") -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{what} must be a positive number of requests per second, got {rate}")


@dataclass(frozen=True, slots=True)
class Constant:
    """Evenly spaced sends: offset k is exactly k / rate."""

    rate: float

    def __post_init__(self) -> None:
        _check_rate(self.rate)

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        k = 0
        while True:
            yield np.arange(k, k + _BATCH, dtype=np.float64) / self.rate
            k += _BATCH

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return f"constant {self.rate:g}/s"


@dataclass(frozen=True, slots=True)
class Poisson:
    """Exponential inter-arrivals (IAT CV 1): Azure conversation and Mooncake traffic."""

    rate: float

    def __post_init__(self) -> None:
        _check_rate(self.rate)

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        return _renewal(rng, _gamma_draw(rng, 1.0 / self.rate, 1.0))

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return f"poisson {self.rate:g}/s"


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma inter-arrivals with coefficient of variation ``cv``: shape k = 1/cv^2,
    scale = 1/(rate*k). vLLM's ``--burstiness`` is k (see ``from_burstiness``)."""

    rate: float
    cv: float

    def __post_init__(self) -> None:
        _check_rate(self.rate)
        if not (self.cv > 0 and math.isfinite(self.cv)):
            raise ValueError(f"gamma cv must be > 0 (1 is poisson), got {self.cv}")

    @classmethod
    def from_burstiness(cls, rate: float, burstiness: float) -> Gamma:
        if not burstiness > 0:
            raise ValueError(f"burstiness (gamma shape) must be > 0, got {burstiness}")
        return cls(rate, 1.0 / math.sqrt(burstiness))

    @property
    def shape(self) -> float:
        return 1.0 / (self.cv * self.cv)

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        return _renewal(rng, _gamma_draw(rng, 1.0 / self.rate, self.cv))

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return f"gamma {self.rate:g}/s cv={self.cv:g}"


@dataclass(frozen=True, slots=True)
class OnOff:
    """ON/OFF bursts, the Azure 2023 code trace's shape (WORKLOADS.md §4): ON periods (mean
    17 s, gamma with CV ``on_duration_cv``) carry gamma arrivals at ``on_rate`` with CV
    ``on_cv``; OFF periods (mean 43 s, exponential by default) carry none.

    The ON-period arrivals are one renewal process on a clock that only runs while ON, so
    the long-run mean rate is exactly on_rate * on_mean / (on_mean + off_mean).
    """

    on_mean_s: float = 17.0
    off_mean_s: float = 43.0
    on_rate: float = 9.0
    on_cv: float = 2.2
    on_duration_cv: float = 0.5  # ON lengths are tighter than OFF (median 15.5 s of mean 17)
    off_duration_cv: float = 1.0

    def __post_init__(self) -> None:
        _check_rate(self.on_rate, "on_rate")
        if not (self.on_mean_s > 0 and self.off_mean_s >= 0):
            raise ValueError("onoff needs on_mean > 0 and off_mean >= 0 seconds")
        if min(self.on_cv, self.on_duration_cv, self.off_duration_cv) < 0:
            raise ValueError("onoff CVs must be >= 0")

    @property
    def mean_rate(self) -> float:
        return self.on_rate * self.on_mean_s / (self.on_mean_s + self.off_mean_s)

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        on_draw = _gamma_draw(rng, self.on_mean_s, self.on_duration_cv)
        off_draw = _gamma_draw(rng, self.off_mean_s, self.off_duration_cv)
        # ON periods so far: where each ends on the ON clock, and the OFF time before each.
        on_end = np.empty(0)
        off_before = np.empty(0)
        clock_on, clock_off = 0.0, 0.0
        for u in _renewal(rng, _gamma_draw(rng, 1.0 / self.on_rate, self.on_cv)):
            while on_end.size == 0 or on_end[-1] <= u[-1]:
                ons, offs = on_draw(64), off_draw(64)
                ends = clock_on + np.cumsum(ons)
                befores = clock_off + np.concatenate(([0.0], np.cumsum(offs[:-1])))
                on_end = np.concatenate((on_end, ends))
                off_before = np.concatenate((off_before, befores))
                clock_on, clock_off = float(ends[-1]), float(befores[-1] + offs[-1])
            period = np.searchsorted(on_end, u, side="right")
            yield u + off_before[period]
            on_end, off_before = on_end[period[-1] :], off_before[period[-1] :]

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return (
            f"onoff on_rate={self.on_rate:g}/s on={self.on_mean_s:g}s off={self.off_mean_s:g}s "
            f"on_cv={self.on_cv:g} (mean {self.mean_rate:.3g}/s)"
        )


@dataclass(frozen=True, slots=True)
class Ramp:
    """Rate rising (or falling) linearly from ``start_rate`` to ``end_rate`` over
    ``duration_s``, then the schedule ends. Built by time-rescaling a unit-rate renewal
    process (CV ``cv``: 1 Poisson, 0 evenly spaced) through the inverse of the cumulative
    intensity L(t) = start*t + (end-start)*t^2/(2*duration), so the local IAT shape holds."""

    start_rate: float
    end_rate: float
    duration_s: float
    cv: float = 1.0

    def __post_init__(self) -> None:
        if min(self.start_rate, self.end_rate) < 0 or max(self.start_rate, self.end_rate) <= 0:
            raise ValueError("ramp rates must be >= 0 with at least one > 0")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)) or self.cv < 0:
            raise ValueError("ramp needs duration > 0 seconds and cv >= 0")

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        a = (self.end_rate - self.start_rate) / (2.0 * self.duration_s)
        b = self.start_rate
        total = b * self.duration_s + a * self.duration_s**2
        for s in _renewal(rng, _gamma_draw(rng, 1.0, self.cv)):
            s = s[s <= total]
            # t = L^-1(s), the root of a*t^2 + b*t - s = 0 written to stay stable as a -> 0.
            den = b + np.sqrt(np.maximum(b * b + 4.0 * a * s, 0.0))
            yield np.divide(2.0 * s, den, out=np.zeros_like(s), where=den > 0)
            if s.size < _BATCH:
                return

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return f"ramp {self.start_rate:g}->{self.end_rate:g}/s over {self.duration_s:g}s"


def _multiplier_values(multiplier: Callable[[float], float], t_s: np.ndarray) -> np.ndarray:
    if isinstance(multiplier, VectorProfile):
        out = np.asarray(multiplier.values(t_s), dtype=np.float64)
    else:
        out = np.fromiter((multiplier(float(x)) for x in t_s), np.float64, t_s.size)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("a rate multiplier must be finite and >= 0 everywhere")
    return out


@dataclass(frozen=True, slots=True)
class RateModulated:
    """Any process above, its rate multiplied by ``multiplier(t)`` (e.g. ``Diurnal``).

    Done by a time change, not thinning: the base runs on an operational clock
    U(t) = integral of the multiplier, and its arrival at U = u is sent at t = U^-1(u).
    Locally the base's inter-arrival shape is kept, just rescaled (thinning would push a
    bursty base towards Poisson). The multiplier is taken constant over cells of ``step_s``
    (evaluated at cell midpoints), so U is piecewise linear and inverted exactly.
    """

    base: Constant | Poisson | Gamma | OnOff | Ramp | RateModulated
    multiplier: Callable[[float], float]
    step_s: float = 0.1

    def __post_init__(self) -> None:
        if not self.step_s > 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s}")

    def offsets_s(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        cells = 4096
        t_nodes = np.zeros(1)  # real-time grid nodes not yet consumed
        u_nodes = np.zeros(1)  # U at those nodes
        rates = np.empty(0)  # multiplier in each cell between consecutive nodes
        for u in self.base.offsets_s(rng):
            idle_chunks = 0
            while u_nodes[-1] <= u[-1]:
                t0 = t_nodes[-1]
                mids = t0 + (np.arange(cells) + 0.5) * self.step_s
                m = _multiplier_values(self.multiplier, mids)
                idle_chunks = idle_chunks + 1 if not np.any(m > 0) else 0
                if idle_chunks * cells * self.step_s > 1e7:  # ~4 months of zero rate
                    raise ValueError("the rate multiplier stays at zero; no request can be sent")
                t_nodes = np.concatenate((t_nodes, t0 + np.arange(1, cells + 1) * self.step_s))
                u_nodes = np.concatenate((u_nodes, u_nodes[-1] + np.cumsum(m * self.step_s)))
                rates = np.concatenate((rates, m))
            # Last node at or below u: its cell has rate > 0 because U rises within it.
            cell = np.searchsorted(u_nodes, u, side="right") - 1
            yield t_nodes[cell] + (u - u_nodes[cell]) / rates[cell]
            keep = cell[-1]
            t_nodes, u_nodes, rates = t_nodes[keep:], u_nodes[keep:], rates[keep:]

    def offsets_ns(self, rng: np.random.Generator) -> Iterator[int]:
        return _to_ns(self.offsets_s(rng))

    def describe(self) -> str:
        return f"{self.base.describe()} x {self.multiplier!r}"


def first_offsets_ns(arrivals: Arrivals, seed: int, n: int) -> np.ndarray:
    """The first ``n`` offsets (fewer if the schedule ends) for ``seed``, as int64."""
    it = arrivals.offsets_ns(np.random.default_rng(seed))
    return np.fromiter(itertools.islice(it, n), dtype=np.int64)


def achieved_stats(offsets_ns: Iterable[int] | np.ndarray) -> tuple[float, float]:
    """(requests per second, coefficient of variation of the inter-arrival times)."""
    t = np.asarray(list(offsets_ns) if not isinstance(offsets_ns, np.ndarray) else offsets_ns)
    if t.size < 3 or t[-1] <= t[0]:
        raise ValueError("achieved_stats needs at least 3 offsets spanning some time")
    iat = np.diff(t.astype(np.float64))
    return (t.size - 1) / ((t[-1] - t[0]) / 1e9), float(iat.std() / iat.mean())


def _options(body: str) -> dict[str, float]:
    opts: dict[str, float] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        opts[key.strip().lower()] = number
    return opts


def _base(rate: float, cv: float | None) -> Poisson | Gamma:
    return Poisson(rate) if cv is None or cv == 1 else Gamma(rate, cv)


def _build(kind: str, rate: float, opts: dict[str, float], burst_cv: float | None) -> Arrivals:
    if kind == "poisson":
        return _base(rate, burst_cv)
    if kind == "constant":
        return Constant(rate)
    if kind == "gamma":
        if "shape" in opts:
            return Gamma.from_burstiness(rate, opts.pop("shape"))
        cv = opts.pop("cv", burst_cv)
        if cv is None:
            raise ValueError("gamma needs cv= (or shape=, or --burstiness)")
        return Gamma(rate, cv)
    if kind == "onoff":
        on_s, off_s = opts.pop("on_mean", 17.0), opts.pop("off_mean", 43.0)
        # `rate` is the long-run mean; an explicit on_rate sets the burst rate instead.
        on_rate = opts.pop("on_rate", rate * (on_s + off_s) / on_s)
        return OnOff(on_s, off_s, on_rate, opts.pop("on_cv", 2.2))
    if kind == "ramp":
        end = opts.pop("end", rate)
        return Ramp(opts.pop("start", 0.0), end, opts.pop("duration"), opts.pop("cv", 1.0))
    if kind == "diurnal":
        period_s = opts.pop("period", 86400.0)
        profile = Diurnal(period_s, opts.pop("peak", 1.9), opts.pop("trough", 0.37))
        base = _base(rate, opts.pop("cv", burst_cv))
        return RateModulated(base, profile, step_s=min(1.0, period_s / 10_000))
    raise ValueError


def parse_arrivals(kind: str, rate: float, *, burstiness: float | None = None) -> Arrivals:
    """An arrival process from a CLI string and the mean ``rate`` (requests/s).

    ``poisson`` (default shape; with ``burstiness`` k != 1 it becomes gamma with CV 1/sqrt(k),
    as vLLM's --burstiness), ``constant``, ``gamma:cv=2.1`` or ``gamma:shape=0.23``,
    ``onoff`` (Azure code: mean ``rate`` reached by scaling on_rate unless on_rate= is given),
    ``ramp:start=1,end=10,duration=60`` (end defaults to ``rate``, start to 0),
    ``diurnal:period=600,peak=1.9,trough=0.37`` (poisson, or gamma with cv=, at mean ``rate``).
    Raises ValueError with the accepted forms.
    """
    name, _, body = kind.strip().lower().partition(":")
    try:
        if burstiness is not None and not burstiness > 0:
            raise ValueError(f"burstiness (gamma shape) must be > 0, got {burstiness}")
        burst_cv = None if burstiness is None else 1.0 / math.sqrt(burstiness)
        needs_rate = name not in ("ramp",) and not (name == "onoff" and "on_rate" in body)
        if needs_rate:
            _check_rate(rate)
        opts = _options(body)
        arrivals = _build(name, rate, opts, burst_cv)
        if opts:
            raise ValueError(f"unknown option(s) {', '.join(opts)} for {name}")
        return arrivals
    except (ValueError, KeyError) as err:
        hint = f" ({err})" if isinstance(err, ValueError) and str(err) else ""
        raise ValueError(f"bad arrival process {kind!r}{hint}; {ARRIVAL_FORMS}") from None
