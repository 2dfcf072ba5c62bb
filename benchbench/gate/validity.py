"""The validity verdict, given before any comparison: a run that is too short, too full of
errors, miscounted, or not the same experiment as the other side makes the gate fail with
its reason (exit 2), never pass silently."""

from __future__ import annotations

from benchbench.gate.data import RunInfo, SideData
from benchbench.gate.rules import GateConfig

# Traffic description keys that define the workload's shape (the fingerprint, when present,
# covers them and more).
_SHAPE_KEYS = ("workload", "input_len", "output_len", "arrival", "dataset", "trace")

# Why a run that is not complete cannot be judged, by status.
_NOT_COMPLETE = {
    "abandoned": " (its process died before finishing it; its last records may be lost)",
    "failed": " (its books did not balance or a part of it failed: see `bench show`)",
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
    return problems


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
