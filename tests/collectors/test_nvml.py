"""NvmlCollector against the fake NVML (no GPU needed), plus one real-GPU test."""

from __future__ import annotations

import time

import pytest

from collectors.nvml import DETAIL_METRICS, FAST_METRICS, NvmlCollector, NvmlUnavailable
from tests.collectors.fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NO_PERMISSION,
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


MIG_UUID = "MIG-5e2b1a0c-1111-5c3d-9e8f-000000000001"


def mig_host(clock: FakeClock) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-aaaa"),
            FakeGpu(uuid="GPU-bbbb", mig_uuids=[MIG_UUID, MIG_UUID[:-1] + "2"]),
        ],
        clock=clock,
    )


def test_a_mig_instance_selects_its_gpu_and_says_energy_is_the_whole_gpus() -> None:
    clock = FakeClock()
    c = NvmlCollector(nvml=mig_host(clock), env={"CUDA_VISIBLE_DEVICES": MIG_UUID})
    assert [g.index for g in c.gpus] == [1]
    assert c.gpus[0].supported["energy_mj"] is True  # read on the parent GPU
    (note,) = c.info()["notes"]
    assert MIG_UUID in note and "whole GPU" in note
    # A prefix, as CUDA accepts, resolves too.
    assert [g.index for g in NvmlCollector(nvml=mig_host(clock), gpus=["MIG-5e2b"]).gpus] == [1]
    # By index on a GPU in MIG mode: said too.
    by_index = NvmlCollector(nvml=mig_host(clock), gpus=[1])
    assert "GPU 1 is in MIG mode" in by_index.info()["notes"][0]
    assert NvmlCollector(nvml=mig_host(clock), gpus=[0]).info()["notes"] == []
    # GPU-UUID selection keeps working.
    env = {"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}
    assert [g.index for g in NvmlCollector(nvml=mig_host(clock), env=env).gpus] == [1]


def test_a_gpu_nvml_refuses_is_lost_alone_and_others_are_never_opened() -> None:
    clock = FakeClock()
    gpus = [FakeGpu(uuid="GPU-aaaa", handle_error=NVML_ERROR_NO_PERMISSION),
            FakeGpu(uuid="GPU-bbbb"), FakeGpu(uuid="GPU-cccc")]  # fmt: skip
    fake = FakeNvml(gpus, clock=clock)
    one = NvmlCollector(nvml=fake, gpus=[1])
    assert [g.index for g in one.gpus] == [1]
    assert fake.opened == {1}  # filtered before being opened
    every = NvmlCollector(nvml=FakeNvml(gpus, clock=clock), env={})
    assert [g.index for g in every.gpus] == [1, 2]
    (warning,) = every.info()["warnings"]
    assert warning == "GPU 0 left out: NVML refused its handle (Insufficient Permissions)"
    every.attach(clock)
    assert every.poll_once()
    lost = FakeGpu(uuid="GPU-dddd", handle_error=NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(NvmlUnavailable, match="no selected GPU could be opened: GPU 0 left out"):
        NvmlCollector(nvml=FakeNvml([lost], clock=clock), env={})


def test_a_reading_failing_at_start_is_retried_not_dropped_for_the_run() -> None:
    clock = FakeClock()
    briefly = FakeNvml([FakeGpu(flaky_reads=1)], clock=clock)
    assert NvmlCollector(nvml=briefly, env={}).gpus[0].supported["energy_mj"] is True
    longer = FakeNvml([FakeGpu(flaky_reads=3)], clock=clock)  # fails every probe attempt
    c = NvmlCollector(nvml=longer, env={})
    assert c.gpus[0].pending == {"energy_mj"}
    assert c.info()["gpus"][0]["pending"] == ["energy_mj"]
    c.attach(clock)
    for _ in range(3):
        assert c.poll_once(), c.degraded
        clock.advance_s(0.1)
    energy = [s for s in c.drain() if s.metric == "energy_mj"]
    assert len(energy) == 3 and c.gpus[0].supported["energy_mj"] is True
    # "Not supported" is final at once.
    never = NvmlCollector(nvml=FakeNvml([FakeGpu(has_energy_counter=False)]), env={})
    assert never.gpus[0].pending == set() and never.gpus[0].supported["energy_mj"] is False


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
