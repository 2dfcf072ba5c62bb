"""Wiring collectors into a run: which to start (the energy source rule), the idle baseline
before load, and draining their samples into the store during the run. Energy and cost after
it: benchbench.settle."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchbench.energy_idle import idle_settled, idle_trend_w
from benchbench.energy_samples import series_from_rows
from benchbench.sections import Collect, Target
from benchbench.store import BatchWriter
from benchbench.urls import redact_url
from collectors.base import Clock, Collector, Sample

IDLE_SETTLE_MAX_S = 30.0  # longest wait for idle power to stop falling after earlier load
IDLE_POLL_S = 0.25


@dataclass
class CollectorSet:
    """The run's collectors and what they said about themselves."""

    collect: Collect
    collectors: list[Collector] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one-line facts for the summary
    idle_window: tuple[int, int] | None = None  # absolute clock ns
    load_window: tuple[int, int] | None = None
    # The energy source rule's outcome: which GPUs are measured and why (one line each), and
    # GPUs lost at selection (run warnings).
    source_notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # How the idle baseline went: settled, how long it waited, W in each half of the window.
    idle_settle: dict[str, Any] | None = None
    _writer: BatchWriter | None = None

    @property
    def has_energy_source(self) -> bool:
        """NVML, an agent, or a scraped page that turned out to be dcgm-exporter's (known
        from its first scrape, which start() takes: whatever its port or URL)."""
        for c in self.collectors:
            if c.name in ("nvml", "agent"):
                return True
            if c.name == "prometheus" and "dcgm-exporter" in (c.info().get("servers") or []):
                return True
        return False

    async def idle_baseline(
        self, clock: Clock, stop: asyncio.Event, settle_max_s: float = IDLE_SETTLE_MAX_S
    ) -> None:
        """The idle phase before load (after start()): sample for `idle_seconds`, then keep
        sliding that window forward until idle power has stopped falling (its two halves
        agree: a GPU that just ran a previous point's load cools down for seconds) or
        `settle_max_s` more have passed. Sets `idle_window` (unless stopped) and
        `idle_settle`. Samples go to the store as during the run."""
        idle_s = self.idle_seconds
        if idle_s <= 0:
            return
        t_begin = clock()
        rows: list[tuple[str, str, int, str, float]] = []
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(IDLE_POLL_S, idle_s))
            if stop.is_set():
                return
            rows.extend(_energy_rows(self._drain_all()))
            now = clock()
            if now - t_begin < idle_s * 1e9:
                continue
            i0 = now - round(idle_s * 1e9)
            rows = [r for r in rows if r[2] >= i0 - 2_000_000_000]  # bounded memory
            first_w, second_w = idle_trend_w(series_from_rows(rows), i0, now)
            settled = idle_settled(first_w, second_w)
            waited_s = (now - t_begin) / 1e9 - idle_s
            if settled or waited_s >= settle_max_s:
                self.idle_window = (i0, now)
                self.idle_settle = {
                    "settled": settled,
                    "waited_s": round(waited_s, 3),
                    "first_half_w": round(first_w, 1),
                    "second_half_w": round(second_w, 1),
                }
                return

    def _drain_all(self) -> list[Sample]:
        out: list[Sample] = []
        for c in self.collectors:
            samples = c.drain()
            if self._writer is not None:
                self._writer.add_samples(samples)
            out.extend(samples)
        return out

    @property
    def idle_seconds(self) -> float:
        return self.collect.idle_seconds if self.has_energy_source else 0.0

    def start(self, clock: Clock, writer: BatchWriter) -> None:
        self._writer = writer
        for c in self.collectors:
            c.start(clock)

    def drain(self) -> None:
        if self._writer is None:
            return
        for c in self.collectors:
            self._writer.add_samples(c.drain())

    def stop(self) -> None:
        for c in self.collectors:
            c.stop()
        self.drain()

    def info(self) -> dict[str, Any]:
        """Per collector its settings and why it degraded, with credentials taken out of any
        URL that an error message may quote."""
        secrets = [(u, redact_url(u)) for u in self._urls() if redact_url(u) != u]

        def clean(text: str | None) -> str | None:
            for raw, shown in secrets:
                text = text.replace(raw, shown) if text else text
            return text

        return {c.name: {**c.info(), "degraded": clean(c.degraded)} for c in self.collectors}

    def _urls(self) -> list[str]:
        urls = list(self.collect.scrape)
        if self.collect.power_agent:
            urls += [self.collect.power_agent, self.collect.power_agent.rstrip("/")]
        return sorted(urls, key=len, reverse=True)  # longest first: no partial replacement

    def gpu_names(self) -> list[str]:
        """Names of the GPUs measured for energy (the cost's GPU count), by the source rule:
        an agent's GPUs, else dcgm-exporter's, else the local NVML selection."""
        by_name = {c.name: c.info() for c in self.collectors}
        agent = by_name.get("agent", {}).get("gpus") or []
        if agent:
            return [str(g.get("name")) for g in agent if isinstance(g, dict)]
        for c in self.collectors:
            if c.name == "prometheus":
                dcgm = c.info().get("dcgm_gpus") or {}
                if dcgm:
                    return [str(g.get("name")) for g in dcgm.values() if isinstance(g, dict)]
        gpus = by_name.get("nvml", {}).get("gpus") or []
        return [str(g.get("name")) for g in gpus if isinstance(g, dict)]


