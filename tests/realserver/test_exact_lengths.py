"""Exact prompt lengths against a real tokenizer: prompts fitted through llama-server's
/tokenize (chat template tokens measured with one real request) arrive with exactly the
requested number of input tokens, as the server itself counts them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_every_prompt_has_exactly_the_requested_input_tokens(
    llama_tiny: LlamaServer, tmp_path: Path, api: str
) -> None:
    db = tmp_path / "exact.duckdb"
    result = run_benchmark(
        make_config(
            endpoint=llama_tiny.base_url,
            api=api,
            db=str(db),
            requests=24,
            concurrency=4,
            input_len="uniform:min=40,max=400",
            output_len="8",
            exact_lengths="server",
            nvml=False,
            idle_seconds=0,
        )
    )
    assert result.summary.ok == 24
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT input_tokens_expected, input_tokens FROM requests WHERE run_id = ?",
        [result.run_id],
    ).fetchall()
    assert len(rows) == 24
    assert [expected for expected, _ in rows] == [actual for _, actual in rows]
    assert result.summary.token_truth["input_mismatch"] == 0
    # The targets really vary: this is not one length fitted 24 times.
    assert len({expected for expected, _ in rows}) > 10
