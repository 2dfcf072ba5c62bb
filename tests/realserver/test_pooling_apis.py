"""`bench run --api embeddings` and `--api rerank` against a real llama.cpp `llama-server`: the
generated tiny model served with `--embeddings --pooling mean` answers /v1/embeddings, and with
`--reranking` (rank pooling; the tiny model's output head serves as the rank head) answers
/v1/rerank. Every request succeeds, every input is accounted for, and the stored input tokens
are the server's own counts: for embeddings, the sum of /tokenize over the inputs with the
special tokens the server adds (BOS per input); for rerank, the usage the server reports for
the same request sent again (a pair is formatted with separators the client cannot know)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from loadgen.api_rerank import RerankEndpoint
from loadgen.lengths import LengthDist, parse_length
from loadgen.pooling_workload import PoolingWorkload
from loadgen.spec import RequestSpec
from tests.realserver.model import GeneratedModel
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp

REQUESTS = 12


def _serve(binary: Path, model: GeneratedModel, *args: str) -> Iterator[LlamaServer]:
    with LlamaServer(binary, model.gguf_path, model_name="pooled", extra_args=args) as server:
        yield server


@pytest.fixture(scope="module")
def embedder(llama_server_binary: Path, llama_tiny_model: GeneratedModel) -> Iterator[LlamaServer]:
    yield from _serve(llama_server_binary, llama_tiny_model, "--embeddings", "--pooling", "mean")


@pytest.fixture(scope="module")
def reranker(llama_server_binary: Path, llama_tiny_model: GeneratedModel) -> Iterator[LlamaServer]:
    yield from _serve(llama_server_binary, llama_tiny_model, "--reranking")


def _rows(db: Path, run_id: int) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT idx, error_kind, inputs, input_tokens FROM requests "
            "WHERE run_id = ? AND NOT warmup ORDER BY idx",
            [run_id],
        ).fetchall()


def _run(server: LlamaServer, tmp_path: Path, api: str, **kw: object):
    cfg = make_config(
        endpoint=server.base_url, api=api, db=str(tmp_path / "p.duckdb"), requests=REQUESTS,
        concurrency=2, input_len="uniform:min=4,max=24", salt=False, **kw,
    )  # fmt: skip
    return run_benchmark(cfg)


def test_embeddings_all_ok_with_the_servers_input_token_counts(
    embedder: LlamaServer, tmp_path: Path
) -> None:
    result = _run(embedder, tmp_path, "embeddings", batch_size=3)
    rows = _rows(tmp_path / "p.duckdb", result.run_id)
    assert len(rows) == REQUESTS and all(kind is None for _, kind, _, _ in rows), rows
    assert all(inputs == 3 for _, _, inputs, _ in rows)
    # The same specs again (seeded, unsalted): the server's own token count of each input.
    specs = _specs(PoolingWorkload("embeddings", _lengths(), batch_size=3), rows)
    with httpx.Client(base_url=embedder.root_url, timeout=30) as client:
        for idx, _, _, tokens in rows:
            counts = [
                len(
                    client.post("/tokenize", json={"content": t, "add_special": True}).json()[
                        "tokens"
                    ]
                )
                for t in specs[idx].inputs or ()
            ]
            assert tokens == sum(counts)
    s = result.summary
    assert s.pooling is not None and s.pooling["tokens_from_server"] == REQUESTS
    assert s.pooling["inputs"] == 3 * REQUESTS


def test_rerank_all_ok_with_the_servers_input_token_counts(
    reranker: LlamaServer, tmp_path: Path
) -> None:
    result = _run(reranker, tmp_path, "rerank", documents=4)
    rows = _rows(tmp_path / "p.duckdb", result.run_id)
    assert len(rows) == REQUESTS and all(kind is None for _, kind, _, _ in rows), rows
    specs = _specs(PoolingWorkload("rerank", _lengths(), documents=4), rows)
    endpoint = RerankEndpoint("pooled")
    with httpx.Client(base_url=reranker.base_url, timeout=30) as client:
        for idx, _, inputs, tokens in rows:
            again = client.post("/rerank", content=endpoint.body(specs[idx])).json()
            assert inputs == 4 and len(again["results"]) == 4
            assert tokens == again["usage"]["prompt_tokens"]
    assert result.summary.pooling is not None
    assert result.summary.pooling["tokens_from_server"] == REQUESTS


def _lengths() -> LengthDist:
    return parse_length("uniform:min=4,max=24")


def _specs(workload: PoolingWorkload, rows: list[tuple]) -> list[RequestSpec]:
    """The run's specs again (seeded, unsalted), by index."""
    return list(itertools.islice(workload.specs(), max(r[0] for r in rows) + 1))
