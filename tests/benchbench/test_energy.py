"""Energy arithmetic, fed by the NVML collector running against a scripted fake NVML."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.energy import (
    DeviceSeries,
    attribute_energy,
    compute_energy,
    counter_energy_j,
    power_integral_j,
    series_from_rows,
)
from collectors.nvml import NvmlCollector
from collectors.prometheus import parse_exposition
from tests.collectors.fake_nvml import FakeClock, FakeGpu, FakeNvml

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


def test_dcgm_counters_from_two_scrapes() -> None:
    page = (Path(__file__).parents[1] / "collectors" / "data" / "dcgm_exporter.txt").read_text()
    url = "http://gpu-node-07:9400/metrics"
    later = page.replace("81234567890", "81239567890").replace("79876543210", "79877543210")
    samples = parse_exposition(page, url, 0) + parse_exposition(later, url, 10 * S)
    rows = [(s.collector, s.device, s.t_ns, s.metric, s.value) for s in samples]
    series = series_from_rows(rows)
    assert [s.device for s in series] == [url + "#gpu=0", url + "#gpu=1"]
    result = compute_energy(series, 0, 10 * S, output_tokens=6000)
    assert result is not None
    assert result.source == "dcgm_counter"
    assert [d.energy_j for d in result.devices] == [pytest.approx(5000), pytest.approx(1000)]
    assert result.j_per_output_token == pytest.approx(1.0)


def test_one_source_is_used_when_several_saw_the_same_gpus() -> None:
    counter = tuple((i * S, i * 100_000.0) for i in range(11))
    series = [
        DeviceSeries("http://h:9400/metrics#gpu=0", source="dcgm", energy_mj=counter),
        DeviceSeries("0", source="nvml", energy_mj=counter),
    ]
    result = compute_energy(series, 0, 10 * S, output_tokens=1)
    assert result is not None and result.source == "nvml_counter"
    assert result.gross_j == pytest.approx(1000)
    assert "ignored dcgm" in result.warnings[0]


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
