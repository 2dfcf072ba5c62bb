"""Scrape a Prometheus `/metrics` page (inference server, dcgm-exporter) at an interval.

Parsing is prometheus_client's (`text_string_to_metric_families`), not ours, but only of the
lines that can hold a wanted metric: a regular expression (C speed) picks them out of the page
first, so a 200 kB vLLM page costs a fraction of a millisecond instead of ~50 ms of CPU on a
thread that holds the GIL. Sample metric =
the exposition sample name as that parser gives it (counters always end in `_total`, also
dcgm-exporter's, e.g. `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total`). Device = the scrape URL,
plus `#label=value` for labels that tell instances apart (`gpu` and, in MIG mode, `GPU_I_ID`
for DCGM, `engine` for vLLM v1, `dp_rank` for SGLang), e.g.
`http://gpu-host:9400/metrics#gpu=0` or `...#gpu=0#GPU_I_ID=3`.

`NORMALIZE` maps server-neutral names ("running", "waiting", ...) to each server's metric
names, so the rest of the code asks one question of any server.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Iterable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from collectors.base import Clock, Sample
from collectors.threaded import PollingCollector

__all__ = [
    "AGGREGATE",
    "BoundedClient",
    "DEFAULT_METRICS",
    "DEVICE_LABELS",
    "NORMALIZE",
    "PrometheusCollector",
    "canonical_metric",
    "filter_lines",
    "parse_exposition",
]

# Server-neutral name -> the sample names that mean it, per server. Fractions are 0..1
# everywhere (vLLM's "_perc" gauges are fractions too).
NORMALIZE: dict[str, tuple[str, ...]] = {
    "running": (
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "tgi_batch_current_size",
        "llamacpp:requests_processing",
        "sim:num_requests_running",
    ),
    "waiting": (
        "vllm:num_requests_waiting",
        "sglang:num_queue_reqs",
        "tgi_queue_size",
        "llamacpp:requests_deferred",
        "sim:num_requests_waiting",
    ),
    "prompt_tokens": (  # counters
        "vllm:prompt_tokens_total",
        "sglang:prompt_tokens_total",
        "tgi_request_input_length_sum",
        "llamacpp:prompt_tokens_total",
        "sim:prompt_tokens_total",
    ),
    "generation_tokens": (  # counters
        "vllm:generation_tokens_total",
        "sglang:generation_tokens_total",
        "tgi_request_generated_tokens_sum",
        "llamacpp:tokens_predicted_total",
        "sim:generation_tokens_total",
    ),
    "requests": (  # counters
        "sim:requests_total",
        "tgi_request_count_total",
        "sglang:num_requests_total",
    ),
    "kv_cache_usage": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
        "llamacpp:kv_cache_usage_ratio",
    ),
    # Hit fraction where the server reports one; for vLLM derive it as
    # delta(prefix_hit_tokens) / delta(prefix_query_tokens) over the window.
    "prefix_hit": ("sglang:cache_hit_rate",),
    "prefix_hit_tokens": (
        "vllm:prefix_cache_hits_total",
        "vllm:gpu_prefix_cache_hits_total",
        "sglang:cached_tokens_total",
        "sim:prefix_cache_hits_total",  # the built-in simulator's prefix cache
    ),
    "prefix_query_tokens": (
        "vllm:prefix_cache_queries_total",
        "vllm:gpu_prefix_cache_queries_total",
        "sim:prefix_cache_queries_total",
    ),
    "energy_mj": (  # counter, per GPU
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    ),
    "power_w": ("DCGM_FI_DEV_POWER_USAGE",),  # an averaged reading, like NVML's power_avg_w
    "power_instant_w": ("DCGM_FI_DEV_POWER_USAGE_INSTANT",),
}

# How to combine one scrape's devices (engines, DP ranks, GPUs) into one server figure.
AGGREGATE: dict[str, str] = {
    "running": "sum",
    "waiting": "sum",
    "prompt_tokens": "sum",
    "generation_tokens": "sum",
    "requests": "sum",
    "kv_cache_usage": "mean",
    "prefix_hit": "mean",
    "prefix_hit_tokens": "sum",
    "prefix_query_tokens": "sum",
    "energy_mj": "sum",
    "power_w": "sum",
    "power_instant_w": "sum",
}

_CANONICAL = {raw: canon for canon, raws in NORMALIZE.items() for raw in raws}

# Kept by default: everything NORMALIZE knows plus a few more worth a timeline.
DEFAULT_METRICS: frozenset[str] = frozenset(_CANONICAL) | {
    "tgi_batch_current_max_tokens",
    "tgi_request_success_total",
    "tgi_request_input_length_count",
    "tgi_request_generated_tokens_count",
    "sglang:num_used_tokens",
    "sglang:gen_throughput",
    "llamacpp:kv_cache_tokens",
    "llamacpp:n_decode_total",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_FB_USED",
}

DEVICE_LABELS = ("gpu", "GPU_I_ID", "engine", "dp_rank")
# Labels that describe rather than distinguish; dropped from keep_all metric names.
_NOISE_LABELS = frozenset(
    {"model_name", "model", "Hostname", "UUID", "pci_bus_id", "device", "modelName"}
    | {"DCGM_FI_DRIVER_VERSION", "instance", "job"}
)

_SERVER_PREFIXES = (
    ("vllm:", "vllm"),
    ("sglang:", "sglang"),
    ("tgi_", "tgi"),
    ("llamacpp:", "llamacpp"),
    ("sim:", "sim"),
    ("DCGM_", "dcgm-exporter"),
)


def canonical_metric(metric: str) -> str | None:
    """The server-neutral name for a sample metric, or None if it has none."""
    return _CANONICAL.get(metric)


_FAMILY_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum")
_PATTERNS: dict[frozenset[str], re.Pattern[str]] = {}


def _family(name: str) -> str:
    for suffix in _FAMILY_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _pattern(wanted: frozenset[str]) -> re.Pattern[str]:
    """A regex for the lines that can hold a wanted sample: its own sample lines (under the
    name as written, with or without `_total`) and its family's `# TYPE` line, which the parser
    needs to name counters as it does on the whole page."""
    pattern = _PATTERNS.get(wanted)
    if pattern is None:
        names = {n for w in wanted for n in (w, _family(w))}
        alt = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
        pattern = re.compile(rf"^(?:# TYPE (?:{alt}) .*|(?:{alt})(?:_total)?[{{ \t].*)$", re.M)
        if len(_PATTERNS) < 64:  # one per distinct keep set; bounded all the same
            _PATTERNS[wanted] = pattern
    return pattern


def filter_lines(text: str, keep: Iterable[str]) -> str:
    """The lines of an exposition page that can hold the `keep` samples (see `_pattern`)."""
    return "\n".join(_pattern(frozenset(keep)).findall(text)) + "\n"


def parse_exposition(
    text: str,
    url: str,
    t_ns: int,
    keep: Iterable[str] | None = DEFAULT_METRICS,
    collector: str = "prometheus",
) -> list[Sample]:
    """Samples from one scrape. keep=None keeps every family (histogram buckets included;
    then labels other than the device ones become part of the metric name)."""
    wanted = None if keep is None else frozenset(keep)
    if wanted is not None:
        text = filter_lines(text, wanted)
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if wanted is not None and s.name not in wanted:
                continue
            value = float(s.value)
            if math.isnan(value):
                continue
            device = url + "".join(f"#{k}={s.labels[k]}" for k in DEVICE_LABELS if k in s.labels)
            metric = s.name
            if wanted is None:
                extra = [
                    f'{k}="{v}"'
                    for k, v in sorted(s.labels.items())
                    if k not in _NOISE_LABELS and k not in DEVICE_LABELS
                ]
                if extra:
                    metric = f"{s.name}{{{','.join(extra)}}}"
            out.append(Sample(collector, device, t_ns, metric, value))
    return out


class BoundedClient:
    """GETs bounded twice: `silence_s` for any one byte and `total_s` for the whole answer.

    httpx's sync timeouts bound single reads only, so a server that trickles one byte every
    half second would hold a poll (and the collector's thread, and the run's start and stop
    readings) for ever. Requests run on a private event loop thread, where a deadline cancels
    them wherever they are; callers may be on any thread, one running an event loop included.
    """

    def __init__(
        self, silence_s: float, total_s: float, headers: Mapping[str, str] | None = None
    ) -> None:
        if not silence_s > 0 or not total_s > 0:
            raise ValueError(f"timeouts must be > 0 s, got {silence_s} and {total_s}")
        self.silence_s = silence_s
        self.total_s = total_s
        self._headers = dict(headers or {})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def get(self, url: str, clock: Clock) -> tuple[httpx.Response, int]:
        """The answer, its body read whole, and the midpoint of the round trip on `clock`.
        Raises httpx.TimeoutException past a bound."""
        response, sent_ns, arrived_ns = self.get_timed(url, clock)
        # The remote reading was taken somewhere inside the round trip: its midpoint is the
        # estimate with the smallest worst-case error (half the round trip), as NTP does.
        return response, (sent_ns + arrived_ns) // 2

    def get_timed(self, url: str, clock: Clock) -> tuple[httpx.Response, int, int]:
        """The answer, and `clock()` just before sending and the moment it arrived (read on
        the loop's thread, so the hand-back to the caller's thread does not delay them)."""
        loop = self._start()
        future = asyncio.run_coroutine_threadsafe(self._get(url, clock), loop)
        # The coroutine ends itself at total_s; the margin only guards a wedged loop.
        return future.result(timeout=self.total_s + 5.0)

    async def _get(self, url: str, clock: Clock) -> tuple[httpx.Response, int, int]:
        if self._client is None:  # made on the loop that will use it
            self._client = httpx.AsyncClient(
                timeout=min(self.silence_s, self.total_s), headers=self._headers
            )
        try:
            sent = clock()
            response = await asyncio.wait_for(self._client.get(url), self.total_s)
            return response, sent, clock()
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"no complete answer within {self.total_s:g} s (bytes kept trickling)"
            ) from None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="collector-http", daemon=True
                )
                self._thread.start()
            return self._loop

    def close(self) -> None:
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None:
            return
        if client is not None:
            try:
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=2.0)
            except Exception:  # noqa: BLE001 - closing; the loop goes next anyway
                pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=2.0)
        if not loop.is_running():
            loop.close()


class PrometheusCollector(PollingCollector):
    """Scrapes `url` every `interval_s` on its own thread; a scrape may be silent for
    `timeout_s` and take `total_timeout_s` in all (default: twice `timeout_s`, at least 2 s).

    `label` is the URL as shown and stored (samples' device, info, error messages): the
    caller passes it with any credentials removed, since `url` may hold a `?token=`.
    Samples are stamped with the run clock when the page has arrived. A failed scrape
    (timeout, refused, non-200, unparsable) degrades the collector; it keeps trying until
    `max_failures` failures in a row.
    """

    name = "prometheus"

    def __init__(
        self,
        url: str,
        interval_s: float = 1.0,
        timeout_s: float = 1.0,
        keep_all: bool = False,
        headers: Mapping[str, str] | None = None,
        max_failures: int = 3,
        total_timeout_s: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(interval_s=interval_s, max_failures=max_failures)
        self.label = label or url
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"metrics URL must start with http:// or https://, got {self.label!r}")
        if not timeout_s > 0:
            raise ValueError(f"scrape timeout must be > 0 s, got {timeout_s}")
        self.url = url
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s or max(2.0, 2 * timeout_s)
        if not self.total_timeout_s > 0:
            raise ValueError(f"scrape total timeout must be > 0 s, got {total_timeout_s}")
        self.keep_all = keep_all
        # Ask for the classic text format: the parser reads it, not OpenMetrics.
        base_headers = {"Accept": "text/plain;version=0.0.4"}
        base_headers.update(headers or {})
        self._client = BoundedClient(timeout_s, self.total_timeout_s, base_headers)
        self._servers: set[str] = set()
        self._dcgm_gpus: dict[str, dict[str, str]] = {}

    def _read(self, clock: Clock, out: list[Sample]) -> None:
        response, t_ns = self._client.get(self.url, clock)
        if response.status_code != 200:
            raise RuntimeError(f"{self.label} answered HTTP {response.status_code}")
        keep = None if self.keep_all else DEFAULT_METRICS
        samples = parse_exposition(response.text, self.label, t_ns, keep, self.name)
        if not self._servers:
            self._learn(response.text)
        out.extend(samples)

    def _learn(self, text: str) -> None:
        """Static facts from the first good page: which server, which GPUs (DCGM)."""
        for family in text_string_to_metric_families(text):
            for prefix, server in _SERVER_PREFIXES:
                if family.name.startswith(prefix):
                    self._servers.add(server)
            if family.name.startswith("DCGM_"):
                for s in family.samples:
                    gpu = s.labels.get("gpu")
                    if gpu is not None and gpu not in self._dcgm_gpus:
                        self._dcgm_gpus[gpu] = {
                            "uuid": s.labels.get("UUID", ""),
                            "name": s.labels.get("modelName", ""),
                            "hostname": s.labels.get("Hostname", ""),
                        }
        if not self._servers:
            self._servers.add("unknown")

    def info(self) -> dict[str, object]:
        """URL and settings; after the first good scrape also the server kind(s) seen and, for
        dcgm-exporter, the GPUs (index -> uuid, name, hostname)."""
        return {
            "url": self.label,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "total_timeout_s": self.total_timeout_s,
            "keep_all": self.keep_all,
            "servers": sorted(self._servers),
            "dcgm_gpus": {k: dict(v) for k, v in sorted(self._dcgm_gpus.items())},
        }

    def _close(self) -> None:
        self._client.close()