def _energy_rows(samples: list[Sample]) -> list[tuple[str, str, int, str, float]]:
    return [(x.collector, x.device, x.t_ns, x.metric, x.value) for x in samples]


def endpoint_is_local(endpoint: str | None) -> bool:
    """Whether the endpoint runs on this host: the built-in simulator (None), localhost or a
    loopback or unspecified (0.0.0.0, ::) address."""
    if endpoint is None:
        return True
    host = (urlsplit(endpoint).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def local_nvml_reason(collect: Collect, endpoint: str | None) -> tuple[bool, str]:
    """The energy source rule for local NVML: (use it, why). Explicit sources (--power-agent,
    a dcgm-exporter --scrape, --gpus) win over implicit local NVML, which is used only for an
    endpoint on this host or when asked with --gpus."""
    if not collect.nvml:
        return False, "local GPUs not measured (--no-nvml)"
    if collect.gpus:
        return True, f"local GPUs measured: asked with --gpus {collect.gpus}"
    if collect.power_agent:
        return False, (
            "local GPUs not measured: --power-agent is the energy source "
            "(--gpus measures local GPUs as well)"
        )
    if endpoint_is_local(endpoint):
        where = "the built-in simulator" if endpoint is None else "an endpoint on this host"
        return True, f"local GPUs measured: {where} (a --scrape of dcgm-exporter would win)"
    host = urlsplit(endpoint or "").hostname or "?"
    return False, (
        f"local GPUs not measured: the endpoint ({host}) is not on this host; pass "
        "--power-agent or --scrape of its dcgm-exporter, or --gpus for local GPUs"
    )


def build_collectors(
    collect: Collect, target: Target, sim_metrics_url: str | None = None, nvml: Any | None = None
) -> CollectorSet:
    """Start nothing yet; decide what can be measured here and say so in one line each.
    `nvml` replaces the pynvml module (tests pass a fake one).

    The energy source rule: --power-agent, then a dcgm-exporter page among --scrape, then
    local NVML; local NVML runs only when asked (--gpus) or for an endpoint on this host
    (`local_nvml_reason`). `source_notes` says which GPUs are measured and why."""
    out = CollectorSet(collect)
    use_nvml, why = local_nvml_reason(collect, target.endpoint)
    if use_nvml:
        _add_nvml(out, why, nvml)
    else:
        out.source_notes.append(why)
        if not collect.power_agent and not collect.scrape:
            out.notes.append("energy not measured: " + why.split(": ", 1)[-1])
    if collect.power_agent:
        _add_agent(out, collect.power_agent.rstrip("/"), target)
    from collectors.prometheus import PrometheusCollector

    urls = list(collect.scrape)
    if sim_metrics_url and sim_metrics_url not in urls:
        urls.append(sim_metrics_url)
    silence_s, total_s = poll_timeouts(target, collect.scrape_interval_s)
    for url in urls:
        out.collectors.append(
            PrometheusCollector(
                url,
                interval_s=collect.scrape_interval_s,
                timeout_s=silence_s,
                total_timeout_s=total_s,
                label=redact_url(url),
            )
        )
    return out


def _add_nvml(out: CollectorSet, why: str, nvml: Any | None) -> None:
    """Local GPUs through NVML (those of --gpus, else all), or the note saying why not."""
    from collectors.nvml import NvmlCollector, NvmlUnavailable

    collect = out.collect
    gpus = [g.strip() for g in collect.gpus.split(",")] if collect.gpus else None
    sel = [int(g) if g.isdigit() else g for g in gpus] if gpus else None
    try:
        collector = NvmlCollector(gpus=sel, interval_s=1.0 / collect.sample_hz, nvml=nvml)
    except NvmlUnavailable as exc:
        out.notes.append(f"energy not measured: {exc}")
        out.source_notes.append(f"local GPUs not measured: {exc}")
        return
    out.collectors.append(collector)
    names = ", ".join(f"{g.index} ({g.name})" for g in collector.gpus)
    out.source_notes.append(why.replace("local GPUs", f"local GPU(s) {names}", 1))
    out.source_notes.extend(collector.reader.notes)
    out.warnings.extend(collector.reader.warnings)


def _add_agent(out: CollectorSet, url: str, target: Target) -> None:
    from collectors.agent import AgentCollector

    out.source_notes.append(
        f"energy from the power agent at {redact_url(url)}: its GPUs are measured"
    )
    interval_s = 1.0 / out.collect.sample_hz
    silence_s, total_s = poll_timeouts(target, interval_s)
    out.collectors.append(
        AgentCollector(
            url,
            token=out.collect.power_agent_token,
            interval_s=interval_s,
            timeout_s=silence_s,
            total_timeout_s=total_s,
            label=redact_url(url),
        )
    )


def poll_timeouts(target: Target, interval_s: float) -> tuple[float, float]:
    """(silence, total) seconds for one scrape or agent poll: about the polling interval (at
    least 1 s silent, 2 s in all), and never more than --timeout and --request-timeout. A
    stalled metrics page then costs one degraded reading, not a stuck collector."""
    silence_s = min(target.timeout_s, max(1.0, interval_s))
    total_s = min(target.request_timeout_s, max(2.0, 2 * interval_s))
    return silence_s, max(total_s, min(silence_s, target.request_timeout_s))
