"""`bench run --api embeddings` and `--api rerank` on the embedded simulator: every request ok,
every input and input token accounted for (the simulator counts words, which is what the
workload aims for), the summary's pooling figures instead of TTFT/TPOT, and bad workload
options a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.config import make_config
from benchbench.errors import ConfigError
from benchbench.execute import run_benchmark
from benchbench.traffic import build_traffic


def _run(tmp_path: Path, **kw: object):
    fields = dict(db=str(tmp_path / "p.duckdb"), requests=16, concurrency=4, sim_fast=True)
    fields.update(kw)
    return run_benchmark(make_config(**fields))


@pytest.mark.parametrize(
    ("api", "options", "inputs"),
    [("embeddings", {"batch_size": 4}, 4), ("rerank", {"documents": 5}, 5)],
)
def test_a_pooling_run_counts_every_input_and_token(tmp_path: Path, api, options, inputs) -> None:
    s = _run(tmp_path, api=api, input_len="uniform:min=8,max=64", **options).summary
    assert (s.sent, s.ok, s.errored) == (16, 16, 0)
    p = s.pooling
    assert p is not None
    assert p["inputs"] == 16 * inputs and p["inputs_per_request"] == inputs
    assert p["tokens_from_server"] == 16 and p["tokens_unknown"] == 0
    assert p["input_tokens"] == s.input_tokens > 0
    assert s.token_truth["input_mismatch"] == 0  # the simulator counted what was aimed for
    assert p["latency_ms"]["n"] == 16 and s.distributions["ttft_ms"].n == 0
    assert p["inputs_per_s"] == pytest.approx(p["inputs"] / s.window_s)


def test_the_same_seed_sends_the_same_texts_and_another_seed_does_not() -> None:
    def fingerprint(seed: int, batch: int = 2) -> str:
        cfg = make_config(api="embeddings", requests=8, seed=seed, batch_size=batch)
        return build_traffic(cfg).description["fingerprint"]

    assert fingerprint(1) == fingerprint(1)
    assert fingerprint(1) != fingerprint(2)
    assert fingerprint(1) != fingerprint(1, batch=3)


def test_sessions_or_traces_with_a_pooling_api_are_a_one_line_error() -> None:
    cfg = make_config(api="rerank", requests=4, session_turns="3")
    with pytest.raises(ConfigError, match="--api rerank sends one request at a time"):
        build_traffic(cfg)


def test_bench_run_prints_pooling_rows_and_puts_them_in_the_json_summary(tmp_path: Path) -> None:
    args = ["run", "--api", "embeddings", "--batch-size", "3", "--requests", "6",
            "--db", str(tmp_path / "c.duckdb"), "--sim-fast"]  # fmt: skip
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    assert "inputs/s" in shown.output and "TTFT" not in shown.output
    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    pooling = json.loads(as_json.output[as_json.output.index("{") :])["pooling"]
    assert pooling["inputs"] == 18


def test_a_dataset_gives_the_texts_in_order_cycling(tmp_path: Path) -> None:
    data = tmp_path / "docs.txt"
    data.write_text("alpha beta\ngamma\ndelta epsilon zeta\n")
    cfg = make_config(api="rerank", requests=2, documents=3, dataset=str(data), salt=False)
    specs = build_traffic(cfg).specs
    first, second = next(specs), next(specs)  # type: ignore[call-overload]
    assert (first.prompt, first.inputs) == (
        "alpha beta",
        ("gamma", "delta epsilon zeta", "alpha beta"),
    )
    assert second.prompt == "gamma" and second.input_tokens_expected is None
    s = _run(tmp_path, api="embeddings", batch_size=2, dataset=str(data)).summary
    assert s.ok == 16 and s.pooling is not None and s.pooling["inputs"] == 32
