"""Several runs side by side: a sweep's load points or a set of repeats. Built from the runs'
own report data, so every figure is the one its run page shows."""

from __future__ import annotations

from collections.abc import Sequence

from reports.model import Comparison, ComparisonRow, RunReport


def compare_runs(runs: Sequence[RunReport], slos: dict[str, float]) -> Comparison:
    modes = {r.load_mode for r in runs}
    if modes == {"open"} and all(r.requested_rate is not None for r in runs):
        load_label = "requested rate (req/s)"
        loads = [r.requested_rate for r in runs]
    elif modes == {"closed"}:
        load_label = "concurrency"
        loads = [float(r.concurrency or 1) for r in runs]
    else:
        load_label = "achieved send rate (req/s)"
        loads = [r.achieved_rate for r in runs]
    rows = tuple(_row(r, load) for r, load in zip(runs, loads, strict=True))
    pick, note = _pick(rows, slos)
    return Comparison(
        load_label=load_label,
        rows=rows,
        slos=dict(slos),
        cheapest_meeting_slo=pick,
        pick_note=note,
        ttft_cdfs=tuple((_label(r), r.cdfs[0]) for r in runs if r.cdfs),
        tpot_cdfs=tuple((_label(r), r.cdfs[1]) for r in runs if len(r.cdfs) > 1),
        throughput=tuple((_label(r), r.timeline) for r in runs if r.timeline is not None),
    )


def _label(r: RunReport) -> str:
    return f"run {r.run_id}: {r.headline.load or r.load_mode or '?'}"


def _row(r: RunReport, load: float | None) -> ComparisonRow:
    h = r.headline
    dists = dict(r.distributions)
    per_gpu = h.output_tok_s / r.gpu_count if h.output_tok_s and r.gpu_count else None
    return ComparisonRow(
        run_id=r.run_id,
        label=h.load or "",
        load=load,
        gpus=r.gpu_count,
        ok=h.ok,
        errored=h.errored,
        output_tok_s=h.output_tok_s,
        output_tok_s_per_gpu=per_gpu,
        ttft_p50_ms=h.ttft_p50_ms,
        ttft_p99_ms=h.ttft_p99_ms,
        tpot_p50_ms=h.tpot_p50_ms,
        tpot_p99_ms=h.tpot_p99_ms,
        e2e_p99_ms=dists.get("E2E", {}).get("p99"),
        usd_per_1m_output_tokens=h.usd_per_1m_output_tokens,
        j_per_output_token=h.j_per_output_token,
        meets_slo=r.slo_met,
        energy_status=r.energy_verdict.status if r.energy_verdict else None,
        marks=r.marks,
    )


def _pick(rows: Sequence[ComparisonRow], slos: dict[str, float]) -> tuple[int | None, str]:
    """The cheapest run meeting every SLO; without prices, the one with most output tokens/s
    per GPU (the same thing at a fixed price per GPU-hour)."""
    if not slos:
        return None, "no SLO given (pass --slo, e.g. ttft_p99_ms=500,tpot_p99_ms=50)"
    meeting = [r for r in rows if r.meets_slo]
    if not meeting:
        return None, "no run met every SLO"
    priced = [r for r in meeting if r.usd_per_1m_output_tokens is not None]
    if priced:
        best = min(priced, key=lambda r: r.usd_per_1m_output_tokens or 0.0)
        return best.run_id, f"run {best.run_id}: cheapest per 1M output tokens meeting the SLO"
    best = max(meeting, key=lambda r: r.output_tok_s_per_gpu or r.output_tok_s or 0.0)
    return best.run_id, (
        f"run {best.run_id} has the most output tokens/s meeting the SLO (no prices recorded)"
    )
