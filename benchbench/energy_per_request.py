"""Energy per request: the window's GPU energy attributed to the requests that were in flight
when it was spent, by a conserving rule, with prefill and decode apart.

The rule (the README's Energy section says the same):

1. The window is cut at every energy or power sample inside it; each interval's energy comes
   from the samples (counter differences, else integrated power), scaled so the intervals sum
   to the run's window energy (benchbench.energy's gross figure, the one the verdict judges).
2. Each interval's energy is split among the requests in flight in it in proportion to the
   time each spent in flight there: one request-second costs the same for every request of
   an interval (a request in flight holds a batch slot; how much compute it needed there is
   not observable from outside the server).
3. A request is in flight from its send to its completion (stream closed, else last token):
   prefill from the send to its first token, decode from there to its completion. A request
   with no token is in prefill throughout.
4. Intervals with no request in flight (gaps in an open-loop schedule) are spent on nobody:
   their energy (`gap_j`) is shared among the window's requests in proportion to the energy
   they already got, so the parts still sum to the window; it is reported on its own.
5. Every request in the window takes part (warm-up and failed ones too: the GPUs worked for
   them); the distributions cover the measured ok requests, and the others' share is said.

So per-request energies sum to the window energy up to float rounding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from benchbench.energy import compute_energy
from benchbench.energy_readings import counter_refresh_s, reset_corrected
from benchbench.energy_samples import DeviceSeries, series_from_rows
from benchbench.window import load_window

__all__ = ["EnergyPerRequest", "Phases", "attribute", "energy_per_request", "interval_energy"]

RULE = (
    "each sample interval's energy split among the requests in flight in proportion to their "
    "time in flight there; prefill = send -> first token, decode = first token -> completion; "
    "intervals with nothing in flight shared in proportion to the energy already attributed"
)
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class Phases:
    """Each request's energy (J) by phase, in the order of the spans given to attribute()."""

    prefill_j: np.ndarray
    decode_j: np.ndarray
    gap_j: np.ndarray  # its share of the energy of intervals with nothing in flight

    @property
    def total_j(self) -> np.ndarray:
        return self.prefill_j + self.decode_j + self.gap_j


@dataclass(frozen=True, slots=True)
class EnergyPerRequest:
    rule: str
    window_j: float
    attributed_j: float  # sum over every request in the window (= window_j up to rounding)
    gap_j: float  # energy of intervals with no request in flight (included in attributed_j)
    other_j: float  # the share of warm-up and failed requests
    requests: int  # measured ok requests in the distributions
    j_per_request: dict[str, float | None]
    j_per_output_token: dict[str, float | None]
    prefill_j: dict[str, float | None]
    decode_j: dict[str, float | None]
    prefill_share: float | None  # prefill / (prefill + decode), measured ok requests
    by_input: tuple[dict[str, Any], ...] = ()
    by_output: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def attribute(
    grid_ns: np.ndarray,
    interval_j: np.ndarray,
    sent_ns: np.ndarray,
    first_ns: np.ndarray,
    done_ns: np.ndarray,
) -> Phases:
    """Attribute `interval_j` (energy between consecutive `grid_ns` times) to requests in
    flight over [sent, done], split at `first` (clamped into [sent, done]), by the rule above.
    O((requests + intervals) log) through cumulative sums, never requests x intervals."""
    g = (np.asarray(grid_ns, dtype=np.int64) - int(grid_ns[0])) / 1e9
    t0, t1 = float(g[0]), float(g[-1])

    def rel(x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, dtype=np.int64) - int(grid_ns[0])) / 1e9, t0, t1)

    s, e = rel(sent_ns), rel(done_ns)
    e = np.maximum(e, s)
    m = np.clip(rel(first_ns), s, e)
    busy = np.diff(_in_flight_integral(g, s, e))  # request-seconds per interval
    dt = np.diff(g)
    active = busy > 1e-9 * np.maximum(dt, 1e-12)
    rho = np.where(active, interval_j / np.where(active, busy, 1.0), 0.0)  # J per request-s
    cum = np.concatenate(([0.0], np.cumsum(rho * dt)))
    at_s, at_m, at_e = (np.interp(x, g, cum) for x in (s, m, e))
    prefill, decode = at_m - at_s, at_e - at_m
    gap_total = float(np.sum(interval_j[~active]))
    got = prefill + decode
    share = got / got.sum() if got.sum() > 0 else np.zeros_like(got)
    return Phases(prefill, decode, gap_total * share)


