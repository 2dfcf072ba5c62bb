"""The validity verdict, given before any comparison: a run that is too short, too full of
errors, miscounted, or not the same experiment as the other side makes the gate fail with
its reason (exit 2), never pass silently.

The same experiment includes the server's prompt cache: a run served from a cache an earlier
run left (a rerun with `--no-salt`, a gateway cache) is faster for that reason alone, so two
sides whose served-cache shares (benchbench.cache) differ by more than `cache_tolerance`
cannot be compared. Unknown on either side (the server does not report it) is no verdict.

Energy rules (the catalogue's ENERGY_METRICS, e.g. j_per_output_token) need a trustworthy
measurement on both sides: a run whose energy verdict (benchbench.energy) is "invalid" (a
counter too coarse for the window, samples missing, counter and power disagreeing) makes the
gate refuse those rules with the verdict's reasons, rather than compare nonsense. Without
energy rules the comparison goes ahead."""

from __future__ import annotations

from benchbench.catalogue import ENERGY_METRICS
from benchbench.gate.data import RunInfo, SideData
from benchbench.gate.rules import DEFAULT_CACHE_TOLERANCE, GateConfig

# Traffic description keys that define the workload's shape (the fingerprint, when present,
# covers them and more).
_SHAPE_KEYS = ("workload", "input_len", "output_len", "arrival", "dataset", "trace")

__all__ = [
    "DEFAULT_CACHE_TOLERANCE",
    "cache_problems",
    "energy_problems",
    "energy_rule_keys",
    "side_cache_share",
    "side_energy_status",
    "validity_problems",
]

# Why a run that is not complete cannot be judged, by status.
_NOT_COMPLETE = {
    "abandoned": " (its process died before finishing it; its last records may be lost)",
    "failed": (
        " (its books did not balance, a client worker died, or a part of it failed: "
        "see `bench show`)"
    ),
    "interrupted": " (stopped early)",
    "running": " (still running)",
}


def validity_problems(base: SideData, cand: SideData, cfg: GateConfig) -> list[str]:
    """Every reason the two sides cannot be compared; empty when they can."""
    problems: list[str] = []
    shared = set(base.run_ids) & set(cand.run_ids) if base.source == cand.source else set()
    if shared:
        problems.append(
            f"baseline and candidate share run(s) {sorted(shared)}: compare two different runs"
        )
    for side, name in ((base, "baseline"), (cand, "candidate")):
        problems += _side_problems(side, name, cfg)
    problems += _pair_problems(base, cand)
    problems += cache_problems(base, cand, cfg.cache_tolerance)
    problems += energy_problems(base, cand, cfg)
    return problems


def side_cache_share(side: SideData) -> float | None:
    """The side's served prompt-cache share: the mean over its runs, None when any run's is
    unknown."""
    shares = [r.served_cache_share for r in side.runs]
    known = [s for s in shares if s is not None]
    if not shares or len(known) < len(shares):
        return None
    return sum(known) / len(known)


def side_energy_status(side: SideData) -> str | None:
    """The worst energy verdict among the side's runs; None when none measured energy."""
    rank = {"ok": 0, "partial": 1, "invalid": 2}
    found = [r.energy_status for r in side.runs if r.energy_status in rank]
    return max(found, key=rank.__getitem__) if found else None


def energy_rule_keys(cfg: GateConfig) -> list[str]:
    """The rules and SLOs of the config that compare energy figures."""
    keys = [r.key for r in cfg.rules if r.metric in ENERGY_METRICS]
    return keys + [f"slo:{s.key}" for s in cfg.slos if s.metric in ENERGY_METRICS]


def energy_problems(base: SideData, cand: SideData, cfg: GateConfig) -> list[str]:
    """Energy rules over a run whose energy verdict is invalid: one problem per such run,
    naming the verdict's reasons and how to go ahead without the energy rules."""
    keys = energy_rule_keys(cfg)
    if not keys:
        return []
    drop = [f"[gate.rules.{k}] enabled = false" for k in keys if not k.startswith("slo:")]
    drop += [f"no slo.{k[4:]}" for k in keys if k.startswith("slo:")]
    out = []
    for side, name in ((base, "baseline"), (cand, "candidate")):
        for r in side.runs:
            if r.energy_status != "invalid":
                continue
            why = "; ".join(r.energy_reasons) or "no reason stored"
            out.append(
                f"{name} run {r.run_id}: its energy verdict is invalid ({why}), so the energy "
                f"rule(s) {', '.join(keys)} cannot compare it: fix the measurement and rerun, "
                f"or compare without them (gate config: {', '.join(drop)})"
            )
    return out


