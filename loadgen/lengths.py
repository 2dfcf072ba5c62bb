"""Token-length distributions: what size each prompt and each answer should be.

Every distribution draws from a caller-supplied ``numpy.random.Generator`` (so a run is
reproducible from its seed) and returns int64 token counts, rounded and clamped to >= 1.
``parse_length`` turns the CLI's one-line specs into one of these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Clamped",
    "Fixed",
    "LengthDist",
    "LogNormal",
    "Normal",
    "QuantileTable",
    "Uniform",
    "parse_length",
]

LENGTH_FORMS = (
    "accepted: N | fixed:N | uniform:min=A,max=B | normal:mean=M,std=S | "
    "lognormal:mu=U,sigma=S | lognormal:median=M,sigma=S, each optionally with ,min=A,max=B"
)


@runtime_checkable
class LengthDist(Protocol):
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` token counts (int64, each >= 1)."""
        ...

    def describe(self) -> str:
        """One short line for logs and reports, in the parse_length syntax where possible."""
        ...


def _to_tokens(x: np.ndarray) -> np.ndarray:
    # Round half to even (numpy's rint) is fine: the bias is far below a token.
    return np.maximum(np.rint(x), 1).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Fixed:
    tokens: int

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise ValueError(f"fixed length must be >= 1 token, got {self.tokens}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.tokens, dtype=np.int64)

    def describe(self) -> str:
        return f"fixed:{self.tokens}"


@dataclass(frozen=True, slots=True)
class Uniform:
    """Integers uniform on [min_tokens, max_tokens], both ends included."""

    min_tokens: int
    max_tokens: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError(
                f"uniform needs 1 <= min <= max, got min={self.min_tokens}, max={self.max_tokens}"
            )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.min_tokens, self.max_tokens, size=n, endpoint=True).astype(
            np.int64
        )

    def describe(self) -> str:
        return f"uniform:min={self.min_tokens},max={self.max_tokens}"


