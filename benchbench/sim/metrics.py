"""/metrics in Prometheus text format, rendered by prometheus_client at scrape time.

Counters live as plain ints on the engine (a prometheus_client Counter takes a lock
per increment, too slow per token); a custom collector reads them when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from benchbench.sim.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SimCollector(Collector):
    def __init__(self, engine: Engine, requests_total: Callable[[], int]) -> None:
        self._engine = engine
        self._requests_total = requests_total

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        yield GaugeMetricFamily(
            "sim:num_requests_running", "Sequences in the running batch.", len(engine.running)
        )
        yield GaugeMetricFamily(
            "sim:num_requests_waiting", "Requests queued for a batch slot.", len(engine.waiting)
        )
        yield CounterMetricFamily(
            "sim:prompt_tokens",
            "Prompt tokens received (cached ones included).",
            engine.prompt_tokens_total,
        )
        yield CounterMetricFamily(
            "sim:generation_tokens", "Tokens generated.", engine.generation_tokens_total
        )
        cache = engine.prefix_cache
        if cache is not None:
            # vLLM's prefix_cache_hits / prefix_cache_queries: counted in prompt tokens.
            yield CounterMetricFamily(
                "sim:prefix_cache_queries",
                "Prompt tokens looked up in the prefix cache.",
                cache.queries_total,
            )
            yield CounterMetricFamily(
                "sim:prefix_cache_hits",
                "Prompt tokens served from the prefix cache.",
                cache.hits_total,
            )
        yield CounterMetricFamily(
            "sim:requests",
            "Completion and chat requests received (any outcome).",
            self._requests_total(),
        )


class SimMetrics:
    def __init__(self, engine: Engine, requests_total: Callable[[], int]) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SimCollector(engine, requests_total))

    def render(self) -> bytes:
        return generate_latest(self._registry)
