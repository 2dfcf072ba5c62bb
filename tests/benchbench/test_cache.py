"""The served prompt cache of a run: from the requests' own reports when there are any, else
from the server's scraped counters (vLLM, SGLang), else unknown; all hand arithmetic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchbench.cache import counter_increase, served_cache
from benchbench.store import Store, open_store
from benchbench.store.writer import BatchWriter
from collectors.base import Sample
from loadgen.spec import RequestRecord

URL = "http://127.0.0.1:8000/metrics"


def _record(i: int, prompt: int | None, cached: int | None, **fields: object) -> RequestRecord:
    r = RequestRecord(index=i, intended_ns=None, sent_ns=1_000 + i)
    r.event_ns, r.event_tokens = [2_000 + i], [None]
    r.first_token_ns = r.last_token_ns = r.closed_ns = 2_000 + i
    r.input_tokens, r.output_tokens, r.cached_input_tokens = prompt, 1, cached
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def _store(
    tmp_path: Path, records: list[RequestRecord], samples: list[Sample] = ()
) -> tuple[Store, int]:
    store = open_store(tmp_path / "c.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0)
    for r in records:
        writer.add_record(r)
    writer.add_samples(list(samples))
    writer.close()
    return store, run_id


def _counter(metric: str, values: list[float], device: str = URL) -> list[Sample]:
    return [Sample("prometheus", device, (i + 1) * 10**8, metric, v) for i, v in enumerate(values)]


def test_the_share_is_cached_over_prompt_tokens_of_the_measured_requests(tmp_path: Path) -> None:
    records = [
        _record(0, 100, 90),
        _record(1, 100, 10),
        _record(2, 200, 0),
        _record(3, 50, None),  # did not report: left out of both sums
        _record(4, 100, 100, warmup=True),  # warm-up: not measured
        _record(5, 100, 100, error_kind="http_5xx"),  # failed: not measured
    ]
    store, run_id = _store(tmp_path, records)
    got = served_cache(store.con, run_id)
    assert got["share"] == pytest.approx(100 / 400)
    assert (got["source"], got["cached_tokens"], got["prompt_tokens"]) == ("requests", 100, 400)
    assert (got["requests"], got["measured"]) == (3, 4)


def test_a_cached_count_above_the_prompt_is_capped_at_the_whole_prompt(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path, [_record(0, 10, 12)])
    assert served_cache(store.con, run_id)["share"] == 1.0


def test_nothing_reported_is_unknown_never_zero(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path, [_record(0, 100, None), _record(1, 80, None)])
    got = served_cache(store.con, run_id)
    assert (got["share"], got["source"], got["measured"]) == (None, "not reported", 2)


def test_vllm_counters_give_hits_over_queries_across_a_restart(tmp_path: Path) -> None:
    samples = [
        *_counter("vllm:prefix_cache_hits_total", [100, 130, 10, 40]),  # restart after 130
        *_counter("vllm:prefix_cache_queries_total", [1000, 1100, 50, 250]),
    ]
    store, run_id = _store(tmp_path, [_record(0, 100, None)], samples)
    got = served_cache(store.con, run_id)
    # hits: 30 + 10 + 30 = 70; queries: 100 + 50 + 200 = 350
    assert got["share"] == pytest.approx(70 / 350)
    assert got["source"].startswith("prometheus: Δprefix_cache_hits")
    assert (got["cached_tokens"], got["prompt_tokens"]) == (70, 350)


def test_two_engines_are_summed(tmp_path: Path) -> None:
    samples = [
        *_counter("vllm:prefix_cache_hits_total", [0, 10], f"{URL}#engine=0"),
        *_counter("vllm:prefix_cache_queries_total", [0, 100], f"{URL}#engine=0"),
        *_counter("vllm:prefix_cache_hits_total", [0, 50], f"{URL}#engine=1"),
        *_counter("vllm:prefix_cache_queries_total", [0, 100], f"{URL}#engine=1"),
    ]
    store, run_id = _store(tmp_path, [_record(0, 100, None)], samples)
    assert served_cache(store.con, run_id)["share"] == pytest.approx(60 / 200)


def test_sglang_cached_tokens_over_prompt_tokens_else_its_gauge(tmp_path: Path) -> None:
    samples = [
        *_counter("sglang:cached_tokens_total", [0, 25]),
        *_counter("sglang:prompt_tokens_total", [0, 100]),
        *_counter("sglang:cache_hit_rate", [0.9, 0.9]),
    ]
    store, run_id = _store(tmp_path, [_record(0, 100, None)], samples)
    got = served_cache(store.con, run_id)
    assert (got["share"], got["source"]) == (0.25, "prometheus: Δcached_tokens / Δprompt_tokens")
    (tmp_path / "g").mkdir()
    gauge_only = _store(tmp_path / "g", [], _counter("sglang:cache_hit_rate", [0.2, 0.4]))
    got = served_cache(gauge_only[0].con, gauge_only[1])
    assert got["share"] == pytest.approx(0.3) and "gauge" in got["source"]


def test_the_requests_own_reports_win_over_the_counters(tmp_path: Path) -> None:
    samples = [
        *_counter("vllm:prefix_cache_hits_total", [0, 90]),
        *_counter("vllm:prefix_cache_queries_total", [0, 100]),
    ]
    store, run_id = _store(tmp_path, [_record(0, 100, 5)], samples)
    assert served_cache(store.con, run_id)["share"] == 0.05


def test_one_scrape_of_a_counter_says_nothing(tmp_path: Path) -> None:
    samples = [
        *_counter("vllm:prefix_cache_hits_total", [50]),
        *_counter("vllm:prefix_cache_queries_total", [100]),
    ]
    store, run_id = _store(tmp_path, [_record(0, 100, None)], samples)
    assert served_cache(store.con, run_id)["share"] is None


@pytest.mark.parametrize(
    ("values", "increase"),
    [([], 0), ([5], 0), ([1, 4, 9], 8), ([10, 3, 5], 5), ([2, 2, 2], 0)],
)
def test_counter_increase_takes_a_decrease_as_a_restart(
    values: list[float], increase: float
) -> None:
    assert counter_increase(values) == increase