def _in_flight_integral(g: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Request-seconds in flight from g[0] to each g: sum over requests of overlap([s, e],
    [g0, g]) = sum_{s<g} (g - s) - sum_{e<g} (g - e), from sorted prefix sums."""
    out = np.zeros_like(g)
    for edges, sign in ((np.sort(s), 1.0), (np.sort(e), -1.0)):
        prefix = np.concatenate(([0.0], np.cumsum(edges)))
        k = np.searchsorted(edges, g, side="left")
        out += sign * (k * g - prefix[k])
    return out


def interval_energy(
    devices: list[DeviceSeries], t0_ns: int, t1_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(grid_ns, J per interval) over [t0, t1] summed over `devices`: the grid is every
    sample time inside the window plus its edges. A counter that refreshes at about every
    sample is read directly; a stale one gives way to power when there is power."""
    times = [t0_ns, t1_ns]
    for d in devices:
        for series in (d.energy_mj, d.power_instant_w, d.power_avg_w):
            times += [t for t, _ in series if t0_ns < t < t1_ns]
    grid = np.unique(np.asarray(times, dtype=np.int64))
    cum = np.zeros(len(grid))
    for d in devices:
        cum += _cumulative_j(d, grid)
    return grid, np.diff(cum)


def _cumulative_j(d: DeviceSeries, grid: np.ndarray) -> np.ndarray:
    power = d.power_instant_w if len(d.power_instant_w) >= 2 else d.power_avg_w
    refresh_s, _ = counter_refresh_s(d.energy_mj)
    t_c, v_c = _sorted(d.energy_mj)
    step_s = float(np.median(np.diff(t_c))) / 1e9 if len(t_c) >= 2 else 0.0
    stale = refresh_s is not None and refresh_s > 2.0 * step_s and len(power) >= 2
    if len(t_c) >= 2 and not stale:
        return np.interp(grid, t_c, reset_corrected(v_c)[0] / 1000.0)
    t_p, w = _sorted(power)
    if len(t_p) < 2:
        return np.zeros(len(grid))
    joules = np.concatenate(([0.0], np.cumsum((w[1:] + w[:-1]) * 0.5 * np.diff(t_p) / 1e9)))
    return np.interp(grid, t_p, joules)


def _sorted(series: Any) -> tuple[np.ndarray, np.ndarray]:
    if len(series) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    pairs = sorted(series)
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], float)


def energy_per_request(
    con: duckdb.DuckDBPyConnection, run_id: int, window_j: float | None
) -> EnergyPerRequest | None:
    """The run's energy per request from its stored samples and requests; None without a
    window energy (`window_j`, the stored gross figure) or without samples in the window."""
    window = load_window(con, run_id)
    if window is None or not window_j or window_j <= 0:
        return None
    rows = con.execute(
        """SELECT collector, device, t_ns, metric, value FROM samples
           WHERE run_id = ? AND collector IN ('nvml', 'agent', 'prometheus')""",
        [run_id],
    ).fetchall()
    devices = _measured_devices(series_from_rows(rows), window.start_ns, window.end_ns)
    grid, interval_j = interval_energy(devices, window.start_ns, window.end_ns)
    raw_j = float(interval_j.sum())
    if len(grid) < 2 or raw_j <= 0:
        return None
    notes = []
    if abs(raw_j / window_j - 1) > 0.01:
        notes.append(
            f"sample intervals sum to {raw_j:.4g} J, the window's energy is {window_j:.4g} J: "
            "intervals scaled to the window's figure"
        )
    reqs = con.execute(
        """SELECT NOT warmup AND error_kind IS NULL, sent_ns,
                  coalesce(first_token_ns, closed_ns, last_token_ns, sent_ns),
                  coalesce(closed_ns, last_token_ns, sent_ns), input_tokens, output_tokens
           FROM requests WHERE run_id = ? AND sent_ns IS NOT NULL
             AND coalesce(closed_ns, last_token_ns, sent_ns) > ? AND sent_ns < ?""",
        [run_id, window.start_ns, window.end_ns],
    ).fetchnumpy()
    cols = [np.ma.filled(np.ma.asarray(reqs[k]), 0) for k in reqs]
    measured, sent, first, done, in_tok, out_tok = cols
    phases = attribute(grid, interval_j * (window_j / raw_j), sent, first, done)
    return _summary(window_j, phases, measured.astype(bool), in_tok, out_tok, tuple(notes))


