"""Energy and cost end to end: `run_benchmark` against the simulator in its own process, with
a scripted fake NVML (2 GPUs drawing 100 W each while idle and 300 W each under load), a fake
that fails mid-run, the simulator's own /metrics, and a power agent on loopback.

The fake NVML and the run share one clock, so the expected joules are hand arithmetic:
watts x seconds of the stored windows.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchbench.collect import CollectorSet, build_collectors
from benchbench.config import make_config
from benchbench.execute import RunResult, run_benchmark
from benchbench.sim import SimConfig, SimProcess
from collectors.agent import make_agent_server
from tests.collectors.fake_nvml import FakeGpu, FakeNvml
from tests.collectors.pages import PageServer, dcgm_page

IDLE_W = 100.0  # per GPU
LOAD_W = 300.0  # per GPU
GPUS = 2
IDLE_S = 0.5
SAMPLE_HZ = 100.0  # the collector's top rate: 10 ms between counter readings
GPU_PRICE = 2.0  # USD per GPU-hour
KWH_PRICE = 0.15
PUE = 1.2
FAR_FUTURE_S = 1e9


class LoadSwitchClock:
    """The run's clock (integer ns since construction); it also tells the fake GPUs when the
    load begins: `on_load(t_ns)` is called once, right after the run's idle baseline has
    ended (CollectorSet.idle_baseline, wrapped by `install`) and before any request is sent,
    so every sample of the idle window saw idle power and every sample of the measurement
    window load power. The fake NVML reads `now` (never switches).
    """

    def __init__(self, on_load: Callable[[int], None]) -> None:
        self._base = time.monotonic_ns()
        self._on_load = on_load
        self.origin_ns: int | None = None  # the run's first reading: the run origin
        self.load_from_ns: int | None = None

    def now(self) -> int:
        return time.monotonic_ns() - self._base

    def __call__(self) -> int:
        t = self.now()
        if self.origin_ns is None:
            self.origin_ns = t
        return t

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = CollectorSet.idle_baseline

        async def then_load(cs: CollectorSet, clock: Any, stop: Any, **kw: Any) -> None:
            await original(cs, clock, stop, **kw)
            self.load_from_ns = self.now()
            self._on_load(self.load_from_ns)

        monkeypatch.setattr(CollectorSet, "idle_baseline", then_load)


def scripted_gpus() -> list[FakeGpu]:
    # Two steps from the start so that switching is an attribute swap of an equal-length list
    # (the collector thread may be integrating the steps at that moment).
    return [
        FakeGpu(uuid=f"GPU-{i}{i}{i}{i}", steps=[(0.0, IDLE_W), (FAR_FUTURE_S, LOAD_W)])
        for i in range(GPUS)
    ]


def switch_to_load(gpus: list[FakeGpu]) -> Callable[[int], None]:
    def on_load(t_ns: int) -> None:
        for gpu in gpus:
            gpu.steps = [(0.0, IDLE_W), (t_ns / 1e9, LOAD_W)]

    return on_load


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """Fixed timings: a request of 30 output tokens takes ~155 ms; a run of 24 at
    concurrency 4 lasts ~1 s."""
    cfg = SimConfig(
        prefill_base_ms=5,
        prefill_ms_per_token=0,
        decode_base_ms=5,
        decode_ms_per_seq=0,
        max_batch=64,
    )
    with SimProcess(cfg) as sim:
        yield sim.base_url


def energy_run(url: str, db: Path, clock: LoadSwitchClock, nvml: FakeNvml, **kw: Any) -> RunResult:
    settings: dict[str, Any] = dict(
        concurrency=4,
        requests=24,
        input_len="50",
        output_len="30",
        gpus="0,1",  # explicit: CUDA_VISIBLE_DEVICES on the test host must not select
        idle_seconds=IDLE_S,
        sample_hz=SAMPLE_HZ,
        gpu_price=GPU_PRICE,
        kwh_price=KWH_PRICE,
        pue=PUE,
    )
    cfg = make_config(endpoint=url, db=str(db), **{**settings, **kw})
    return run_benchmark(cfg, clock=clock, nvml=nvml)


def rows(db: Path, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def output_tokens_in_window(db: Path, run_id: int, t0: int, t1: int) -> int:
    """Each ok request's output tokens in proportion to its token events inside [t0, t1]."""
    total = 0.0
    requests = rows(
        db,
        "SELECT idx, output_tokens FROM requests WHERE run_id = ? AND error_kind IS NULL",
        [run_id],
    )
    for idx, out in requests:
        times = [
            t
            for (t,) in rows(
                db, "SELECT t_ns FROM token_events WHERE run_id = ? AND idx = ?", [run_id, idx]
            )
        ]
        total += out * sum(t0 <= t <= t1 for t in times) / len(times)
    return round(total)


