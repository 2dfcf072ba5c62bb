"""From a RunConfig to what is sent and when: wires loadgen's workloads, sessions, datasets,
traces and arrival processes. Pure and seeded: the same config gives the same requests and
schedule, and the description carries a fingerprint of them (and, where prompts share
prefixes, the ideal prefix-hit ratio) so two runs can be shown to have sent the same traffic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbench.config import RunConfig
from benchbench.errors import ConfigError
from benchbench.exact_fit import exact_head, head
from benchbench.sections import Load, Target, Workload
from loadgen.spec import RequestSpec

if TYPE_CHECKING:
    from benchbench.target import TargetLink
    from loadgen.load import SessionSource
    from loadgen.sessions import ThinkTime

FINGERPRINT_MAX_SPECS = 10_000  # the fingerprint covers at most this many requests
DURATION_RUN_SPECS = 1_000  # closed-loop duration runs: requests fingerprinted (and fitted)
PREFIX_BLOCK = 16  # tokens per block for the ideal prefix-hit ratio (vLLM's default block)

# The `agent` preset: Mooncake's tool&agent traffic, long, fully repeated system prompts
# (WORKLOADS.md §5-6: ~5k shared of ~8.6k mean input tokens; ideal prefix hit ~0.59).
AGENT_INPUT = "lognormal:median=8000,sigma=0.4,max=32768"
AGENT_OUTPUT = "lognormal:median=200,sigma=0.8,max=2048"
AGENT_SYSTEM_FRACTION = 0.6  # shared system prompt = this x mean input
AGENT_SOURCE = "Mooncake tool&agent (FAST'25): shared system prompt ~0.6 x mean input"


@dataclass
class Traffic:
    # What the runner sends: one spec stream, or a SessionSource (sessions, thinking users)
    # whose next request is built once the previous one of the same session completed.
    specs: Iterator[RequestSpec] | SessionSource
    arrivals: Iterator[int] | None  # intended offsets (ns); None = closed loop
    mode: str  # "open" | "closed" | "replay"
    description: dict[str, Any] = field(default_factory=dict)
    max_requests: int | None = None  # a finite source (trace) caps the run


def build_traffic(cfg: RunConfig, link: TargetLink | None = None) -> Traffic:
    """What is sent and when; `link` (an endpoint's) lets prompts be fitted to exact token
    counts through its /tokenize."""
    if link is None and cfg.target.endpoint is not None:
        from benchbench.target import TargetLink

        link = TargetLink(cfg.target, cfg.target.endpoint)
    try:
        from benchbench.pooling_traffic import pooling_shape, pooling_traffic

        shape = pooling_shape(cfg.target.api)
        if shape is not None:  # embeddings, rerank: batches of texts, not prompts
            return Traffic(*pooling_traffic(cfg.workload, cfg.load, shape))
        cfg = _as_wire_shape(cfg)  # responses, messages, native APIs: chat or prompt requests
        if cfg.workload.trace is not None:
            return _trace(cfg.workload, cfg.load, cfg.target, link)
        if cfg.workload.session_turns is not None:
            return _session_traffic(cfg.workload, cfg.load, cfg.target.api)
        return _synthetic(cfg.workload, cfg.load, cfg.target, link)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _as_wire_shape(cfg: RunConfig) -> RunConfig:
    """The config with --api replaced by the request shape it sends ("chat": messages, or
    "completions": one prompt), which is all the workload builders need to know."""
    from loadgen.apis import prompt_shape

    shape = prompt_shape(cfg.target.api)
    if shape == cfg.target.api:
        return cfg
    return cfg.model_copy(update={"target": cfg.target.model_copy(update={"api": shape})})


def _planned_n(load: Load) -> int:
    """Requests the run will send (at most), or a bounded estimate for duration runs."""
    if load.requests is not None:
        n = load.requests + load.warmup
    elif load.rate is not None and load.duration_s is not None:
        n = math.ceil(load.rate * load.duration_s * 1.2) + load.warmup + 16
    else:
        n = DURATION_RUN_SPECS
    return min(n, FINGERPRINT_MAX_SPECS)


def _arrivals(load: Load, seed: int) -> Iterator[int] | None:
    if load.rate is None:
        return None
    from loadgen.arrivals import parse_arrivals

    arrivals = parse_arrivals(load.arrival, load.rate, burstiness=load.burstiness)
    return iter(arrivals.offsets_ns(np.random.default_rng([seed, 1])))


def _session_traffic(wl: Workload, load: Load, api: str) -> Traffic:
    """Synthetic multi-turn sessions: closed-loop users, or one session per open arrival."""
    from loadgen.sessions import SessionDriver, parse_think_time

    workload, desc = _sessions(wl, api, parse_think_time(load.think_time))
    workload = dataclasses.replace(workload, salt=_run_salt(wl, desc))
    # Session-major, replies as drawn: the order one slot sends them in (with ignore_eos).
    first = head(workload.specs(), _planned_n(load))
    desc["exact_lengths"] = "words (sessions keep their history as drawn)"
    _describe_schedule(desc, first, None, prefix=True)
    offsets = _arrivals(load, wl.seed)  # open-loop sessions: one starts at each arrival
    mode = "closed" if offsets is None else "open"
    return Traffic(SessionDriver(workload), offsets, mode, desc)


def _synthetic(wl: Workload, load: Load, target: Target, link: TargetLink | None) -> Traffic:
    """A synthetic workload or a dataset, open loop at --rate or closed loop (thinking users
    with --think-time)."""
    from loadgen.sessions import parse_think_time

    think = parse_think_time(load.think_time)
    specs, desc = _source(wl, target.api)
    specs = _salted(specs, wl, desc)
    # The fingerprint describes the workload as drawn, before any exact-length fit: the fit
    # depends on how the server tokenizes this run's salt, which differs from run to run.
    drawn = head(specs, _planned_n(load))
    first, rest = exact_head(wl, target, itertools.chain(drawn, specs), len(drawn), desc, link)
    offsets = _arrivals(load, wl.seed)
    offsets_head = list(itertools.islice(_arrivals(load, wl.seed), len(first))) if offsets else None
    prefix = wl.system_prompt_tokens > 0 or wl.dataset_turns == "all" or wl.preset == "agent"
    _describe_schedule(desc, drawn, offsets_head, prefix=prefix)
    if offsets is not None:
        desc["arrival"] = load.arrival
        return Traffic(itertools.chain(first, rest), offsets, "open", desc)
    if not think.is_zero:
        from loadgen.sessions import ThinkingUsers

        desc["think_time_s"] = think.describe()
        users = ThinkingUsers(itertools.chain(first, rest), think, wl.seed)
        return Traffic(users, None, "closed", desc)
    return Traffic(itertools.chain(first, rest), None, "closed", desc)


def _run_salt(wl: Workload, desc: dict[str, Any]) -> str:
    """A fresh salt for this run (never from the seed), or "" with --no-salt; the traffic
    description records which: a salted run cannot be served from an earlier run's cache."""
    from loadgen.prompts import new_salt

    desc["salted"] = wl.salt
    return new_salt() if wl.salt else ""


def _salted(
    specs: Iterator[RequestSpec], wl: Workload, desc: dict[str, Any]
) -> Iterator[RequestSpec]:
    """Every prompt of the run starting with the run's salt (before any exact-length fit,
    which then counts it); unchanged with --no-salt."""
    from loadgen.workload import salt_specs

    return salt_specs(specs, _run_salt(wl, desc))


def _describe_schedule(
    desc: dict[str, Any],
    head: Sequence[RequestSpec],
    offsets: Sequence[int] | None,
    *,
    prefix: bool,
) -> None:
    from loadgen.fingerprint import fingerprint

    desc["fingerprint"] = fingerprint(head, offsets)
    desc["fingerprint_requests"] = len(head)
    if prefix:
        from loadgen.prefix import ideal_prefix_hit_ratio_texts
        from loadgen.sessions import prompt_text

        ratio = ideal_prefix_hit_ratio_texts((prompt_text(s) for s in head), PREFIX_BLOCK)
        desc["ideal_prefix_hit"] = round(ratio, 4)
        desc["ideal_prefix_hit_basis"] = f"{len(head)} prompts, {PREFIX_BLOCK}-word blocks"


def _lengths(wl: Workload) -> tuple[Any, Any, int, str]:
    """Input and output length distributions, system prompt tokens and the workload name."""
    from loadgen.lengths import parse_length
    from loadgen.presets import PRESETS, get_preset

    name = (wl.preset or "").strip().lower()
    if not name:
        return (
            _length("--input-len", wl.input_len),
            _length("--output-len", wl.output_len),
            wl.system_prompt_tokens,
            "custom",
        )
    if name == "agent":
        input_len = parse_length(AGENT_INPUT)
        system = wl.system_prompt_tokens or round(AGENT_SYSTEM_FRACTION * _mean(input_len))
        return input_len, parse_length(AGENT_OUTPUT), system, name
    if name not in PRESETS:
        raise ValueError(
            f"unknown workload preset {wl.preset!r}; valid presets: "
            f"{', '.join([*PRESETS, 'agent'])} (see `bench workloads`)"
        )
    preset = get_preset(name)
    return preset.input, preset.output, wl.system_prompt_tokens, name


def _mean(dist: Any) -> float:
    return float(dist.sample(np.random.default_rng(0), 20_000).mean())


def _source(wl: Workload, api: str) -> tuple[Iterator[RequestSpec], dict[str, Any]]:
    """The spec stream of a synthetic workload or a dataset, and its description."""
    if wl.dataset is not None:
        from loadgen.datasets import dataset_specs, load_dataset

        items = load_dataset(wl.dataset, turns=wl.dataset_turns)
        specs = dataset_specs(
            items,
            api=api,
            output_len=_length("--output-len", wl.output_len),
            seed=wl.seed,
            ignore_eos=wl.ignore_eos,
        )
        desc: dict[str, Any] = {
            "dataset": wl.dataset,
            "items": len(items),
            "dataset_turns": wl.dataset_turns,
        }
        return specs, desc
    from loadgen.sessions import with_system_share
    from loadgen.workload import SyntheticWorkload

    input_len, output_len, system, name = _lengths(wl)
    synthetic = SyntheticWorkload(
        input_len=input_len,
        output_len=output_len,
        api=api,
        seed=wl.seed,
        system_prompt_tokens=system,
        ignore_eos=wl.ignore_eos,
    )
    specs = synthetic.specs()
    desc = {
        "workload": name,
        "input_len": input_len.describe(),
        "output_len": output_len.describe(),
    }
    if system:
        desc["system_prompt_tokens"] = system
        desc["system_prompt_share"] = wl.system_prompt_share
        if wl.system_prompt_share < 1:
            specs = with_system_share(specs, system, wl.system_prompt_share, wl.seed)
    return specs, desc


def _sessions(wl: Workload, api: str, think: ThinkTime) -> tuple[Any, dict[str, Any]]:
    from loadgen.lengths import parse_length
    from loadgen.sessions import SessionWorkload

    if wl.dataset is not None:
        raise ValueError("--session-turns builds synthetic sessions; drop --dataset")
    input_len, output_len, system, name = _lengths(wl)
    try:
        turns = parse_length(wl.session_turns or "")
    except ValueError as exc:
        raise ValueError(f"--session-turns: {exc}") from None
    sessions = SessionWorkload(
        input_len=input_len,
        output_len=output_len,
        turns=turns,
        api=api,
        seed=wl.seed,
        system_prompt_tokens=system,
        system_prompt_share=wl.system_prompt_share,
        ignore_eos=wl.ignore_eos,
        think_time=think,
    )
    desc = {
        "workload": name,
        "sessions": sessions.describe(),
        "think_time_s": think.describe(),
        "session_turns": turns.describe(),
        "input_len": input_len.describe(),
        "output_len": output_len.describe(),
        "system_prompt_tokens": system,
        "system_prompt_share": wl.system_prompt_share,
    }
    return sessions, desc


def _trace(wl: Workload, load: Load, target: Target, link: TargetLink | None) -> Traffic:
    """A trace replayed at its own timestamps, or (untimed traces) paced like synthetic load."""
    from loadgen.replay import ReplayOptions, replay_offsets_ns, replay_specs, schedule
    from loadgen.traces import load_trace

    assert wl.trace is not None
    trace = load_trace(wl.trace, wl.trace_format, model=wl.trace_model, log_type=wl.trace_log_type)
    options = ReplayOptions(
        start_s=wl.trace_start_s,
        duration_s=wl.trace_duration_s,
        offset_s=wl.trace_offset_s,
        speedup=wl.speedup,
        rate_scale=wl.rate_scale,
        limit=load.requests,
        seed=wl.seed,
    )
    planned = schedule(trace.records, options)
    if not planned:
        raise ValueError(
            f"{wl.trace}: no requests in the chosen window; check --trace-start/--trace-duration"
        )
    desc = _replay_description(planned, trace, wl, target.api)
    # Prompts are built as the runner asks: a whole Mooncake trace up front takes ~18 s
    # and ~0.9 GB. The schedule is shared with the description above, so not iter_replay.
    specs = replay_specs(planned, api=target.api, seed=wl.seed, ignore_eos=wl.ignore_eos)
    specs = _salted(specs, wl, desc)
    first, rest = exact_head(wl, target, specs, _planned_n(load), desc, link)
    stream = itertools.chain(first, rest)
    if planned[0].t_s is None:  # untimed
        offsets = _arrivals(load, wl.seed)
        if offsets is None:
            return Traffic(stream, None, "closed", desc, max_requests=len(planned))
        desc["arrival"] = load.arrival
        return Traffic(stream, offsets, "open", desc, max_requests=len(planned))
    offsets_ns = replay_offsets_ns(planned)
    assert offsets_ns is not None  # timed
    return Traffic(stream, iter(offsets_ns), "replay", desc, max_requests=len(planned))


def _replay_description(
    planned: Sequence[Any], trace: Any, wl: Workload, api: str
) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "trace": wl.trace,
        "format": trace.format,
        "records": len(planned),
        "trace_records": len(trace),
        "speedup": wl.speedup,
        "rate_scale": wl.rate_scale,
        "fingerprint": _replay_fingerprint(planned, wl, api),
        "fingerprint_requests": len(planned),
    }
    timed = planned[0].t_s is not None
    if timed and len(planned) > 1 and planned[-1].t_s > planned[0].t_s:
        span = planned[-1].t_s - planned[0].t_s
        desc["replay_rate"] = round((len(planned) - 1) / span, 3)
        desc["replay_span_s"] = round(span, 3)
    if any(p.record.hash_ids and p.record.block_size for p in planned):
        from loadgen.prefix import ideal_prefix_hit_ratio

        desc["ideal_prefix_hit"] = round(
            ideal_prefix_hit_ratio(
                (
                    (tuple(hash((h, p.copy)) for h in p.record.hash_ids), p.record.input_tokens)
                    for p in planned
                ),
                block_size=planned[0].record.block_size,
            ),
            4,
        )
        desc["ideal_prefix_hit_basis"] = "trace hash_ids (infinite cache)"
    return desc


def _replay_fingerprint(planned: Sequence[Any], wl: Workload, api: str) -> str:
    """Prompts are a pure function of the records, copies and seed, so hashing those (not the
    long prompts) fingerprints the replay completely and cheaply."""
    digest = hashlib.sha256(b"benchbench-replay-v1\n")
    digest.update(f"{wl.seed}|{api}|{wl.ignore_eos}\n".encode())
    for p in planned:
        r = p.record
        t_ns = None if p.t_s is None else round(p.t_s * 1e9)
        row = (t_ns, r.input_tokens, r.output_tokens, r.block_size, r.hash_ids, p.copy)
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _length(flag: str, spec: str) -> Any:
    """parse_length, with the flag named in its one-line error."""
    from loadgen.lengths import parse_length

    try:
        return parse_length(spec)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None
