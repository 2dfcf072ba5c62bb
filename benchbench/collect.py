"""Wiring collectors into a run: which to start, the idle baseline before load, draining
their samples into the store during the run, and energy and cost after it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from benchbench.config import RunConfig
from benchbench.cost import CostInputs, compute_cost
from benchbench.energy import compute_energy
from benchbench.energy_idle import idle_settled, idle_trend_w
from benchbench.energy_samples import series_from_rows
from benchbench.errors import BenchError
from benchbench.results import Cost, Energy, RunResults
from benchbench.store import BatchWriter, Store
from benchbench.urls import redact_url
from benchbench.window import Window, store_window, warmup_tokens_in_window
from collectors.base import Clock, Collector, Sample

IDLE_SETTLE_MAX_S = 30.0  # longest wait for idle power to stop falling after earlier load
IDLE_POLL_S = 0.25


@dataclass
class CollectorSet:
    """The run's collectors and what they said about themselves."""

    cfg: RunConfig
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
        return self.cfg.idle_seconds if self.has_energy_source else 0.0

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
        urls = list(self.cfg.scrape)
        if self.cfg.power_agent:
            urls += [self.cfg.power_agent, self.cfg.power_agent.rstrip("/")]
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


def cost_inputs(cfg: RunConfig, gpu_names: list[str]) -> CostInputs:
    """The prices of a run. `--gpu-price` without `--gpu-count` counts the GPUs measured, or,
    with none measured (a remote endpoint), one GPU: the cost notes say so (see
    one_gpu_note), as the flag's help does."""
    gpu_count = cfg.gpu_count
    if gpu_count is None and cfg.gpu_price is not None:
        gpu_count = len(gpu_names) or 1
    return CostInputs(
        gpu_price_usd_per_hour=cfg.gpu_price,
        instance_price_usd_per_hour=cfg.instance_price,
        gpu_count=gpu_count,
        gpu_name=gpu_names[0] if gpu_names else None,
        input_price_usd_per_1m=cfg.input_price,
        output_price_usd_per_1m=cfg.output_price,
        kwh_price_usd=cfg.kwh_price,
        pue=cfg.pue,
    )


def one_gpu_note(cfg: RunConfig, gpu_names: list[str]) -> str | None:
    """The plain statement owed when a --gpu-price alone was priced as a single GPU."""
    if cfg.gpu_price is None or cfg.gpu_count is not None or gpu_names:
        return None
    return (
        f"priced as 1 GPU at ${cfg.gpu_price:g}/GPU-hour (no GPU measured here): "
        "pass --gpu-count N for a server with N GPUs"
    )


def validate_prices(cfg: RunConfig) -> None:
    """Check the price flags before the run, so a typo costs no measurement."""
    try:
        cost_inputs(cfg, [])
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if cfg.instance_price is not None and cfg.gpu_count is None:
        raise BenchError(
            "--instance-price is for the whole instance: also give --gpu-count "
            "(the GPUs serving the endpoint)"
        )


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


def local_nvml_reason(cfg: RunConfig) -> tuple[bool, str]:
    """The energy source rule for local NVML: (use it, why). Explicit sources (--power-agent,
    a dcgm-exporter --scrape, --gpus) win over implicit local NVML, which is used only for an
    endpoint on this host or when asked with --gpus."""
    if not cfg.nvml:
        return False, "local GPUs not measured (--no-nvml)"
    if cfg.gpus:
        return True, f"local GPUs measured: asked with --gpus {cfg.gpus}"
    if cfg.power_agent:
        return False, (
            "local GPUs not measured: --power-agent is the energy source "
            "(--gpus measures local GPUs as well)"
        )
    if endpoint_is_local(cfg.endpoint):
        where = "the built-in simulator" if cfg.endpoint is None else "an endpoint on this host"
        return True, f"local GPUs measured: {where} (a --scrape of dcgm-exporter would win)"
    host = urlsplit(cfg.endpoint or "").hostname or "?"
    return False, (
        f"local GPUs not measured: the endpoint ({host}) is not on this host; pass "
        "--power-agent or --scrape of its dcgm-exporter, or --gpus for local GPUs"
    )