def test_energy_and_cost_of_a_run_match_hand_arithmetic(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpus = scripted_gpus()
    clock = LoadSwitchClock(switch_to_load(gpus))
    clock.install(monkeypatch)
    db = tmp_path / "e.duckdb"
    result = energy_run(sim_url, db, clock, FakeNvml(gpus, clock=clock.now))
    s = result.summary
    assert s.sent == s.ok == 24
    assert clock.origin_ns is not None and clock.load_from_ns is not None
    e, c = s.extra["energy"], s.extra["cost"]
    assert e["source"] == "nvml_counter"
    assert list(e["gpus"]) == ["0", "1"]

    # The GPUs switched right after the stored end of the idle window, and the measurement
    # window (first send to last completion) lies wholly after the switch.
    i0, i1 = e["idle_window_ns"]
    assert i1 <= clock.load_from_ns - clock.origin_ns
    assert (i1 - i0) / 1e9 == pytest.approx(IDLE_S, abs=0.1)
    ((t0, t1),) = rows(
        db, "SELECT window_start_ns, window_end_ns FROM runs WHERE run_id = ?", [s.run_id]
    )
    assert clock.load_from_ns - clock.origin_ns <= t0 < t1
    window_s = (t1 - t0) / 1e9
    assert e["window_s"] == pytest.approx(window_s, rel=1e-9)

    # Constant power inside each window. The counter is read at the window edges by linear
    # interpolation between samples 10 ms apart; a pair straddling the switch is off by at
    # most 400 W x 10 ms / 4 = 1 J (0.2% of the ~600 J window, 1% of the ~100 J idle phase).
    assert e["gross_j"] == pytest.approx(GPUS * LOAD_W * window_s, rel=0.005)
    assert e["avg_power_w"] == pytest.approx(GPUS * LOAD_W, rel=0.005)
    assert e["avg_power_w_per_gpu"] == pytest.approx(LOAD_W, rel=0.005)
    assert e["idle_w"] == pytest.approx(GPUS * IDLE_W, rel=0.02)
    assert e["net_j"] == pytest.approx(e["gross_j"] - e["idle_w"] * window_s, rel=1e-9)
    assert e["net_j"] == pytest.approx(GPUS * (LOAD_W - IDLE_W) * window_s, rel=0.02)
    assert list(e["warnings"]) == []
    assert e["verdict"]["status"] == "ok", e["verdict"]

    out = output_tokens_in_window(db, s.run_id, t0, t1)
    assert 0 < out <= s.output_tokens
    assert e["output_tokens"] == c["output_tokens"] == out
    assert e["j_per_output_token"] == pytest.approx(e["gross_j"] / out, rel=1e-9)
    assert e["kwh_per_1m_output_tokens"] == pytest.approx(e["gross_j"] / out / 3.6e6 * 1e6)

    # Cost: GPU-hours of the window at the given price, per token; energy priced separately.
    assert c["price_source"] == "user"
    assert c["usd_per_hour"] == pytest.approx(GPU_PRICE * GPUS)  # GPU count from NVML
    assert c["window_s"] == pytest.approx(window_s, rel=1e-9)
    assert c["usd_per_1m_output_tokens"] == pytest.approx(
        GPU_PRICE * GPUS * (window_s / 3600) / out * 1e6, rel=1e-9
    )
    kwh = e["gross_j"] / 3.6e6
    assert c["energy_kwh"] == pytest.approx(kwh, rel=1e-9)
    assert c["energy_cost_usd"] == pytest.approx(kwh * PUE * KWH_PRICE, rel=1e-9)
    assert c["energy_usd_per_1m_output_tokens"] == pytest.approx(
        kwh * PUE * KWH_PRICE / out * 1e6, rel=1e-9
    )

    # The samples are on the run clock: idle power before the switch, load power from the
    # first send on, and they span the idle phase and the whole measurement window.
    power = rows(
        db,
        """SELECT device, t_ns, value FROM samples
           WHERE run_id = ? AND collector = 'nvml' AND metric = 'power_instant_w'""",
        [s.run_id],
    )
    assert {d for d, _, _ in power} == {"0", "1"}
    assert all(w == IDLE_W for _, t, w in power if t < i1)
    assert all(w == LOAD_W for _, t, w in power if t >= t0)
    times = [t for _, t, _ in power]
    ended_ns = rows(db, "SELECT ended_ns FROM runs WHERE run_id = ?", [s.run_id])[0][0]
    assert 0 <= min(times) <= i0 + 50_000_000  # the collector starts before the idle phase
    assert max(times) >= t1
    # ended_ns is the runner's end; the collectors stop just after it (one reading may land).
    assert max(times) <= ended_ns + 50_000_000
    # 100 Hz x 2 GPUs, at least half of it on a busy 2-core machine.
    assert len(power) >= 0.5 * SAMPLE_HZ * GPUS * (window_s + IDLE_S)


def test_nvml_failing_mid_run_degrades_the_collector_and_the_load_completes(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpus = scripted_gpus()
    switch = switch_to_load(gpus)

    def on_load(t_ns: int) -> None:
        switch(t_ns)
        fake.fail_from_s = t_ns / 1e9 + 0.2  # NVML breaks 200 ms into the load

    clock = LoadSwitchClock(on_load)
    clock.install(monkeypatch)
    fake = FakeNvml(gpus, clock=clock.now)
    db = tmp_path / "d.duckdb"
    result = energy_run(sim_url, db, clock, fake)
    s = result.summary
    assert s.sent == s.ok == 24
    assert s.status == "complete"
    degraded = s.extra["collectors"]["nvml"]["degraded"]
    assert "stopped after 3 consecutive failures" in degraded and "Unknown Error" in degraded
    assert any(w.startswith("collector nvml degraded:") for w in s.extra["warnings"])
    stored_warnings = json.loads(
        rows(db, "SELECT warnings FROM runs WHERE run_id = ?", [s.run_id])[0][0]
    )
    assert any("collector nvml degraded" in w for w in stored_warnings)

    # What was read before the failure is kept; nothing is stamped after it.
    assert clock.origin_ns is not None and fake.fail_from_s is not None
    fail_ns = round(fake.fail_from_s * 1e9) - clock.origin_ns
    ((n, last_t),) = rows(
        db,
        "SELECT count(*), max(t_ns) FROM samples WHERE run_id = ? AND collector = 'nvml'",
        [s.run_id],
    )
    assert n > 0 and last_t < fail_ns
    # The window outlives the samples: the energy figure says it is an underestimate.
    e = s.extra["energy"]
    assert any("cover only" in w for w in e["warnings"]), e


def test_the_simulators_metrics_are_scraped_when_no_endpoint_is_given(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    result = run_benchmark(
        make_config(db=str(db), requests=20, nvml=False, sim_fast=True, scrape_interval_s=0.1)
    )
    assert result.summary.sent == result.summary.ok == 20
    metrics = rows(
        db,
        """SELECT DISTINCT device, metric FROM samples
           WHERE run_id = ? AND collector = 'prometheus'""",
        [result.run_id],
    )
    assert metrics, "no Prometheus samples from the simulator"
    assert all(m.startswith("sim:") for _, m in metrics)
    assert {"sim:prompt_tokens_total", "sim:generation_tokens_total"} <= {m for _, m in metrics}
    assert all(d.endswith("/metrics") for d, _ in metrics)


def test_power_agent_on_loopback_is_the_energy_source(sim_url: str, tmp_path: Path) -> None:
    base = time.monotonic_ns()
    remote = FakeNvml(
        [FakeGpu(uuid=f"GPU-{i}", steps=[(0.0, LOAD_W)]) for i in range(GPUS)],
        clock=lambda: time.monotonic_ns() - base,
    )
    agent = make_agent_server(port=0, token="s3cret", nvml=remote)
    thread = threading.Thread(target=agent.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    db = tmp_path / "a.duckdb"
    try:
        result = run_benchmark(
            make_config(
                endpoint=sim_url,
                db=str(db),
                concurrency=4,
                # ~2.4 s of load: a poll delayed by tens of ms on a busy 2-core machine
                # moves an edge reading, and must stay well inside the 2% below.
                requests=64,
                input_len="50",
                output_len="30",
                nvml=False,
                power_agent=agent.url,
                power_agent_token="s3cret",
                idle_seconds=0.3,
                sample_hz=50,
            )
        )
    finally:
        agent.shutdown()
        agent.server_close()
        thread.join(5.0)
    s = result.summary
    assert s.sent == s.ok == 64
    e = s.extra["energy"]
    assert "agent" in e["source"]
    # Constant power; agent samples are stamped when each reply arrives, a ms or so after
    # the remote reading, which moves the edge readings by about 600 W x 1 ms.
    assert e["avg_power_w"] == pytest.approx(GPUS * LOAD_W, rel=0.02)
    assert e["idle_w"] == pytest.approx(GPUS * LOAD_W, rel=0.02)
    assert len(s.extra["collectors"]["agent"]["gpus"]) == GPUS
    (config,) = rows(db, "SELECT config FROM runs WHERE run_id = ?", [s.run_id])[0]
    assert "s3cret" not in config and json.loads(config)["power_agent_token"] == "***"
    (n,) = rows(
        db, "SELECT count(*) FROM samples WHERE run_id = ? AND collector = 'agent'", [s.run_id]
    )[0]
    assert n > 0


# -- the energy source rule and the idle baseline ----------------------------------------------

REMOTE = "http://inference.invalid:8000/v1"  # never contacted: building collectors sends nothing


def collectors_for(nvml: Any | None = None, **flags: Any) -> CollectorSet:
    """build_collectors for the config that these flags give."""
    cfg = make_config(**flags)
    return build_collectors(cfg.collect, cfg.target, nvml=nvml)


def two_local_gpus() -> FakeNvml:
    return FakeNvml([FakeGpu(uuid="GPU-0000", name="NVIDIA RTX 4000"),
                     FakeGpu(uuid="GPU-1111", name="NVIDIA RTX 4000")])  # fmt: skip


def test_local_gpus_are_measured_only_for_a_local_endpoint_or_when_asked() -> None:
    remote = collectors_for(endpoint=REMOTE, nvml=two_local_gpus())
    assert [c.name for c in remote.collectors] == []
    (why,) = remote.source_notes
    assert why.startswith("local GPUs not measured: the endpoint (inference.invalid) is not on")
    assert "--power-agent" in why and "--gpus" in why
    assert remote.notes == ["energy not measured: " + why.split(": ", 1)[1]]

    asked = collectors_for(endpoint=REMOTE, gpus="1", nvml=two_local_gpus())
    assert [c.name for c in asked.collectors] == ["nvml"]
    assert asked.source_notes == ["local GPU(s) 1 (NVIDIA RTX 4000) measured: asked with --gpus 1"]
    assert asked.gpu_names() == ["NVIDIA RTX 4000"]  # the cost counts the measured GPUs

    for local in (
        None,
        "http://localhost:8000/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8/v1",
    ):
        cs = collectors_for(endpoint=local, gpus=None, nvml=two_local_gpus())
        assert "nvml" in [c.name for c in cs.collectors], local
        assert cs.source_notes[0].startswith("local GPU(s) 0 (NVIDIA RTX 4000), 1 ")

    agent = collectors_for(power_agent="http://127.0.0.1:9/", sample_hz=10, nvml=two_local_gpus())
    assert [c.name for c in agent.collectors if c.name != "prometheus"] == ["agent"]
    assert agent.source_notes[0].startswith("local GPUs not measured: --power-agent")
    assert "energy from the power agent at http://127.0.0.1:9" in agent.source_notes[1]


def test_a_dcgm_page_gets_an_idle_phase_whatever_its_port_and_counts_its_gpus() -> None:
    gpus = [FakeGpu(name="NVIDIA H200"), FakeGpu(name="NVIDIA H200")]
    with PageServer(dcgm_page(gpus, 0.0)) as page:
        assert ":9400" not in page.url and "dcgm" not in page.url
        cs = collectors_for(endpoint=REMOTE, scrape=(page.url,), idle_seconds=2)
        assert cs.idle_seconds == 0.0  # not known before the first scrape
        cs.start(time.monotonic_ns, Sink())
        try:
            assert cs.has_energy_source and cs.idle_seconds == 2.0
            assert cs.gpu_names() == ["NVIDIA H200", "NVIDIA H200"]
        finally:
            cs.stop()


class Sink:
    """Stands in for the store's writer."""

    def __init__(self) -> None:
        self.samples: list[Any] = []

    def add_samples(self, samples: list[Any]) -> None:
        self.samples.extend(samples)


def idle_phase(steps: list[tuple[float, float]], idle_s: float, settle_max_s: float) -> Any:
    """Run CollectorSet.idle_baseline against a GPU whose power follows `steps` (s after the
    start); return the set and the clock origin."""
    base = time.monotonic_ns()
    clock = lambda: time.monotonic_ns() - base  # noqa: E731
    gpu = FakeGpu(steps=steps)
    cs = collectors_for(
        gpus="0", idle_seconds=idle_s, sample_hz=50, nvml=FakeNvml([gpu], clock=clock)
    )
    sink = Sink()
    cs.start(clock, sink)
    try:
        asyncio.run(cs.idle_baseline(clock, asyncio.Event(), settle_max_s=settle_max_s))
    finally:
        cs.stop()
    assert sink.samples, "idle samples go to the store as they are taken"
    return cs


def test_the_idle_baseline_waits_for_power_to_settle_after_load() -> None:
    cooling = [(0.0, 300.0), (0.5, 200.0), (1.0, 130.0), (1.5, 105.0), (2.0, 100.0)]
    cs = idle_phase(cooling, idle_s=0.6, settle_max_s=5.0)
    assert cs.idle_settle is not None and cs.idle_settle["settled"] is True
    assert cs.idle_settle["waited_s"] >= 0.25  # it slid the window on past the cooling
    # After the cooling: the halves agree within 5% (or 5 W) once the window holds at most a
    # sliver of the 130 W step, which ends at 1.5 s (from a start at ~1.445 s on; where it
    # starts depends on how the 0.25 s polls fall, so no exact start is asserted).
    assert cs.idle_window is not None and cs.idle_window[0] >= 1.44e9
    assert cs.idle_settle["first_half_w"] <= 110.0

    idle = idle_phase([(0.0, 100.0)], idle_s=0.6, settle_max_s=5.0)
    assert idle.idle_settle is not None and idle.idle_settle["settled"] is True
    assert idle.idle_settle["waited_s"] < 0.6  # an idle GPU costs no extra wait

    falling = [(i * 0.1, 400.0 - 10 * i) for i in range(30)]
    late = idle_phase(falling, idle_s=0.6, settle_max_s=0.5)
    assert late.idle_settle is not None and late.idle_settle["settled"] is False
    assert late.idle_settle["first_half_w"] > late.idle_settle["second_half_w"]
    assert late.idle_window is not None  # measured all the same, and said so


def warmup_tokens_in_window(db: Path, run_id: int, t0: int, t1: int) -> tuple[int, float]:
    """(warm-up requests with token events inside [t0, t1], their output tokens there in
    proportion to those events), by hand from the stored rows."""
    count, total = 0, 0.0
    warm = rows(
        db,
        "SELECT idx, output_tokens FROM requests WHERE run_id = ? AND warmup "
        "AND error_kind IS NULL",
        [run_id],
    )
    for idx, out in warm:
        times = [t for (t,) in rows(
            db, "SELECT t_ns FROM token_events WHERE run_id = ? AND idx = ?", [run_id, idx]
        )]  # fmt: skip
        inside = sum(t0 <= t <= t1 for t in times)
        if inside:
            count, total = count + 1, total + out * inside / len(times)
    return count, total


def test_warmup_still_generating_in_the_window_counts_its_tokens_with_its_energy(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpus = scripted_gpus()
    clock = LoadSwitchClock(switch_to_load(gpus))
    clock.install(monkeypatch)
    db = tmp_path / "w.duckdb"
    # Four warm-ups of different lengths at concurrency 4: the first measured request is sent
    # when the shortest finishes, while the others are still generating.
    result = energy_run(
        sim_url, db, clock, FakeNvml(gpus, clock=clock.now), warmup=4,
        output_len="uniform:min=5,max=80", seed=3,
    )  # fmt: skip
    s = result.summary
    assert s.warmup == 4 and s.sent == s.ok == 24
    e, c = s.results.energy, s.results.cost
    assert e is not None and c is not None and e.unavailable is None
    ((t0, t1),) = rows(
        db, "SELECT window_start_ns, window_end_ns FROM runs WHERE run_id = ?", [s.run_id]
    )
    warm_requests, warm_tokens = warmup_tokens_in_window(db, s.run_id, t0, t1)
    assert warm_requests >= 1 and warm_tokens > 0, "the warm-ups must overlap the window"

    assert e.output_tokens == s.output_tokens + round(warm_tokens)
    assert e.output_tokens > s.output_tokens  # every measured token is inside the window
    assert c.output_tokens == s.output_tokens  # cost and throughput: measured tokens only
    assert e.j_per_output_token == pytest.approx(e.gross_j / e.output_tokens, rel=1e-9)
    assert (
        f"{warm_requests} warm-up request(s) were still generating inside the window: "
        f"their {round(warm_tokens):,} tokens are counted with their energy"
    ) in e.notes

    # The collectors' account travels with the energy: which GPUs and why, the idle phase.
    assert e.source_notes == ("local GPU(s) 0 (NVIDIA H100 80GB HBM3), 1 (NVIDIA H100 80GB "
                              "HBM3) measured: asked with --gpus 0,1",)  # fmt: skip
    assert e.idle_settle is not None and e.idle_settle["settled"] is True
    assert e.idle_verdict is not None and e.idle_verdict["status"] == "ok"