def cache_problems(base: SideData, cand: SideData, tolerance: float) -> list[str]:
    """The served-cache check: both shares known and more than ``tolerance`` apart."""
    a, b = side_cache_share(base), side_cache_share(cand)
    if a is None or b is None or abs(a - b) <= tolerance + 1e-12:
        return []
    warm = "baseline" if a > b else "candidate"
    return [
        f"served prompt cache differs: baseline ({base.label}) took {a:.1%} of its prompt "
        f"tokens from the server's cache, candidate ({cand.label}) {b:.1%}, more than "
        f"{tolerance * 100:g} points apart (--cache-tolerance): the {warm} was served from "
        "a cache an earlier run left; rerun it salted (the default, not --no-salt) or on a "
        "freshly started server"
    ]


def _side_problems(side: SideData, name: str, cfg: GateConfig) -> list[str]:
    out = []
    for r in side.runs:
        if r.status != "complete":
            why = _NOT_COMPLETE.get(r.status, "")
            out.append(f"{name} run {r.run_id} is {r.status}, not complete{why}: rerun it")
    ok = sum(r.ok for r in side.runs)
    sent = sum(r.sent for r in side.runs)
    if ok < cfg.min_requests:
        out.append(
            f"{name} ({side.label}) has {ok} successful measured requests, fewer than "
            f"min_requests = {cfg.min_requests}: run longer (--requests) or lower min_requests"
        )
    errored = sum(r.errored for r in side.runs)
    if sent and errored / sent > cfg.max_error_rate:
        out.append(
            f"{name} ({side.label}) errored on {errored} of {sent} requests "
            f"({errored / sent:.1%} > max_error_rate {cfg.max_error_rate:.1%})"
        )
    counted = sum(r.token_requests for r in side.runs)
    mismatched = sum(r.token_mismatch for r in side.runs)
    if counted and mismatched / counted > cfg.max_token_mismatch:
        out.append(
            f"{name} ({side.label}): {mismatched} of {counted} requests got a different number "
            f"of output tokens than requested ({mismatched / counted:.1%} > max_token_mismatch "
            f"{cfg.max_token_mismatch:.1%}); ask the server to ignore EOS (--ignore-eos)"
        )
    for r in side.runs:
        if r.loop_lag_p99_ms is not None and r.loop_lag_p99_ms > cfg.max_loop_lag_ms:
            out.append(
                f"{name} run {r.run_id}: the client's event loop lagged {r.loop_lag_p99_ms:.0f} ms "
                f"(p99 > max_loop_lag_ms {cfg.max_loop_lag_ms:g}), so its timestamps are late: "
                "rerun on a less busy machine"
            )
    # A pooled group must itself be one experiment.
    out += [f"{name}: {p}" for r in side.runs[1:] for p in _mismatch(side.runs[0], r)]
    return out


def _pair_problems(base: SideData, cand: SideData) -> list[str]:
    return [
        f"incomparable runs: {p} (baseline {base.label}, candidate {cand.label})"
        for p in _mismatch(base.runs[0], cand.runs[0])
    ]


def _mismatch(a: RunInfo, b: RunInfo) -> list[str]:
    out = []
    if a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint:
        out.append(
            f"different workload fingerprints ({a.fingerprint[:12]} vs {b.fingerprint[:12]}): "
            "the requests or their schedule differ; use the same seed and traffic flags"
        )
    salted_a, salted_b = a.traffic.get("salted"), b.traffic.get("salted")
    if salted_a is not None and salted_b is not None and salted_a != salted_b:
        out.append(
            f"one run's prompts are salted and the other's are not (run {a.run_id}: "
            f"{'salted' if salted_a else '--no-salt'}, run {b.run_id}: "
            f"{'salted' if salted_b else '--no-salt'}): only one can be served from an earlier "
            "run's prompt cache"
        )
    if a.model != b.model:
        out.append(f"different models ({a.model!r} vs {b.model!r})")
    if a.api != b.api:
        out.append(f"different APIs ({a.api} vs {b.api})")
    if (a.load_mode, a.concurrency, a.requested_rate) != (
        b.load_mode,
        b.concurrency,
        b.requested_rate,
    ):
        out.append(f"different load ({_load(a)} vs {_load(b)})")
    for key in _SHAPE_KEYS:
        va, vb = a.traffic.get(key), b.traffic.get(key)
        if va is not None and vb is not None and va != vb:
            out.append(f"different {key} ({va} vs {vb})")
    return out


def _load(r: RunInfo) -> str:
    if r.load_mode == "open":
        return f"open loop {r.requested_rate:g} req/s"
    if r.load_mode == "closed":
        return f"closed loop, concurrency {r.concurrency}"
    return str(r.load_mode)
