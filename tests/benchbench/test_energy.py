"""Energy arithmetic, fed by the NVML collector running against a scripted fake NVML."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.energy import attribute_energy, compute_energy
from benchbench.energy_readings import counter_energy_j, power_integral_j
from benchbench.energy_samples import DeviceSeries, series_from_rows
from benchbench.energy_verdict import Verdict
from collectors.nvml import NvmlCollector
from collectors.prometheus import parse_exposition
from tests.collectors.fake_nvml import FakeClock, FakeGpu, FakeNvml
from tests.collectors.pages import dcgm_page

S = 1_000_000_000  # ns per second


def record(gpus: list[FakeGpu], until_s: float, fail_from_s: float | None = None) -> list:
    """Run the real NvmlCollector at 10 Hz on a fake clock; return store-like rows."""
    clock = FakeClock()
    c = NvmlCollector(nvml=FakeNvml(gpus, clock=clock, fail_from_s=fail_from_s), env={})
    c.attach(clock)
    for _ in range(round(until_s / 0.1) + 1):
        c.poll_once()
        clock.advance_s(0.1)
    c.stop()
    return [(s.collector, s.device, s.t_ns, s.metric, s.value) for s in c.drain()]


def idle_then_busy() -> list[FakeGpu]:
    return [
        FakeGpu(uuid="GPU-a", steps=[(0.0, 100.0), (10.0, 400.0)]),
        FakeGpu(uuid="GPU-b", steps=[(0.0, 100.0)], has_energy_counter=False),
    ]


def test_counter_is_interpolated_at_window_edges_and_summed_over_gpus() -> None:
    series = series_from_rows(record(idle_then_busy(), until_s=30))
    # Edges fall between 10 Hz samples; power is constant around them, so interpolation is exact.
    result = compute_energy(series, int(10.05 * S), int(25.03 * S), output_tokens=1000)
    assert result is not None
    gpu_a, gpu_b = result.devices
    assert gpu_a.source == "nvml_counter"
    assert gpu_a.energy_j == pytest.approx(400 * 14.98)
    # GPU b has no counter: its instant power is integrated instead.
    assert gpu_b.source == "nvml_power_integral"
    assert gpu_b.energy_j == pytest.approx(100 * 14.98)
    assert result.source == "nvml_counter+nvml_power_integral"
    assert result.gross_j == pytest.approx(500 * 14.98)
    assert result.avg_w_total == pytest.approx(500)
    assert result.avg_w_per_gpu == pytest.approx(250)
    assert result.warnings == ()


def test_edge_interpolation_by_hand() -> None:
    counter = [(0, 0.0), (1 * S, 1000.0), (2 * S, 3000.0)]  # mJ: 1 W, then 2 W
    assert counter_energy_j(counter, S // 2, 3 * S // 2) == (pytest.approx(1.5), 0, 1.0)
    power = [(0, 1.0), (1 * S, 1.0), (2 * S, 3.0)]
    joules, cover = power_integral_j(power, S // 2, 3 * S // 2)
    # 1 W for 0.5 s, then a trapezoid from 1 W to 2 W (interpolated at 1.5 s) for 0.5 s.
    assert joules == pytest.approx(0.5 + 0.75) and cover == 1.0


def test_counter_reset_continues_from_the_new_value() -> None:
    gpu = FakeGpu(steps=[(0.0, 200.0)], reset_at_s=5.05)
    series = series_from_rows(record([gpu], until_s=10))
    result = compute_energy(series, 0, 10 * S, output_tokens=100)
    assert result is not None
    # Only the energy between the last sample before the reset (5.0 s) and the reset itself
    # (5.05 s) is unknowable: 0.05 s x 200 W.
    assert result.gross_j == pytest.approx(2000 - 10)
    assert result.devices[0].counter_resets == 1
    assert any("went backwards 1x" in w for w in result.warnings)


def test_idle_baseline_gives_net_marginal_energy() -> None:
    series = series_from_rows(record(idle_then_busy(), until_s=30))
    result = compute_energy(
        series,
        10 * S,
        30 * S,
        output_tokens=10_000,
        input_tokens=40_000,
        idle_window=(0, 10 * S),
    )
    assert result is not None
    assert result.idle_w == pytest.approx(200)
    assert result.gross_j == pytest.approx(10_000)  # (400 + 100) W x 20 s
    assert result.net_j == pytest.approx(10_000 - 200 * 20)
    assert result.j_per_output_token == pytest.approx(1.0)
    assert result.net_j_per_output_token == pytest.approx(0.6)
    assert result.j_per_token == pytest.approx(0.2)
    assert result.kwh_per_1m_output_tokens == pytest.approx(1e6 / 3.6e6)
    assert result.output_tokens_per_j == pytest.approx(1.0)
    assert result.tokens_per_j == pytest.approx(5.0)
    assert result.gross_kwh == pytest.approx(10_000 / 3.6e6)


def test_collector_failing_mid_window_keeps_what_it_had_and_says_so() -> None:
    rows = record([FakeGpu(steps=[(0.0, 300.0)])], until_s=30, fail_from_s=20.0)
    assert max(t for _, _, t, _, _ in rows) < 20 * S
    result = compute_energy(series_from_rows(rows), 10 * S, 30 * S, output_tokens=1)
    assert result is not None
    assert result.gross_j == pytest.approx(300 * 9.9)  # up to the last good sample, 19.9 s
    assert any("cover only 50%" in w for w in result.warnings)


def test_averaged_power_only_warns_on_short_windows() -> None:
    avg = tuple((i * S // 10, 250.0) for i in range(101))  # 10 s of 1-s-averaged readings
    series = [DeviceSeries("0", power_avg_w=avg)]
    short = compute_energy(series, 1 * S, 4 * S, output_tokens=10)
    assert short is not None and short.gross_j == pytest.approx(750)
    assert short.source == "nvml_power_integral"
    assert any("~1 s average" in w for w in short.warnings)
    long = compute_energy(series, 0, 10 * S, output_tokens=10)
    assert long is not None and long.warnings == ()


def test_sanity_checks() -> None:
    t = [i * S for i in range(11)]
    counter = tuple((ti, i * 100_000.0) for i, ti in enumerate(t))  # 100 W
    power = tuple((ti, 120.0) for ti in t)  # says 120 W
    series = [DeviceSeries("0", energy_mj=counter, power_instant_w=power, power_limit_w=90.0)]
    result = compute_energy(series, 5 * S, 10 * S, output_tokens=1, idle_window=(0, 5 * S))
    assert result is not None
    text = " | ".join(result.warnings)
    assert "disagree by 20%" in text
    assert "above its power limit 90 W" in text
    assert result.gross_j == pytest.approx(500)  # the counter wins over integrated power
    # 100 W while "idle", then 50 W under load: the idle window was not idle.
    mj = [0.0]
    for i in range(1, 11):
        mj.append(mj[-1] + (100_000.0 if i <= 5 else 50_000.0))
    low = [DeviceSeries("0", energy_mj=tuple(zip(t, mj, strict=True)))]
    low_result = compute_energy(low, 5 * S, 10 * S, output_tokens=1, idle_window=(0, 5 * S))
    assert low_result is not None
    assert any("below idle power" in w for w in low_result.warnings)


def test_dcgm_counters_from_a_scraped_page() -> None:
    page = (Path(__file__).parents[1] / "collectors" / "data" / "dcgm_exporter.txt").read_text()
    url = "http://gpu-node-07:9400/metrics"
    samples = []
    for i in range(11):  # scraped every second, refreshed every second: 500 W and 100 W
        later = page.replace("81234567890", str(81234567890 + i * 500_000)).replace(
            "79876543210", str(79876543210 + i * 100_000)
        )
        samples += parse_exposition(later, url, i * S)
    rows = [(s.collector, s.device, s.t_ns, s.metric, s.value) for s in samples]
    series = series_from_rows(rows)
    assert [s.device for s in series] == [url + "#gpu=0", url + "#gpu=1"]
    result = compute_energy(series, 0, 10 * S, output_tokens=6000)
    assert result is not None
    assert result.source == "dcgm_counter"
    assert [d.energy_j for d in result.devices] == [pytest.approx(5000), pytest.approx(1000)]
    assert result.j_per_output_token == pytest.approx(1.0)
    assert [d.refresh_s for d in result.devices] == [pytest.approx(1.0)] * 2


def test_one_source_is_used_and_explicit_remote_sources_win_over_local_nvml() -> None:
    remote = tuple((i * S // 10, i * 70_000.0) for i in range(101))  # 700 W
    local = tuple((i * S // 10, i * 6_000.0) for i in range(101))  # a 60 W desktop GPU
    series = [
        DeviceSeries("http://h:9401/metrics#gpu=0", source="dcgm", energy_mj=remote),
        DeviceSeries("0", source="nvml", energy_mj=local),
        DeviceSeries("1", source="agent", energy_mj=remote),
        DeviceSeries("0", source="agent", energy_mj=remote),
    ]
    result = compute_energy(series, 0, 10 * S, output_tokens=1)
    assert result is not None and result.source == "agent_counter"
    assert result.gross_j == pytest.approx(2 * 7000)
    assert "energy from agent; ignored dcgm, nvml" in result.notes[0]
    no_agent = compute_energy(series[:2], 0, 10 * S, output_tokens=1)
    assert no_agent is not None and no_agent.source == "dcgm_counter"
    assert no_agent.gross_j == pytest.approx(7000)


def test_agent_rows_are_their_own_source() -> None:
    rows = [("agent", "0", i * S, "energy_mj", i * 1000.0) for i in range(3)]
    result = compute_energy(series_from_rows(rows), 0, 2 * S, output_tokens=0)
    assert result is not None and result.source == "agent_counter"
    assert result.j_per_output_token is None  # no tokens, no per-token figures


def test_no_data_and_bad_windows() -> None:
    assert compute_energy([], 0, S, output_tokens=1) is None
    assert compute_energy([DeviceSeries("0", energy_mj=((0, 1.0),))], 0, S, 1) is None
    with pytest.raises(ValueError, match="t1 > t0"):
        compute_energy([], S, S, output_tokens=1)


def test_energy_per_request_is_an_attribution_that_sums_to_the_total() -> None:
    parts = attribute_energy(900.0, [100, 200, 0, 300])
    assert parts == [pytest.approx(150), pytest.approx(300), 0.0, pytest.approx(450)]
    assert sum(parts) == pytest.approx(900.0)
    assert attribute_energy(5.0, [0, 0]) == [0.0, 0.0]


# -- counters as real GPUs and exporters produce them ------------------------------------------


def dcgm_rows(
    gpus: list[FakeGpu], until_s: float, collect_interval_s: float, **kw: int
) -> list[tuple[str, str, int, str, float]]:
    """dcgm-exporter pages scraped once a second (as `bench run --scrape` does)."""
    url = "http://gpu-node-07:9401/metrics"  # AIPerf's port: nothing in the URL says dcgm
    rows = []
    for i in range(round(until_s) + 1):
        page = dcgm_page(gpus, float(i), collect_interval_s=collect_interval_s, **kw)
        rows += [(x.collector, x.device, x.t_ns, x.metric, x.value)
                 for x in parse_exposition(page, url, i * S)]  # fmt: skip
    return rows


def test_a_stale_dcgm_counter_never_reads_0_j_silently() -> None:
    # The default 30 s collect interval, a true 300 W, a 20 s window inside one refresh.
    rows = dcgm_rows([FakeGpu(steps=[(0.0, 300.0)])], until_s=100, collect_interval_s=30)
    result = compute_energy(series_from_rows(rows), 62 * S, 82 * S, output_tokens=100)
    assert result is not None
    assert result.gross_j > 0
    assert result.gross_j == pytest.approx(300 * 20)  # stale but constant power, integrated
    assert result.source == "dcgm_power_integral"
    assert result.verdict.status == "invalid"
    (reason,) = result.verdict.reasons
    assert "refreshes only every 30.0 s" in reason and "20.0 s window" in reason
    assert "-c 1000" in reason and "DCGM_EXPORTER_INTERVAL" in reason
    # 45 s: still too coarse to be compared.
    longer = compute_energy(series_from_rows(rows), 40 * S, 85 * S, output_tokens=100)
    assert longer is not None and longer.verdict.status == "invalid"


def test_a_stale_counter_over_a_long_enough_window_is_read_at_its_changes() -> None:
    gpu = FakeGpu(steps=[(0.0, 300.0), (400.0, 500.0)])
    rows = dcgm_rows([gpu], until_s=1300, collect_interval_s=30)
    t0, t1 = 107.5, 1207.5  # edges anywhere in the refresh cycle
    result = compute_energy(series_from_rows(rows), int(t0 * S), int(t1 * S), output_tokens=1)
    assert result is not None and result.source == "dcgm_counter"
    assert result.devices[0].refresh_s == pytest.approx(30.0)
    assert result.gross_j == pytest.approx(gpu.energy_j(t1, from_s=t0), rel=0.02)
    assert result.verdict.status == "ok", result.verdict


def test_mig_instance_rows_count_their_gpu_once_and_jitter_is_not_a_reset() -> None:
    gpus = [FakeGpu(uuid="GPU-a", steps=[(0.0, 300.0)]), FakeGpu(uuid="GPU-b")]
    rows = dcgm_rows(gpus, until_s=30, collect_interval_s=1, mig_rows=3, jitter_mj=40)
    series = series_from_rows(rows)
    assert len(series) == 6  # one series per GPU-instance row
    result = compute_energy(series, 5 * S, 25 * S, output_tokens=1)
    assert result is not None
    assert result.gross_j == pytest.approx((300 + 100) * 20, rel=0.001)
    assert [d.counter_resets for d in result.devices] == [0, 0]
    assert any("3 MIG instance rows" in n for n in result.notes)
    assert result.verdict.status == "ok", result.verdict
    # Asked per instance: that instance's row, which says it is the whole GPU's energy.
    one = compute_energy(series, 5 * S, 25 * S, output_tokens=1, mig_instances={"2"})
    assert one is not None and len(one.devices) == 2
    assert any("whole GPU's energy" in n for n in one.notes)


def test_a_driver_reload_is_a_reset_and_small_steps_back_are_not() -> None:
    t = [i * S // 10 for i in range(101)]
    wobbly = [(ti, 9e6 + i * 10_000.0 + (-500.0 if i % 2 else 0.0)) for i, ti in enumerate(t)]
    result = compute_energy([DeviceSeries("0", energy_mj=tuple(wobbly))], 0, 10 * S, 1)
    assert result is not None and result.devices[0].counter_resets == 0
    assert result.gross_j == pytest.approx(1000, abs=1)
    reload = FakeGpu(steps=[(0.0, 200.0)], reset_at_s=5.05, counter_step_s=0.1)
    again = compute_energy(series_from_rows(record([reload], until_s=10)), 0, 10 * S, 1)
    assert again is not None and again.devices[0].counter_resets == 1
    assert again.gross_j == pytest.approx(2000, rel=0.02)


def test_a_frozen_counter_falls_back_to_power_and_says_so() -> None:
    rows = record([FakeGpu(steps=[(0.0, 300.0)], frozen_from_s=0.0)], until_s=20)
    result = compute_energy(series_from_rows(rows), 5 * S, 15 * S, output_tokens=1000)
    assert result is not None
    assert result.gross_j == pytest.approx(3000)
    assert result.j_per_output_token == pytest.approx(3.0)
    assert result.source == "nvml_power_integral"
    assert result.verdict.status == "partial"
    assert "did not move" in result.verdict.reasons[0]
    # Frozen half way through the window: the stall is seen against power.
    rows = record([FakeGpu(steps=[(0.0, 300.0)], frozen_from_s=10.0)], until_s=20)
    half = compute_energy(series_from_rows(rows), 5 * S, 15 * S, output_tokens=1000)
    assert half is not None and half.gross_j == pytest.approx(3000)
    assert half.verdict.status == "partial"
    assert "stalled for 5.0 s" in half.verdict.reasons[0]


def test_a_frozen_counter_without_power_is_invalid() -> None:
    flat = tuple((i * S // 10, 5e6) for i in range(101))
    result = compute_energy([DeviceSeries("0", energy_mj=flat)], 0, 10 * S, output_tokens=1)
    assert result is not None and result.gross_j == 0
    assert result.verdict.status == "invalid"
    assert "did not move" in result.verdict.reasons[0]


def test_short_windows_on_a_stepping_counter_are_partial() -> None:
    rows = record([FakeGpu(steps=[(0.0, 300.0)], counter_step_s=0.1)], until_s=40)
    series = series_from_rows(rows)
    short = compute_energy(series, int(10.03 * S), int(11.03 * S), output_tokens=1)
    assert short is not None and short.verdict.status == "partial"
    assert "steps every 100 ms" in short.verdict.reasons[0]
    assert "±10%" in short.verdict.reasons[0]
    assert short.gross_j == pytest.approx(300, rel=0.15)
    long = compute_energy(series, int(5.03 * S), int(35.03 * S), output_tokens=1)
    assert long is not None and long.verdict.status == "ok", long.verdict
    assert long.gross_j == pytest.approx(9000, rel=0.01)


def test_averaged_power_lags_and_is_flagged_on_short_windows() -> None:
    gpu = FakeGpu(steps=[(0.0, 100.0), (5.0, 400.0)], has_energy_counter=False,
                  has_power_instant=False, avg_window_s=1.0)  # fmt: skip
    result = compute_energy(series_from_rows(record([gpu], until_s=10)), 5 * S, 8 * S, 1)
    assert result is not None and result.verdict.status == "partial"
    assert result.gross_j < gpu.energy_j(8.0, from_s=5.0)  # the 1-s average lags the step


def test_idle_baseline_over_half_covered_samples_and_its_verdict() -> None:
    rows = record([FakeGpu(steps=[(0.0, 100.0), (10.0, 400.0)])], until_s=30)
    idle = [r for r in rows if r[2] >= 5 * S]  # the collector began half way through idle
    result = compute_energy(series_from_rows(idle), 10 * S, 30 * S, 1, idle_window=(0, 10 * S))
    assert result is not None and result.idle_w == pytest.approx(100, rel=0.01)
    assert result.idle_verdict is not None and result.idle_verdict.status == "partial"
    assert "cover only 50%" in result.idle_verdict.reasons[0]
    assert result.verdict.status == "ok"


def test_idle_right_after_load_is_not_settled() -> None:
    cooling = [(0.0, 400.0), (10.0, 250.0), (11.0, 180.0), (12.0, 140.0), (13.0, 120.0),
               (14.0, 110.0), (15.0, 105.0), (16.0, 102.0), (20.0, 400.0)]  # fmt: skip
    series = series_from_rows(record([FakeGpu(steps=cooling)], until_s=30))
    hot = compute_energy(series, 20 * S, 30 * S, 1, idle_window=(10 * S, 14 * S))
    assert hot is not None and hot.idle_verdict is not None
    assert hot.idle_verdict.status == "partial"
    assert "still falling" in hot.idle_verdict.reasons[0]
    settled = compute_energy(series, 20 * S, 30 * S, 1, idle_window=(16 * S, 20 * S))
    assert settled is not None and settled.idle_verdict == Verdict("ok", ())
    assert settled.idle_w == pytest.approx(102, rel=0.01)


def test_idle_window_without_samples_is_an_invalid_baseline_and_no_net() -> None:
    rows = [r for r in record([FakeGpu()], until_s=20) if r[2] >= 10 * S]
    result = compute_energy(series_from_rows(rows), 10 * S, 20 * S, 1, idle_window=(0, 5 * S))
    assert result is not None and result.net_j is None and result.idle_w is None
    assert result.idle_verdict is not None and result.idle_verdict.status == "invalid"
    assert result.verdict.as_dict() == {"status": "ok", "reasons": []}
