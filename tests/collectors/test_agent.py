"""The power agent end to end on loopback, with the fake NVML."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from collectors.agent import AgentCollector, AgentServer, make_agent_server
from tests.collectors.fake_nvml import FakeClock, FakeGpu, FakeNvml


@contextmanager
def running_agent(fake: FakeNvml, token: str | None = None) -> Iterator[AgentServer]:
    server = make_agent_server(port=0, token=token, nvml=fake)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def fake_host(clock: FakeClock) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(uuid="GPU-aaaa", steps=[(0.0, 250.0)]),
            FakeGpu(uuid="GPU-bbbb", has_energy_counter=False, has_power_instant=False),
        ],
        clock=clock,
    )


def test_snapshot_serves_counters_and_power_as_json() -> None:
    clock = FakeClock(4_000_000_000)
    with running_agent(fake_host(clock)) as server:
        assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        body = httpx.get(server.url + "/snapshot").json()
    assert body["driver_version"] == "555.42.06"
    assert isinstance(body["t_wall_s"], float)
    gpu0, gpu1 = body["gpus"]
    assert gpu0 == {
        "index": 0,
        "uuid": "GPU-aaaa",
        "name": "NVIDIA H100 80GB HBM3",
        "energy_mj": 5_000_000 + 250 * 4 * 1000,
        "power_instant_w": 250.0,
        "power_avg_w": 250.0,
        "power_limit_w": 700.0,
    }
    assert gpu1["energy_mj"] is None and gpu1["power_instant_w"] is None


def test_token_is_required_when_set() -> None:
    with running_agent(fake_host(FakeClock()), token="s3cret") as server:
        url = server.url + "/snapshot"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(url, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(server.url + "/other", headers=ok.request.headers).status_code == 404


def test_collector_polls_the_agent_like_a_local_collector() -> None:
    remote = FakeClock()
    local = FakeClock(10**12)  # the run clock: unrelated to the remote host's
    with running_agent(fake_host(remote), token="t") as server:
        c = AgentCollector(server.url, token="t")
        c.attach(local)
        for _ in range(3):
            assert c.poll_once(), c.degraded
            remote.advance_s(0.1)
            local.advance_s(0.1)
        c.stop()
    samples = c.drain()
    assert {s.collector for s in samples} == {"agent"}
    energy = [(s.t_ns, s.value) for s in samples if s.metric == "energy_mj" and s.device == "0"]
    assert energy == [
        (10**12, 5_000_000),
        (10**12 + 100_000_000, 5_025_000),
        (10**12 + 200_000_000, 5_050_000),
    ]
    gpu1 = {s.metric for s in samples if s.device == "1"}
    assert gpu1 == {"power_avg_w", "power_limit_w"}
    info = c.info()
    assert info["url"] == server.url + "/snapshot"
    assert [g["uuid"] for g in info["gpus"]] == ["GPU-aaaa", "GPU-bbbb"]


def test_collector_without_the_token_degrades_with_the_reason() -> None:
    with running_agent(fake_host(FakeClock()), token="t") as server:
        c = AgentCollector(server.url)
        c.attach(FakeClock())
        assert not c.poll_once()
        c.stop()
    assert "refused the token (HTTP 401)" in (c.degraded or "")


def test_nvml_failure_on_the_agent_is_a_503_and_degrades_the_collector() -> None:
    clock = FakeClock()
    fake = fake_host(clock)
    with running_agent(fake) as server:
        c = AgentCollector(server.url, max_failures=1)
        c.attach(FakeClock())
        assert c.poll_once()
        fake.fail_from_s = 0.0
        assert not c.poll_once()
        c.stop()
    assert c.degraded == (
        f"stopped after 1 consecutive failures: RuntimeError: agent {c.url} answered HTTP 503"
    )
    assert len(c.drain()) == 6  # the good poll's samples are kept


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        AgentCollector("gpu-host:9464")
    with pytest.raises(ValueError, match="token must not be empty"):
        make_agent_server(token="", nvml=FakeNvml())


def test_remote_readings_are_stamped_by_the_agents_clock_through_the_fastest_round_trip():
    """A busy agent answers late: stamping on arrival would move the reading by the delay.
    The agent's own time, mapped through the offset of the fastest round trip, does not."""
    poller = AgentCollector("http://127.0.0.1:9/snapshot")
    offset = 5_000_000_000  # the agent's clock runs 5 s ahead of the run clock
    # A fast poll (1 ms round trip) fixes the offset; the reading sat in its middle.
    assert poller._stamp(offset + 10_500_000, 10_000_000, 11_000_000) == 10_500_000
    # A slow poll (80 ms): the reading was taken 2 ms after sending, answered 78 ms later.
    assert poller._stamp(offset + 102_000_000, 100_000_000, 180_000_000) == 102_000_000
    # Never outside the poll's own round trip, whatever the remote clock says.
    assert poller._stamp(offset + 500_000_000, 200_000_000, 210_000_000) == 210_000_000
    assert poller.info()["clock_uncertainty_ms"] == 0.5


def test_an_agent_without_its_own_clock_is_stamped_at_the_round_trips_midpoint():
    poller = AgentCollector("http://127.0.0.1:9/snapshot")
    assert poller._stamp(None, 100, 300) == 200
