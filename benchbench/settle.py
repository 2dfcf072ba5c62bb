"""Settling a run after load: energy and cost over its one measurement window
(benchbench.window), and its results completed with them, the server view and the
collectors' facts."""

from __future__ import annotations

import dataclasses
from typing import Any

from benchbench.collect import CollectorSet
from benchbench.cost import CostInputs, compute_cost
from benchbench.energy import compute_energy
from benchbench.energy_samples import series_from_rows
from benchbench.errors import BenchError
from benchbench.results import Cost, Energy, RunResults
from benchbench.sections import Prices
from benchbench.store import Store
from benchbench.window import Window, store_window, warmup_tokens_in_window


def cost_inputs(prices: Prices, gpu_names: list[str]) -> CostInputs:
    """The prices of a run. `--gpu-price` without `--gpu-count` counts the GPUs measured, or,
    with none measured (a remote endpoint), one GPU: the cost notes say so (see
    one_gpu_note), as the flag's help does."""
    gpu_count = prices.gpu_count
    if gpu_count is None and prices.gpu_price is not None:
        gpu_count = len(gpu_names) or 1
    return CostInputs(
        gpu_price_usd_per_hour=prices.gpu_price,
        instance_price_usd_per_hour=prices.instance_price,
        gpu_count=gpu_count,
        gpu_name=gpu_names[0] if gpu_names else None,
        input_price_usd_per_1m=prices.input_price,
        output_price_usd_per_1m=prices.output_price,
        kwh_price_usd=prices.kwh_price,
        pue=prices.pue,
    )


def one_gpu_note(prices: Prices, gpu_names: list[str]) -> str | None:
    """The plain statement owed when a --gpu-price alone was priced as a single GPU."""
    if prices.gpu_price is None or prices.gpu_count is not None or gpu_names:
        return None
    return (
        f"priced as 1 GPU at ${prices.gpu_price:g}/GPU-hour (no GPU measured here): "
        "pass --gpu-count N for a server with N GPUs"
    )


def validate_prices(prices: Prices) -> None:
    """Check the price flags before the run, so a typo costs no measurement."""
    try:
        cost_inputs(prices, [])
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if prices.instance_price is not None and prices.gpu_count is None:
        raise BenchError(
            "--instance-price is for the whole instance: also give --gpu-count "
            "(the GPUs serving the endpoint)"
        )


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
    store: Store, run_id: int, prices: Prices, cs: CollectorSet, origin_ns: int,
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
        inputs: CostInputs | str = cost_inputs(prices, gpus)
    except ValueError as exc:
        inputs = f"cost not computed: {exc}"
    cost = window_cost(store.con, run_id, window, inputs, energy)
    note = one_gpu_note(prices, gpus)
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
    store: Store, run_id: int, prices: Prices, cs: CollectorSet, origin_ns: int,
    parts: RunResults,
) -> RunResults:  # fmt: skip
    """A settled run's results: `parts` (outcome, books, client, traffic and the run's own
    warnings) completed with the measurement window (stored here), energy, cost and the
    server view over it, the collectors' facts, and each section's warnings copied once into
    the run's list. Store it with benchbench.results.write_results."""
    from benchbench.server_view import server_view

    window = store_window(store, run_id)
    energy, cost = energy_and_cost(store, run_id, prices, cs, origin_ns, window)
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
