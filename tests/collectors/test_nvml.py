"""NvmlCollector against the fake NVML (no GPU needed), plus one real-GPU test."""

from __future__ import annotations

import time

import pytest

from collectors.nvml import DETAIL_METRICS, FAST_METRICS, NvmlCollector, NvmlUnavailable
from tests.collectors.fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    FakeClock,
    FakeGpu,
    FakeNvml,
)


def two_gpus(clock: FakeClock, **kw: object) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-aaaa", steps=[(0.0, 100.0), (1.0, 400.0)]),
            FakeGpu(uuid="GPU-bbbb", name="NVIDIA A100-SXM4-40GB", has_energy_counter=False),
        ],
        clock=clock,
        **kw,
    )


def by_metric(samples, device):
    return {s.metric: s.value for s in samples if s.device == device}


def test_one_reading_has_every_supported_metric_in_its_units() -> None:
    clock = FakeClock(2_000_000_000)  # t = 2 s: GPU 0 draws 400 W
    c = NvmlCollector(nvml=two_gpus(clock), env={})
    c.attach(clock)
    assert c.poll_once()
    samples = c.drain()
    assert {s.collector for s in samples} == {"nvml"}
    assert {s.t_ns for s in samples} == {2_000_000_000}
    gpu0 = by_metric(samples, "0")
    assert set(gpu0) == set(FAST_METRICS) | set(DETAIL_METRICS)
    assert gpu0["power_instant_w"] == 400.0
    assert gpu0["power_avg_w"] == 400.0
    assert gpu0["power_limit_w"] == 700.0
    assert gpu0["energy_mj"] == 5_000_000 + (100 * 1 + 400 * 1) * 1000
    assert gpu0["mem_used_bytes"] == 60 * 2**30
    assert gpu0["sm_clock_mhz"] == 1980 and gpu0["temp_c"] == 45
    # The GPU without an energy counter still reports power, just not energy_mj.
    assert "energy_mj" not in by_metric(samples, "1")
    assert by_metric(samples, "1")["power_instant_w"] == 100.0
    assert c.degraded is None


def test_detail_metrics_are_read_at_their_slower_interval() -> None:
    clock = FakeClock()
    c = NvmlCollector(nvml=two_gpus(clock), interval_s=0.1, detail_interval_s=0.5, env={})
    c.attach(clock)
    for _ in range(10):
        c.poll_once()
        clock.advance_s(0.1)
    gpu0 = [s for s in c.drain() if s.device == "0"]
    assert sum(s.metric == "energy_mj" for s in gpu0) == 10
    assert sum(s.metric == "temp_c" for s in gpu0) == 2


def test_info_names_gpus_driver_and_what_each_supports() -> None:
    clock = FakeClock()
    info = NvmlCollector(nvml=two_gpus(clock), env={}).info()
    assert info["driver_version"] == "555.42.06"
    gpus = info["gpus"]
    assert [g["uuid"] for g in gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert gpus[0]["name"] == "NVIDIA H100 80GB HBM3"
    assert gpus[1]["supported"]["energy_mj"] is False
    assert "Not Supported" in gpus[1]["unsupported_reason"]["energy_mj"]


def test_gpu_selection_by_index_uuid_and_cuda_visible_devices() -> None:
    clock = FakeClock()
    assert [g.index for g in NvmlCollector(nvml=two_gpus(clock), gpus=[1]).gpus] == [1]
    assert [g.index for g in NvmlCollector(nvml=two_gpus(clock), gpus=["GPU-bb"]).gpus] == [1]
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    assert [g.index for g in NvmlCollector(nvml=two_gpus(clock), env=env).gpus] == [1]
    assert len(NvmlCollector(nvml=two_gpus(clock), env={}).gpus) == 2
    with pytest.raises(ValueError, match="GPU index 5 not found: this host has 2 GPU"):
        NvmlCollector(nvml=two_gpus(clock), gpus=[5])
    with pytest.raises(NvmlUnavailable, match="selects no GPU"):
        NvmlCollector(nvml=two_gpus(clock), env={"CUDA_VISIBLE_DEVICES": ""})


def test_nvml_that_cannot_initialise_gives_one_line_reason() -> None:
    fake = FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(NvmlUnavailable) as err:
        NvmlCollector(nvml=fake)
    assert str(err.value) == "no NVIDIA GPU/driver found (NVML: Driver Not Loaded)"
    assert "\n" not in str(err.value)
    with pytest.raises(NvmlUnavailable, match="no GPUs"):
        NvmlCollector(nvml=FakeNvml(gpus=[]))


def test_error_mid_run_degrades_keeps_samples_and_never_raises() -> None:
    clock = FakeClock()
    c = NvmlCollector(nvml=two_gpus(clock, fail_from_s=0.45), max_failures=3, env={})
    c.attach(clock)
    results = []
    for _ in range(10):
        results.append(c.poll_once())
        clock.advance_s(0.1)
    assert results[:5] == [True] * 5 and not any(results[5:])
    samples = c.drain()
    assert max(s.t_ns for s in samples) == 400_000_000  # everything before the fault kept
    assert sum(s.metric == "energy_mj" for s in samples) == 5
    assert c.degraded is not None
    assert c.degraded.startswith("stopped after 3 consecutive failures: NVMLError")


def test_stop_shuts_nvml_down() -> None:
    fake = two_gpus(FakeClock())
    c = NvmlCollector(nvml=fake, env={})
    assert fake.initialised == 1
    c.stop()
    c.stop()  # idempotent
    assert fake.initialised == 0


@pytest.mark.gpu
def test_real_nvml_collector_runs_for_two_seconds() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"NVML unavailable: {exc}")
    c = NvmlCollector(interval_s=0.1)
    c.start(time.monotonic_ns)
    time.sleep(2.0)  # a real device: let it sample for real time
    c.stop()
    samples = c.drain()
    assert c.degraded is None, c.degraded
    for gpu in c.gpus:
        mine = [s for s in samples if s.device == str(gpu.index)]
        power = [s for s in mine if s.metric == "power_avg_w"]
        assert 10 <= len(power) <= 25
        assert all(0 < s.value < 2000 for s in power)
        energy = [s.value for s in mine if s.metric == "energy_mj"]
        if gpu.supported["energy_mj"]:
            assert energy == sorted(energy)
    assert c.cpu_s < 0.2  # well under 10% of a core over 2 s
