"""What an embeddings or rerank run sends and when (benchbench.traffic hands these APIs here).

The texts come from loadgen.pooling_workload: `--batch-size` inputs per embeddings request,
one query and `--documents` documents per rerank request, each text's length drawn from
`--input-len` (or a preset's input table), or a dataset's prompts in order. The schedule is
the same as for generation: open loop at `--rate` with `--arrival`, else closed loop at
`--concurrency`. Texts are sent as drawn: no exact-length fit (that fits chat templates), so
the expected input tokens are words, exact on the built-in simulator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from benchbench.sections import Load, Workload
from loadgen.spec import RequestSpec

__all__ = ["pooling_shape", "pooling_traffic"]

# Requests fingerprinted at most (as benchbench.traffic.FINGERPRINT_MAX_SPECS).
FINGERPRINT_MAX_SPECS = 10_000
DURATION_RUN_SPECS = 1_000


def pooling_shape(api: str) -> str | None:
    """ "embeddings" or "rerank" when `api` builds that request (loadgen.apis), else None."""
    from loadgen.apis import prompt_shape
    from loadgen.pooling_workload import POOLING_SHAPES

    shape = prompt_shape(api)
    return shape if shape in POOLING_SHAPES else None


def pooling_traffic(
    wl: Workload, load: Load, shape: str
) -> tuple[Iterator[RequestSpec], Iterator[int] | None, str, dict[str, Any]]:
    """(specs, arrival offsets or None, mode, description) of a pooling run."""
    from loadgen.fingerprint import fingerprint
    from loadgen.pooling_workload import PoolingWorkload
    from loadgen.prompts import new_salt
    from loadgen.workload import salt_specs

    if wl.session_turns is not None or wl.trace is not None:
        raise ValueError(f"--api {shape} sends one request at a time: drop --session-turns/--trace")
    texts, input_len = _texts(wl)
    workload = PoolingWorkload(shape, input_len, wl.batch_size, wl.documents, wl.seed, texts)
    desc = workload.describe()
    if wl.dataset is not None:
        desc["dataset"] = wl.dataset
    desc["salted"] = wl.salt  # rerank salts its query; embedding inputs are sent as drawn
    specs = salt_specs(workload.specs(), new_salt() if wl.salt else "")
    drawn = list(itertools.islice(specs, _planned_n(load)))
    desc["exact_lengths"] = {"method": "none (pooling texts are sent as drawn, in words)"}
    offsets = _arrivals(load, wl.seed)
    head = list(itertools.islice(_arrivals(load, wl.seed) or (), len(drawn))) or None
    desc["fingerprint"] = fingerprint(drawn, head)
    desc["fingerprint_requests"] = len(drawn)
    stream = itertools.chain(drawn, specs)
    if offsets is None:
        return stream, None, "closed", desc
    desc["arrival"] = load.arrival
    return stream, offsets, "open", desc


def _texts(wl: Workload) -> tuple[tuple[str, ...] | None, Any]:
    """(a dataset's texts, None) or (None, the input-length distribution)."""
    if wl.dataset is not None:
        from loadgen.datasets import load_dataset
        from loadgen.pooling_workload import dataset_texts

        items = load_dataset(wl.dataset, turns=wl.dataset_turns)
        return dataset_texts([i.prompt for i in items], [i.messages for i in items]), None
    from loadgen.lengths import parse_length
    from loadgen.presets import get_preset

    if wl.preset:
        return None, get_preset(wl.preset.strip().lower()).input
    try:
        return None, parse_length(wl.input_len)
    except ValueError as exc:
        raise ValueError(f"--input-len: {exc}") from None


def _planned_n(load: Load) -> int:
    if load.requests is not None:
        return min(load.requests + load.warmup, FINGERPRINT_MAX_SPECS)
    if load.rate is not None and load.duration_s is not None:
        n = int(load.rate * load.duration_s * 1.2) + load.warmup + 16
        return min(n, FINGERPRINT_MAX_SPECS)
    return DURATION_RUN_SPECS


def _arrivals(load: Load, seed: int) -> Iterator[int] | None:
    """The same arrival stream as a generation run of the same seed (benchbench.traffic)."""
    if load.rate is None:
        return None
    from loadgen.arrivals import parse_arrivals

    arrivals = parse_arrivals(load.arrival, load.rate, burstiness=load.burstiness)
    return iter(arrivals.offsets_ns(np.random.default_rng([seed, 1])))