def _measured_devices(devices: list[DeviceSeries], t0: int, t1: int) -> list[DeviceSeries]:
    """The GPUs (and source) benchbench.energy counted for the window, nothing twice."""
    result = compute_energy(devices, t0, t1, 0)
    if result is None:
        return []
    counted = {(d.device, d.source.split("_", 1)[0]) for d in result.devices}
    return [d for d in devices if (d.device, d.source) in counted]


def _summary(
    window_j: float,
    p: Phases,
    measured: np.ndarray,
    in_tok: np.ndarray,
    out_tok: np.ndarray,
    notes: tuple[str, ...],
) -> EnergyPerRequest:
    total = p.total_j
    per_tok = out_tok[measured] > 0
    pre, dec = float(p.prefill_j[measured].sum()), float(p.decode_j[measured].sum())
    return EnergyPerRequest(
        rule=RULE,
        window_j=window_j,
        attributed_j=float(total.sum()),
        gap_j=float(p.gap_j.sum()),
        other_j=float(total[~measured].sum()),
        requests=int(measured.sum()),
        j_per_request=_dist(total[measured]),
        j_per_output_token=_dist(total[measured][per_tok] / out_tok[measured][per_tok]),
        prefill_j=_dist(p.prefill_j[measured]),
        decode_j=_dist(p.decode_j[measured]),
        prefill_share=pre / (pre + dec) if pre + dec > 0 else None,
        by_input=_buckets(in_tok[measured], total[measured], out_tok[measured]),
        by_output=_buckets(out_tok[measured], total[measured], out_tok[measured]),
        notes=notes,
    )


def _dist(values: np.ndarray) -> dict[str, float | None]:
    """n, mean and p50/p90/p99 (linear interpolation, as quantile_cont)."""
    if len(values) == 0:
        return {"n": 0, "mean": None, **{f"p{round(q * 100)}": None for q in QUANTILES}}
    qs = np.quantile(values, QUANTILES)
    return {
        "n": len(values),
        "mean": float(np.mean(values)),
        **{f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, qs, strict=True)},
    }


def _buckets(length: np.ndarray, joules: np.ndarray, out_tok: np.ndarray) -> tuple[dict, ...]:
    """Requests by length in powers of two (1, 2-3, 4-7, ..., 512-1023 tokens): J per request
    and J per output token (p50, p90) in each bucket present."""
    out = []
    exps = np.floor(np.log2(np.maximum(length, 1))).astype(int)
    for k in np.unique(exps):
        sel = exps == k
        tok = sel & (out_tok > 0)
        lo, hi = 2**k, 2 ** (k + 1) - 1
        req, per_tok = _dist(joules[sel]), _dist(joules[tok] / out_tok[tok])
        out.append({
            "tokens": f"{lo}" if lo == hi else f"{lo}-{hi}", "n": int(sel.sum()),
            "j_per_request_p50": req["p50"], "j_per_request_p90": req["p90"],
            "j_per_output_token_p50": per_tok["p50"], "j_per_output_token_p90": per_tok["p90"],
        })  # fmt: skip
    return tuple(out)


def text_lines(epr: EnergyPerRequest) -> list[tuple[str, str]]:
    """(label, line) pairs for the console: distributions, the phase split and where the
    energy of warm-up, failed requests and gaps went."""

    def dist(d: dict[str, float | None], digits: int) -> str:
        return " · ".join(f"{k} {_g(d[k], digits)}" for k in ("p50", "p90", "p99"))

    share = epr.prefill_share
    return [
        ("J per request", f"{dist(epr.j_per_request, 3)} J over {epr.requests} ok requests"),
        ("J per out token", f"{dist(epr.j_per_output_token, 4)} J (per request)"),
        (
            "energy phases",
            ("-" if share is None else f"prefill {share:.1%} / decode {1 - share:.1%}")
            + f" of the ok requests' J; "
            f"warm-up and failed {_g(epr.other_j, 4)} J, nothing in flight {_g(epr.gap_j, 4)} J "
            f"(shared); sum {_g(epr.attributed_j, 6)} of {_g(epr.window_j, 6)} J",
        ),
    ]


def _g(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}g}"
