"""`bench run --ray`: the workers as Ray actors spread over a local two-node cluster."""

from __future__ import annotations

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
