"""`bench run --ray`: the workers as Ray actors spread over a local two-node cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.results import load_results

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (the optional extra: pip install 'benchbench[ray]')"
)


def test_ray_address_that_cannot_be_reached_is_a_one_line_error(tmp_path: Path) -> None:
    from benchbench.workers.ray_actors import connect

    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    from benchbench.errors import RunError

    with pytest.raises(RunError, match="could not join"):
        connect("127.0.0.1:1")


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        # Loopback only (tests/conftest.py keeps Ray off this host's own address).
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_ray_workers_run_one_per_node_and_rows_carry_both(two_nodes: Any, tmp_path: Path) -> None:
    db = tmp_path / "ray.duckdb"
    cfg = make_config(
        db=str(db), rate=20, requests=40, workers=2, ray=two_nodes.address,
        input_len="50", output_len="10",
    )  # fmt: skip
    result = run_benchmark(cfg)
    assert result.status == "complete"
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT idx, worker, error_kind FROM requests WHERE run_id = ? ORDER BY idx",
            [result.run_id],
        ).fetchall()
        results = load_results(con, result.run_id)
    assert [r[0] for r in rows] == list(range(40))
    assert all(r[2] is None for r in rows)
    node_of = {w.worker: w.node_id for w in results.workers}
    assert len(set(node_of.values())) == 2 and None not in node_of.values()
    assert {node_of[r[1]] for r in rows} == set(node_of.values())
    # One host: the clocks agree within the measured uncertainty (no shift applied).
    assert all(w.clock_uncertainty_ns is not None for w in results.workers)
    assert results.books is not None and results.books.missing == 0


@pytest.fixture(scope="module")
def slow_streams() -> Iterator[str]:
    """Streams of ~1 s (100 steps of 10 ms): at 40 req/s dozens are in flight at any time."""
    from benchbench.sim import SimConfig, SimProcess

    cfg = SimConfig(prefill_base_ms=20.0, prefill_ms_per_token=0.0, decode_base_ms=10.0,
                    decode_ms_per_seq=0.0, max_batch=256)  # fmt: skip
    with SimProcess(cfg) as sim:
        yield sim.base_url


@pytest.mark.slow
def test_a_ray_actor_killed_mid_run_leaves_worker_lost_rows_and_balanced_books(
    two_nodes: Any, slow_streams: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchbench.live import LiveStats
    from benchbench.workers import ray_actors
    from loadgen import errors

    links: list[Any] = []
    real_links = ray_actors.ray_links

    def keep_links(address: str, setups: list[Any]) -> tuple[list[Any], bool]:
        made, owned = real_links(address, setups)
        links.extend(made)
        return made, owned

    monkeypatch.setattr(ray_actors, "ray_links", keep_links)
    killed: list[bool] = []

    def kill_actor_1(stats: LiveStats, _now: int) -> None:
        if killed or stats.done < 20:
            return
        ray.kill(links[1].actor, no_restart=True)  # Ray reports it dead on the next poll
        killed.append(True)

    db = tmp_path / "ray_kill.duckdb"
    cfg = make_config(
        endpoint=slow_streams, db=str(db), rate=40, requests=160, workers=2,
        ray=two_nodes.address, input_len="50", output_len="100",
    )  # fmt: skip
    result = run_benchmark(cfg, on_live=kill_actor_1)
    assert killed
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT idx, worker, error_kind, output_tokens_expected FROM requests "
            "WHERE run_id = ? ORDER BY idx",
            [result.run_id],
        ).fetchall()
        results = load_results(con, result.run_id)
        status, warnings = con.execute("SELECT status, warnings FROM runs").fetchone()
    lost = [r for r in rows if r[2] == errors.WORKER_LOST]
    assert lost and all(r[1] == 1 for r in lost)
    assert all(r[3] == 100 for r in lost)  # what the coordinator knew of each request
    # Worker 0 sent its whole share; worker 1's share after its death was sent by nobody.
    assert sorted(r[0] for r in rows if r[1] == 0) == list(range(0, 160, 2))
    assert len(rows) < 160
    books = results.books
    assert books is not None and books.missing == 0 and books.sent == books.stored == len(rows)
    # The books balance, but a worker was lost: the run is failed, the loss said in a warning.
    assert status == "failed" == result.status
    assert any("client worker 1 died mid-run" in w for w in json.loads(warnings))
    w0, w1 = results.workers
    assert not w0.lost and w1.lost and w1.lost_requests == len(lost)
    assert w1.records + w1.unsent == 80