def build_collectors(
    cfg: RunConfig, sim_metrics_url: str | None = None, nvml: Any | None = None
) -> CollectorSet:
    """Start nothing yet; decide what can be measured here and say so in one line each.
    `nvml` replaces the pynvml module (tests pass a fake one).

    The energy source rule: --power-agent, then a dcgm-exporter page among --scrape, then
    local NVML; local NVML runs only when asked (--gpus) or for an endpoint on this host
    (`local_nvml_reason`). `source_notes` says which GPUs are measured and why."""
    out = CollectorSet(cfg)
    use_nvml, why = local_nvml_reason(cfg)
    if use_nvml:
        from collectors.nvml import NvmlCollector, NvmlUnavailable

        gpus = [g.strip() for g in cfg.gpus.split(",")] if cfg.gpus else None
        sel = [int(g) if g.isdigit() else g for g in gpus] if gpus else None
        try:
            collector = NvmlCollector(gpus=sel, interval_s=1.0 / cfg.sample_hz, nvml=nvml)
        except NvmlUnavailable as exc:
            out.notes.append(f"energy not measured: {exc}")
            out.source_notes.append(f"local GPUs not measured: {exc}")
        else:
            out.collectors.append(collector)
            names = ", ".join(f"{g.index} ({g.name})" for g in collector.gpus)
            out.source_notes.append(why.replace("local GPUs", f"local GPU(s) {names}", 1))
            out.source_notes.extend(collector.reader.notes)
            out.warnings.extend(collector.reader.warnings)
    else:
        out.source_notes.append(why)
        if not cfg.power_agent and not cfg.scrape:
            out.notes.append("energy not measured: " + why.split(": ", 1)[-1])
    if cfg.power_agent:
        out.source_notes.append(
            f"energy from the power agent at {redact_url(cfg.power_agent.rstrip('/'))}: "
            "its GPUs are measured"
        )
    if cfg.power_agent:
        from collectors.agent import AgentCollector

        silence_s, total_s = poll_timeouts(cfg, 1.0 / cfg.sample_hz)
        out.collectors.append(
            AgentCollector(
                cfg.power_agent.rstrip("/"),
                token=cfg.power_agent_token,
                interval_s=1.0 / cfg.sample_hz,
                timeout_s=silence_s,
                total_timeout_s=total_s,
                label=redact_url(cfg.power_agent.rstrip("/")),
            )
        )
    from collectors.prometheus import PrometheusCollector

    urls = list(cfg.scrape)
    if sim_metrics_url and sim_metrics_url not in urls:
        urls.append(sim_metrics_url)
    silence_s, total_s = poll_timeouts(cfg, cfg.scrape_interval_s)
    for url in urls:
        out.collectors.append(
            PrometheusCollector(
                url,
                interval_s=cfg.scrape_interval_s,
                timeout_s=silence_s,
                total_timeout_s=total_s,
                label=redact_url(url),
            )
        )
    return out


def poll_timeouts(cfg: RunConfig, interval_s: float) -> tuple[float, float]:
    """(silence, total) seconds for one scrape or agent poll: about the polling interval (at
    least 1 s silent, 2 s in all), and never more than --timeout and --request-timeout. A
    stalled metrics page then costs one degraded reading, not a stuck collector."""
    silence_s = min(cfg.timeout_s, max(1.0, interval_s))
    total_s = min(cfg.request_timeout_s, max(2.0, 2 * interval_s))
    return silence_s, max(total_s, min(silence_s, cfg.request_timeout_s))


