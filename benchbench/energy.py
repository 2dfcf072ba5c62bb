"""Energy over a measurement window, from the samples the collectors stored, with a verdict on
whether the figure can be trusted.

Pure functions. Per GPU, the preferred source is a cumulative energy counter (NVML's
nvmlDeviceGetTotalEnergyConsumption, dcgm-exporter's DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, or
the agent's copy of NVML's), read at the window edges by linear interpolation. Power is
integrated (trapezoid) where a GPU has no counter, or where its counter is too coarse for the
window or did not move at all (a frozen counter).

Real counters are not perfect integrals, and the arithmetic reads them for what they are:

- A counter refreshes at its own period: NVML's steps about every 100 ms; dcgm-exporter's
  every `-c/--collect-interval` ms (30 s by default), however often it is scraped. The period
  is detected from the data (the median time between changes). Its edges are then uncertain
  by up to one period, i.e. by period / window of the energy: above FINE_RESOLUTION the verdict
  is partial, above COARSE_RESOLUTION the counter is not used (power instead, saying so).
  A stale counter is read only at the samples where it changed (each one a fresh value), not
  at the repeats in between, and its last change is carried forward by its slope for at most
  one period.
- Only a large backward jump (below RESET_FRACTION of the previous value: a driver reload) is
  a reset; a small one (jitter, duplicated rows) is ignored by following the running maximum.
- The counter is always checked against integrated power, also when it reads 0 J.
- dcgm-exporter repeats each GPU's device counters on every MIG instance row (GPU_I_ID):
  one row per physical GPU is kept unless instances are asked for.

Conventions: gross energy is the headline; net = gross - idle W x window s is the *marginal*
energy the load added. Energy per request = window J per output token x the request's output
tokens (an attribution convention; the parts sum to the window total).

Modules: energy_samples (the stored series), energy_readings (counter and power over a window),
energy_verdict (per GPU: which source, and what weakens it), energy_idle (the idle baseline);
this one sums GPUs into the run's figure.

The verdict ("ok", "partial", "invalid", with reasons) says what a reader and the gate may do
with the figure: partial = a usable estimate with a stated weakness; invalid = do not compare.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from benchbench.energy_idle import idle_baseline
from benchbench.energy_samples import DeviceSeries
from benchbench.energy_verdict import DeviceEnergy, Finding, Verdict, device_energy

__all__ = ["EnergyResult", "attribute_energy", "compute_energy"]

# Explicit remote sources first: a local GPU is not the server's unless nothing else is known.
_SOURCE_PREFERENCE = ("agent", "dcgm", "nvml")


@dataclass(frozen=True, slots=True)
class EnergyResult:
    """Energy over [t0, t1] summed over GPUs, and what follows from it.

    Token-based fields are None when the token count is zero; idle-based fields are None
    without an idle window (or with an invalid one).
    """

    window_s: float
    source: str  # "nvml_counter", or several joined by "+" when GPUs differ
    gross_j: float  # the headline figure
    idle_w: float | None  # all GPUs together, measured before the load
    net_j: float | None  # marginal: gross - idle_w x window_s
    avg_w_total: float
    avg_w_per_gpu: float
    devices: tuple[DeviceEnergy, ...]
    output_tokens: int
    input_tokens: int
    j_per_output_token: float | None
    j_per_token: float | None  # per (input + output) token
    net_j_per_output_token: float | None  # marginal
    kwh_per_1m_output_tokens: float | None
    output_tokens_per_j: float | None
    tokens_per_j: float | None
    warnings: tuple[str, ...]
    verdict: Verdict = field(default_factory=Verdict)
    idle_verdict: Verdict | None = None
    notes: tuple[str, ...] = ()  # facts, not faults: which rows and source were used

    @property
    def gross_kwh(self) -> float:
        return self.gross_j / 3.6e6


def _pick_source(devices: Sequence[DeviceSeries], notes: list[str]) -> list[DeviceSeries]:
    """One source for the whole run, else the same GPUs would be counted twice. Explicit
    remote sources (agent, then dcgm-exporter) win over local NVML."""
    present = {d.source for d in devices}
    for source in _SOURCE_PREFERENCE:
        if source in present:
            ignored = sorted(present - {source})
            if ignored:
                notes.append(
                    f"energy from {source}; ignored {', '.join(ignored)} samples of the same run"
                )
            return [d for d in devices if d.source == source]
    return list(devices)


def _one_row_per_gpu(
    devices: Sequence[DeviceSeries], instances: Collection[str] | None, notes: list[str]
) -> list[DeviceSeries]:
    """dcgm-exporter repeats a GPU's device-level counters on each of its MIG instance rows:
    keep one row per physical GPU (the first instance's), or with `instances`, the rows of
    those GPU-instance ids (each then reports its whole GPU's energy, said in a note)."""
    if instances is not None:
        chosen = [d for d in devices if d.instance is None or d.instance in instances]
        if any(d.instance is not None for d in chosen):
            notes.append(
                "MIG instance rows report their whole GPU's energy (shared by every instance)"
            )
        return chosen
    by_gpu: dict[str, list[DeviceSeries]] = {}
    for d in devices:
        by_gpu.setdefault(d.physical, []).append(d)
    out = []
    for physical, rows in by_gpu.items():
        rows.sort(key=lambda d: (d.instance is not None, _num(d.instance)))
        out.append(rows[0])
        if len(rows) > 1:
            notes.append(
                f"GPU {physical}: {len(rows)} MIG instance rows repeat one GPU's counters; "
                "one row counted"
            )
    return out


def _num(text: str | None) -> tuple[int, str]:
    return (int(text), "") if text and text.isdigit() else (0, text or "")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _idle_part(
    chosen: Sequence[DeviceSeries],
    found: Sequence[DeviceEnergy],
    idle_window: tuple[int, int],
    avg_w_total: float,
) -> tuple[float | None, Verdict]:
    """Idle W (None when its verdict is invalid) and the idle verdict, which also says when
    the load drew less than idle."""
    idle_w, idle_verdict = idle_baseline(chosen, found, idle_window)
    if idle_w is not None and avg_w_total < idle_w:
        idle_verdict = Verdict.of(
            [(idle_verdict.status, r) for r in idle_verdict.reasons]
            + [("partial", f"average power under load ({avg_w_total:.0f} W) is below idle "
                f"power ({idle_w:.0f} W): the idle window was not idle, or the load was too "
                "light")]
        )  # fmt: skip
    if idle_verdict.status == "invalid":
        idle_w = None
    return idle_w, idle_verdict


def _warnings(
    findings: Sequence[Finding], idle_w: float | None, idle_verdict: Verdict | None
) -> tuple[str, ...]:
    """Every reason found, the idle verdict's after the window's, each once."""
    warnings = [r for _, r in findings]
    if idle_verdict is not None:
        warnings += [r for r in idle_verdict.reasons if r not in warnings]
        if idle_w is None:
            warnings.append("idle baseline unusable; no net (marginal) energy")
    return tuple(warnings)


def compute_energy(
    devices: Sequence[DeviceSeries],
    t0_ns: int,
    t1_ns: int,
    output_tokens: int,
    input_tokens: int = 0,
    idle_window: tuple[int, int] | None = None,
    mig_instances: Collection[str] | None = None,
) -> EnergyResult | None:
    """Energy over the window [t0_ns, t1_ns] summed over GPUs, with derived figures, a
    verdict and warnings. None when no GPU has usable energy or power samples in the window.
    `mig_instances`: dcgm-exporter GPU-instance ids to count (default: one row per GPU)."""
    if t1_ns <= t0_ns:
        raise ValueError(f"energy window must have t1 > t0 (got {t0_ns}..{t1_ns} ns)")
    notes: list[str] = []
    findings: list[Finding] = []
    chosen = _one_row_per_gpu(_pick_source(devices, notes), mig_instances, notes)
    per_device = [device_energy(s, t0_ns, t1_ns, findings) for s in chosen]
    found = [d for d in per_device if d is not None]
    if not found:
        return None
    missing = [s.device for s, d in zip(chosen, per_device, strict=True) if d is None]
    if missing:
        findings.append(
            ("partial", f"no usable energy samples in the window for GPU(s) {', '.join(missing)}")
        )
    window_s = (t1_ns - t0_ns) / 1e9
    gross_j = sum(d.energy_j for d in found)
    avg_w_total = gross_j / window_s

    idle_w, idle_verdict = None, None
    if idle_window is not None:
        measured = [s for s, d in zip(chosen, per_device, strict=True) if d is not None]
        idle_w, idle_verdict = _idle_part(measured, found, idle_window, avg_w_total)
    net_j = None if idle_w is None else gross_j - idle_w * window_s

    all_tokens = output_tokens + input_tokens
    j_per_out = _ratio(gross_j, output_tokens)
    return EnergyResult(
        window_s=window_s,
        source="+".join(sorted({d.source for d in found})),
        gross_j=gross_j,
        idle_w=idle_w,
        net_j=net_j,
        avg_w_total=avg_w_total,
        avg_w_per_gpu=avg_w_total / len(found),
        devices=tuple(found),
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        j_per_output_token=j_per_out,
        j_per_token=_ratio(gross_j, all_tokens),
        net_j_per_output_token=None if net_j is None else _ratio(net_j, output_tokens),
        kwh_per_1m_output_tokens=None if j_per_out is None else j_per_out / 3.6e6 * 1e6,
        output_tokens_per_j=_ratio(output_tokens, gross_j),
        tokens_per_j=_ratio(all_tokens, gross_j),
        warnings=_warnings(findings, idle_w, idle_verdict),
        verdict=Verdict.of(f for f in findings if f[0] != "ok"),
        idle_verdict=idle_verdict,
        notes=tuple(notes),
    )


def attribute_energy(total_j: float, request_output_tokens: Sequence[int]) -> list[float]:
    """Energy per request: total_j shared in proportion to output tokens (a convention, not a
    measurement; requests overlap in time). The parts sum to total_j."""
    tokens = sum(request_output_tokens)
    if tokens <= 0:
        return [0.0] * len(request_output_tokens)
    per_token = total_j / tokens
    return [per_token * n for n in request_output_tokens]
