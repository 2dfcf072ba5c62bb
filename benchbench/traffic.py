"""From a RunConfig to what is sent and when: wires loadgen's workloads, datasets, traces and
arrival processes. Pure and seeded: the same config gives the same requests and schedule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchbench.config import RunConfig
from benchbench.errors import BenchError
from loadgen.spec import RequestSpec


@dataclass
class Traffic:
    specs: Iterator[RequestSpec]
    arrivals: Iterator[int] | None  # intended offsets (ns); None = closed loop
    mode: str  # "open" | "closed" | "replay"
    description: dict[str, Any] = field(default_factory=dict)
    max_requests: int | None = None  # a finite source (trace) caps the run


def build_traffic(cfg: RunConfig) -> Traffic:
    try:
        return _build(cfg)
    except (ValueError, OSError) as exc:
        raise BenchError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _build(cfg: RunConfig) -> Traffic:
    from loadgen.arrivals import parse_arrivals

    if cfg.trace is not None:
        return _trace(cfg)
    if cfg.dataset is not None:
        from loadgen.datasets import dataset_specs, load_dataset
        from loadgen.lengths import parse_length

        items = load_dataset(cfg.dataset)
        if not items:
            raise ValueError(f"dataset {cfg.dataset} holds no prompts")
        specs = dataset_specs(
            items,
            api=cfg.api,
            output_len=parse_length(cfg.output_len),
            seed=cfg.seed,
            ignore_eos=cfg.ignore_eos,
        )
        desc: dict[str, Any] = {"dataset": cfg.dataset, "items": len(items)}
    else:
        from loadgen.lengths import parse_length
        from loadgen.workload import SyntheticWorkload

        if cfg.workload:
            wl = SyntheticWorkload.from_preset(
                cfg.workload, api=cfg.api, seed=cfg.seed, ignore_eos=cfg.ignore_eos
            )
            if cfg.system_prompt_tokens:
                wl = SyntheticWorkload(
                    input_len=wl.input_len,
                    output_len=wl.output_len,
                    api=cfg.api,
                    seed=cfg.seed,
                    system_prompt_tokens=cfg.system_prompt_tokens,
                    ignore_eos=cfg.ignore_eos,
                )
        else:
            wl = SyntheticWorkload(
                input_len=parse_length(cfg.input_len),
                output_len=parse_length(cfg.output_len),
                api=cfg.api,
                seed=cfg.seed,
                system_prompt_tokens=cfg.system_prompt_tokens,
                ignore_eos=cfg.ignore_eos,
            )
        specs = wl.specs()
        desc = {
            "workload": cfg.workload or "custom",
            "input_len": wl.input_len.describe(),
            "output_len": wl.output_len.describe(),
        }
    if cfg.rate is not None:
        arrivals = parse_arrivals(cfg.arrival, cfg.rate, burstiness=cfg.burstiness)
        rng = np.random.default_rng([cfg.seed, 1])
        desc["arrival"] = cfg.arrival
        return Traffic(specs, iter(arrivals.offsets_ns(rng)), "open", desc)
    return Traffic(specs, None, "closed", desc)


def _trace(cfg: RunConfig) -> Traffic:
    from loadgen.replay import ReplayOptions, plan_replay
    from loadgen.traces import load_trace

    trace = load_trace(cfg.trace)
    records = getattr(trace, "records", trace)
    specs, offsets = plan_replay(
        records,
        ReplayOptions(seed=cfg.seed, limit=cfg.requests),
        api=cfg.api,
        seed=cfg.seed,
        ignore_eos=cfg.ignore_eos,
    )
    desc = {"trace": cfg.trace, "records": len(specs)}
    if offsets is None:
        if cfg.rate is None:
            return Traffic(iter(specs), None, "closed", desc, max_requests=len(specs))
        from loadgen.arrivals import parse_arrivals

        arrivals = parse_arrivals(cfg.arrival, cfg.rate, burstiness=cfg.burstiness)
        rng = np.random.default_rng([cfg.seed, 1])
        return Traffic(iter(specs), iter(arrivals.offsets_ns(rng)), "open", desc, len(specs))
    return Traffic(iter(specs), iter(offsets), "replay", desc, max_requests=len(specs))