def window_tokens(con: Any, run_id: int) -> tuple[int, int, int]:
    """(output tokens, input tokens, requests) of the ok, measured requests: everything the
    measurement window holds (benchbench.window), the summary's own counts."""
    row = con.execute(
        """SELECT coalesce(sum(output_tokens), 0), coalesce(sum(input_tokens), 0), count(*)
           FROM requests WHERE run_id = ? AND error_kind IS NULL AND NOT warmup""",
        [run_id],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def energy_and_cost(
    store: Store, run_id: int, cfg: RunConfig, cs: CollectorSet, origin_ns: int,
    window: Window | None,
) -> tuple[Energy, Cost]:  # fmt: skip
    """Energy and cost over the run's measurement window (benchbench.window.store_window)."""
    idle = None
    if cs.idle_window is not None:
        idle = (cs.idle_window[0] - origin_ns, cs.idle_window[1] - origin_ns)
    reason = next((n for n in cs.notes if n.startswith("energy")), None)
    energy = window_energy(
        store.con, run_id, window, idle, reason,
        source_notes=tuple(cs.source_notes), idle_settle=cs.idle_settle,
    )  # fmt: skip
    gpus = cs.gpu_names()
    try:
        inputs: CostInputs | str = cost_inputs(cfg, gpus)
    except ValueError as exc:
        inputs = f"cost not computed: {exc}"
    cost = window_cost(store.con, run_id, window, inputs, energy)
    note = one_gpu_note(cfg, gpus)
    if note is not None and cost.unavailable is None:
        cost = dataclasses.replace(cost, notes=(note, *cost.notes))
    return energy, cost


def window_energy(
    con: Any, run_id: int, window: Window | None, idle_window_ns: tuple[int, int] | None,
    reason: str | None = None, *, source_notes: tuple[str, ...] = (),
    idle_settle: dict[str, Any] | None = None,
) -> Energy:  # fmt: skip
    """GPU energy over the window from the run's stored samples; `reason` says why when
    there are none (e.g. NVML unavailable). `source_notes` (which GPUs were measured and
    why) and `idle_settle` (how the idle baseline went) are the collectors' and travel with it.

    The energy's token count is the measured requests' output tokens plus those warm-up
    requests still generating inside the window produced there (pro rata by token events):
    the GPUs spent that energy on them too. Throughput and cost count measured tokens only."""
    if window is None:
        return Energy(unavailable="no measured requests", source_notes=source_notes)
    out_tok, in_tok, _ = window_tokens(con, run_id)
    warm_requests, warm_tokens = warmup_tokens_in_window(con, run_id, window)
    rows = con.execute(
        """SELECT collector, device, t_ns, metric, value FROM samples
           WHERE run_id = ? AND collector IN ('nvml', 'agent', 'prometheus')""",
        [run_id],
    ).fetchall()
    result = compute_energy(
        series_from_rows(rows), window.start_ns, window.end_ns, out_tok + warm_tokens, in_tok,
        idle_window_ns,
    )  # fmt: skip
    if result is None:
        return Energy(
            unavailable=reason or "energy not measured: no GPU energy or power samples",
            source_notes=source_notes,
        )
    notes = tuple(result.notes)
    if warm_requests:
        notes += (
            f"{warm_requests} warm-up request(s) were still generating inside the window: "
            f"their {warm_tokens:,} tokens are counted with their energy",
        )
    energy = Energy.from_result(result, idle_window_ns)
    return dataclasses.replace(
        energy, notes=notes, source_notes=source_notes, idle_settle=idle_settle
    )


def window_cost(
    con: Any, run_id: int, window: Window | None, inputs: CostInputs | str, energy: Energy
) -> Cost:
    """Cost over the window at `inputs` (or the reason no price applies)."""
    if window is None:
        return Cost(unavailable="no measured requests")
    if isinstance(inputs, str):
        return Cost(unavailable=inputs)
    out_tok, in_tok, reqs = window_tokens(con, run_id)
    kwh = energy.gross_j / 3.6e6 if energy.gross_j is not None else None
    cost = compute_cost(inputs, window.seconds, out_tok, in_tok, reqs, kwh)
    if cost.source is None and cost.energy_cost_usd is None:
        return Cost(
            unavailable="cost not computed: no price known (pass --gpu-price, "
            "--instance-price with --gpu-count, or --input-price/--output-price)"
        )
    return Cost(
        price_source=cost.source,
        usd_per_hour=cost.usd_per_hour,
        usd_per_gpu_hour=cost.usd_per_gpu_hour,
        window_usd=cost.window_usd,
        window_s=window.seconds,
        usd_per_1m_output_tokens=cost.usd_per_1m_output_tokens,
        usd_per_1m_total_tokens=cost.usd_per_1m_tokens,
        usd_per_request=cost.usd_per_request,
        energy_kwh=cost.energy_kwh,
        energy_cost_usd=cost.energy_cost_usd,
        energy_usd_per_1m_output_tokens=cost.energy_usd_per_1m_output_tokens,
        kwh_price_usd=inputs.kwh_price_usd,
        pue=inputs.pue,
        output_tokens=out_tok,
        input_tokens=in_tok,
        notes=tuple(cost.notes),
    )


def run_results(
    store: Store, run_id: int, cfg: RunConfig, cs: CollectorSet, origin_ns: int,
    parts: RunResults,
) -> RunResults:  # fmt: skip
    """A settled run's results: `parts` (outcome, books, client, traffic and the run's own
    warnings) completed with the measurement window (stored here), energy, cost and the
    server view over it, the collectors' facts, and each section's warnings copied once into
    the run's list. Store it with benchbench.results.write_results."""
    from benchbench.server_view import server_view

    window = store_window(store, run_id)
    energy, cost = energy_and_cost(store, run_id, cfg, cs, origin_ns, window)
    ideal = parts.traffic.get("ideal_prefix_hit")
    server = server_view(store, run_id, window, ideal_prefix_hit=ideal)
    collectors = cs.info()
    warnings = list(parts.warnings) + list(server.warnings) + list(energy.warnings)
    warnings += [w for w in cs.warnings if w not in warnings]  # e.g. GPUs lost at selection
    for name, info in collectors.items():
        if info.get("degraded"):
            warnings.append(f"collector {name} degraded: {info['degraded']}")
    return dataclasses.replace(
        parts, energy=energy, cost=cost, server=server, collectors=collectors,
        warnings=tuple(warnings),
    )  # fmt: skip