@dataclass(frozen=True, slots=True)
class Normal:
    mean: float
    std: float

    def __post_init__(self) -> None:
        if self.std < 0 or not math.isfinite(self.mean) or not math.isfinite(self.std):
            raise ValueError(f"normal needs a finite mean and std >= 0, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _to_tokens(rng.normal(self.mean, self.std, size=n))

    def describe(self) -> str:
        return f"normal:mean={self.mean:g},std={self.std:g}"


@dataclass(frozen=True, slots=True)
class LogNormal:
    """exp(N(mu, sigma)) tokens: mu and sigma are the mean and std of ln(tokens)."""

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        if self.sigma < 0 or not math.isfinite(self.mu) or not math.isfinite(self.sigma):
            raise ValueError(f"lognormal needs a finite mu and sigma >= 0, got {self}")

    @classmethod
    def from_median(cls, median: float, sigma: float) -> LogNormal:
        if median <= 0:
            raise ValueError(f"lognormal median must be > 0, got {median}")
        return cls(math.log(median), sigma)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _to_tokens(rng.lognormal(self.mu, self.sigma, size=n))

    def describe(self) -> str:
        return f"lognormal:mu={self.mu:g},sigma={self.sigma:g}"


@dataclass(frozen=True, slots=True)
class Clamped:
    """Any distribution with its draws clipped to [min_tokens, max_tokens]."""

    inner: LengthDist
    min_tokens: int = 1
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.min_tokens < 1 or (
            self.max_tokens is not None and self.max_tokens < self.min_tokens
        ):
            raise ValueError(
                f"clamp needs 1 <= min <= max, got min={self.min_tokens}, max={self.max_tokens}"
            )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.clip(self.inner.sample(rng, n), self.min_tokens, self.max_tokens)

    def describe(self) -> str:
        clamp = f",min={self.min_tokens}" if self.min_tokens > 1 else ""
        if self.max_tokens is not None:
            clamp += f",max={self.max_tokens}"
        return self.inner.describe() + clamp


@dataclass(frozen=True, slots=True)
class QuantileTable:
    """An inverse CDF given as token counts at quantile points (percent, 0 and 100 included).

    Between points the inverse CDF is linear in log(tokens); draws are rounded and clamped
    to >= 1. This is how WORKLOADS.md §6(a) states its presets, and 16 points fit the traces
    within KS 0.07 where one lognormal manages only 0.07-0.22.
    """

    quantiles_pct: tuple[float, ...]
    tokens: tuple[float, ...]

    def __post_init__(self) -> None:
        q, v = self.quantiles_pct, self.tokens
        if len(q) != len(v) or len(q) < 2:
            raise ValueError("a quantile table needs as many token values as quantiles (>= 2)")
        if q[0] != 0 or q[-1] != 100 or any(b <= a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError("quantiles must rise strictly from 0 to 100 (percent)")
        if v[0] <= 0 or any(b < a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("token values must be > 0 and non-decreasing")

    @classmethod
    def of(cls, quantiles_pct: Sequence[float], tokens: Sequence[float]) -> QuantileTable:
        return cls(tuple(float(x) for x in quantiles_pct), tuple(float(x) for x in tokens))

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        """Continuous inverse CDF (before rounding) at probabilities u in [0, 1]."""
        q = np.asarray(self.quantiles_pct) / 100.0
        return np.exp(np.interp(u, q, np.log(self.tokens)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _to_tokens(self._ppf(rng.random(n)))

    def quantile(self, pct: float) -> int:
        """The token count at percentile ``pct`` (0..100), as sampling would round it."""
        return int(_to_tokens(self._ppf(np.array([pct / 100.0])))[0])

    def cdf(self, tokens: np.ndarray | float) -> np.ndarray:
        """P(draw <= tokens) of the rounded distribution that ``sample`` draws from.

        A draw is k when the continuous value lies in [k - 0.5, k + 0.5), so the CDF at k is
        the continuous CDF at k + 0.5 (floored for non-integers). Used by the KS tests.
        """
        k = np.floor(np.asarray(tokens, dtype=np.float64))
        x = np.log(np.maximum(k + 0.5, 1e-300))
        logv = np.log(self.tokens)
        q = np.asarray(self.quantiles_pct) / 100.0
        # np.interp needs strictly increasing x for a well-defined inverse; flat runs of the
        # table are atoms, and taking the right end of each run gives the right-continuous CDF.
        keep = np.append(logv[1:] != logv[:-1], True)
        out = np.interp(x, logv[keep], q[keep], left=0.0, right=1.0)
        return np.where(k >= 1, out, 0.0)

    def describe(self) -> str:
        return f"quantiles p50={self.quantile(50)},p90={self.quantile(90)},p99={self.quantile(99)}"


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError from None  # no message: the caller prints the accepted forms
    if not math.isfinite(value):
        raise ValueError
    return value


def _parse_params(body: str) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in body.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError
        params[key.strip()] = _number(value)
    return params


def _clamp(dist: LengthDist, params: dict[str, float]) -> LengthDist:
    lo, hi = params.pop("min", None), params.pop("max", None)
    if lo is None and hi is None:
        return dist
    return Clamped(dist, int(lo) if lo is not None else 1, int(hi) if hi is not None else None)


def _build(kind: str, params: dict[str, float]) -> LengthDist:
    if kind == "fixed":
        return Fixed(int(params.pop("n")))
    if kind == "uniform":
        return Uniform(int(params.pop("min")), int(params.pop("max")))
    if kind == "normal":
        return _clamp(Normal(params.pop("mean"), params.pop("std")), params)
    if kind == "lognormal":
        sigma = params.pop("sigma")
        if "median" in params:
            dist: LengthDist = LogNormal.from_median(params.pop("median"), sigma)
        else:
            dist = LogNormal(params.pop("mu"), sigma)
        return _clamp(dist, params)
    raise ValueError


def parse_length(spec: str) -> LengthDist:
    """``"128"``, ``"fixed:128"``, ``"uniform:min=64,max=256"``, ``"normal:mean=512,std=64"``,
    ``"lognormal:mu=6.6,sigma=0.98"`` or ``"lognormal:median=735,sigma=0.98"``; ``min=``/``max=``
    clamps may follow on any of them. Raises ValueError with the accepted forms."""
    text = spec.strip().lower()
    try:
        kind, sep, body = text.partition(":")
        if not sep:
            return Fixed(int(_number(text)))
        if kind == "fixed" and "=" not in body:
            return Fixed(int(_number(body)))
        params = _parse_params(body)
        if kind == "fixed" and "n" not in params and "tokens" in params:
            params["n"] = params.pop("tokens")
        dist = _build(kind, params)
        if kind in ("fixed", "uniform"):
            dist = _clamp(dist, params)
        if params:
            raise ValueError
        return dist
    except (ValueError, KeyError) as err:
        # Constructors say what is wrong with a value; parse failures carry no message.
        hint = f" ({err})" if isinstance(err, ValueError) and str(err) else ""
        raise ValueError(f"bad length spec {spec!r}{hint}; {LENGTH_FORMS}") from None
