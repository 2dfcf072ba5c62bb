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
from loadgen.spec import RequestSpec

if TYPE_CHECKING:
    from benchbench.target import TargetLink
    from loadgen.runner import SessionSource
    from loadgen.sessions import ThinkTime

FINGERPRINT_MAX_SPECS = 10_000  # the fingerprint covers at most this many requests
DURATION_RUN_SPECS = 1_000  # closed-loop duration runs: requests fingerprinted (and fitted)
EXACT_MAX_SPECS = 2_000  # fitted through the tokenizer before the run; later ones as learned
HEAD_MAX_WORDS = 5_000_000  # prompts held in memory before the run (fingerprint, exact fit)
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
    if link is None and cfg.endpoint is not None:
        from benchbench.target import TargetLink

        link = TargetLink(cfg.target, cfg.endpoint)
    try:
        return _build(cfg, link)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _planned_n(cfg: RunConfig) -> int:
    """Requests the run will send (at most), or a bounded estimate for duration runs."""
    if cfg.requests is not None:
        n = cfg.requests + cfg.warmup
    elif cfg.rate is not None and cfg.duration_s is not None:
        n = math.ceil(cfg.rate * cfg.duration_s * 1.2) + cfg.warmup + 16
    else:
        n = DURATION_RUN_SPECS
    return min(n, FINGERPRINT_MAX_SPECS)


def _fit(fitter: Any, head: list[RequestSpec]) -> list[RequestSpec]:
    """The first EXACT_MAX_SPECS fitted through the counter, the rest as learned from them."""
    fitted = fitter.fit(head[:EXACT_MAX_SPECS])
    return fitted + [fitter.apply_learned(s) for s in head[EXACT_MAX_SPECS:]]


def _exact_head(
    cfg: RunConfig,
    specs: Iterator[RequestSpec],
    n: int,
    desc: dict[str, Any],
    link: TargetLink | None,
) -> tuple[list[RequestSpec], Iterator[RequestSpec]]:
    """The first n specs fitted to exact lengths (where a counter is available), and the rest
    corrected by what the fit learned."""
    head = _head(specs, n)
    fitter = _fitter(cfg, head, desc, link)
    if fitter is None:
        return head, specs
    head = _fit(fitter, head)
    desc["exact_lengths"]["stats"] = dict(fitter.stats)
    return head, map(fitter.apply_learned, specs)


def _head(specs: Iterator[RequestSpec], n: int) -> list[RequestSpec]:
    """The first ``n`` specs, fewer if their prompts pass HEAD_MAX_WORDS."""
    out: list[RequestSpec] = []
    words = 0
    for spec in itertools.islice(specs, n):
        out.append(spec)
        words += _words(spec)
        if words >= HEAD_MAX_WORDS:
            break
    return out


def _words(spec: RequestSpec) -> int:
    from loadgen.sessions import prompt_text

    return prompt_text(spec).count(" ") + 1


def _arrivals(cfg: RunConfig) -> Iterator[int] | None:
    if cfg.rate is None:
        return None
    from loadgen.arrivals import parse_arrivals

    arrivals = parse_arrivals(cfg.arrival, cfg.rate, burstiness=cfg.burstiness)
    return iter(arrivals.offsets_ns(np.random.default_rng([cfg.seed, 1])))


def _build(cfg: RunConfig, link: TargetLink | None) -> Traffic:
    from loadgen.sessions import parse_think_time

    if cfg.trace is not None:
        return _trace(cfg, link)
    n = _planned_n(cfg)
    think = parse_think_time(cfg.think_time)
    if cfg.session_turns is not None:
        from loadgen.sessions import SessionDriver

        workload, desc = _sessions(cfg, think)
        workload = dataclasses.replace(workload, salt=_run_salt(cfg, desc))
        # Session-major, replies as drawn: the order one slot sends them in (with ignore_eos).
        head = _head(workload.specs(), n)
        desc["exact_lengths"] = "words (sessions keep their history as drawn)"
        _describe_schedule(desc, head, None, prefix=True)
        offsets = _arrivals(cfg)  # open-loop sessions: one starts at each arrival
        mode = "closed" if offsets is None else "open"
        return Traffic(SessionDriver(workload), offsets, mode, desc)
    specs, desc = _source(cfg)
    specs = _salted(specs, cfg, desc)
    # The fingerprint describes the workload as drawn, before any exact-length fit: the fit
    # depends on how the server tokenizes this run's salt, which differs from run to run.
    drawn = _head(specs, n)
    head, rest = _exact_head(cfg, itertools.chain(drawn, specs), len(drawn), desc, link)
    offsets = _arrivals(cfg)
    offsets_head = list(itertools.islice(_arrivals(cfg), len(head))) if offsets else None
    wl = cfg.workload
    prefix = wl.system_prompt_tokens > 0 or wl.dataset_turns == "all" or wl.preset == "agent"
    _describe_schedule(desc, drawn, offsets_head, prefix=prefix)
    if offsets is not None:
        desc["arrival"] = cfg.arrival
        return Traffic(itertools.chain(head, rest), offsets, "open", desc)
    if not think.is_zero:
        from loadgen.sessions import ThinkingUsers

        desc["think_time_s"] = think.describe()
        users = ThinkingUsers(itertools.chain(head, rest), think, cfg.seed)
        return Traffic(users, None, "closed", desc)
    return Traffic(itertools.chain(head, rest), None, "closed", desc)


def _run_salt(cfg: RunConfig, desc: dict[str, Any]) -> str:
    """A fresh salt for this run (never from the seed), or "" with --no-salt; the traffic
    description records which: a salted run cannot be served from an earlier run's cache."""
    from loadgen.prompts import new_salt

    salted = bool(cfg.workload.salt)
    desc["salted"] = salted
    return new_salt() if salted else ""


def _salted(
    specs: Iterator[RequestSpec], cfg: RunConfig, desc: dict[str, Any]
) -> Iterator[RequestSpec]:
    """Every prompt of the run starting with the run's salt (before any exact-length fit,
    which then counts it); unchanged with --no-salt."""
    from loadgen.workload import salt_specs

    return salt_specs(specs, _run_salt(cfg, desc))


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


def _lengths(cfg: RunConfig) -> tuple[Any, Any, int, str]:
    """Input and output length distributions, system prompt tokens and the workload name."""
    from loadgen.lengths import parse_length
    from loadgen.presets import PRESETS, get_preset

    name = (cfg.workload.preset or "").strip().lower()
    if not name:
        return (
            _length("--input-len", cfg.input_len),
            _length("--output-len", cfg.output_len),
            cfg.system_prompt_tokens,
            "custom",
        )
    if name == "agent":
        input_len = parse_length(AGENT_INPUT)
        system = cfg.system_prompt_tokens or round(AGENT_SYSTEM_FRACTION * _mean(input_len))
        return input_len, parse_length(AGENT_OUTPUT), system, name
    if name not in PRESETS:
        raise ValueError(
            f"unknown workload preset {cfg.workload.preset!r}; valid presets: "
            f"{', '.join([*PRESETS, 'agent'])} (see `bench workloads`)"
        )
    preset = get_preset(name)
    return preset.input, preset.output, cfg.system_prompt_tokens, name


def _mean(dist: Any) -> float:
    return float(dist.sample(np.random.default_rng(0), 20_000).mean())


def _source(cfg: RunConfig) -> tuple[Iterator[RequestSpec], dict[str, Any]]:
    """The spec stream of a synthetic workload or a dataset, and its description."""
    if cfg.dataset is not None:
        from loadgen.datasets import dataset_specs, load_dataset

        items = load_dataset(cfg.dataset, turns=cfg.dataset_turns)
        specs = dataset_specs(
            items,
            api=cfg.api,
            output_len=_length("--output-len", cfg.output_len),
            seed=cfg.seed,
            ignore_eos=cfg.ignore_eos,
        )
        desc: dict[str, Any] = {
            "dataset": cfg.dataset,
            "items": len(items),
            "dataset_turns": cfg.dataset_turns,
        }
        return specs, desc
    from loadgen.sessions import with_system_share
    from loadgen.workload import SyntheticWorkload

    input_len, output_len, system, name = _lengths(cfg)
    wl = SyntheticWorkload(
        input_len=input_len,
        output_len=output_len,
        api=cfg.api,
        seed=cfg.seed,
        system_prompt_tokens=system,
        ignore_eos=cfg.ignore_eos,
    )
    specs = wl.specs()
    desc = {
        "workload": name,
        "input_len": input_len.describe(),
        "output_len": output_len.describe(),
    }
    if system:
        desc["system_prompt_tokens"] = system
        desc["system_prompt_share"] = cfg.system_prompt_share
        if cfg.system_prompt_share < 1:
            specs = with_system_share(specs, system, cfg.system_prompt_share, cfg.seed)
    return specs, desc


def _sessions(cfg: RunConfig, think: ThinkTime) -> tuple[Any, dict[str, Any]]:
    from loadgen.lengths import parse_length
    from loadgen.sessions import SessionWorkload

    if cfg.dataset is not None:
        raise ValueError("--session-turns builds synthetic sessions; drop --dataset")
    input_len, output_len, system, name = _lengths(cfg)
    try:
        turns = parse_length(cfg.session_turns or "")
    except ValueError as exc:
        raise ValueError(f"--session-turns: {exc}") from None
    wl = SessionWorkload(
        input_len=input_len,
        output_len=output_len,
        turns=turns,
        api=cfg.api,
        seed=cfg.seed,
        system_prompt_tokens=system,
        system_prompt_share=cfg.system_prompt_share,
        ignore_eos=cfg.ignore_eos,
        think_time=think,
    )
    desc = {
        "workload": name,
        "sessions": wl.describe(),
        "think_time_s": think.describe(),
        "session_turns": turns.describe(),
        "input_len": input_len.describe(),
        "output_len": output_len.describe(),
        "system_prompt_tokens": system,
        "system_prompt_share": cfg.system_prompt_share,
    }
    return wl, desc


def _fitter(
    cfg: RunConfig, head: list[RequestSpec], desc: dict[str, Any], link: TargetLink | None
) -> Any:
    """A LengthFitter for --exact-lengths, its offsets measured; None when not fitting."""
    from benchbench.exact import LengthFitter
    from benchbench.exact_probe import measure_offsets
    from benchbench.target import auth_headers
    from benchbench.token_counters import make_counter

    if not any(s.input_tokens_expected is not None for s in head):
        desc["exact_lengths"] = {"method": "none (the prompts have no target length)"}
        return None
    headers = auth_headers(cfg.api_key, cfg.headers)
    model = cfg.model
    # Every call to the server is bounded by the run's own limits: --timeout (silence) and
    # --request-timeout (total), so a stalled /models, /tokenize or probe cannot hang the command.
    bounds = {
        "request_timeout_s": cfg.request_timeout_s,
        "connect_timeout_s": cfg.connect_timeout_s,
    }
    if link is not None and cfg.endpoint is not None and cfg.exact_lengths != "off":
        model = link.model()  # the run asks /models once: the link keeps the answer
    counter = make_counter(
        cfg.exact_lengths,
        cfg.endpoint,
        model,
        headers,
        cfg.tokenizer,
        timeout_s=cfg.timeout_s,
        **bounds,
    )
    if counter is None:
        method = (
            "off"
            if cfg.exact_lengths == "off"
            else "words (exact for the built-in simulator)"
            if cfg.endpoint is None
            else "words (approximate: no /tokenize and no --tokenizer)"
        )
        desc["exact_lengths"] = {"method": method}
        return None
    fitter = LengthFitter(counter, seed=cfg.seed)
    if cfg.endpoint is not None and model is not None:
        try:
            offsets = measure_offsets(
                head, counter, cfg.endpoint, model, headers, cfg.timeout_s, **bounds
            )
        except Exception as exc:  # noqa: BLE001 - the fit still counts the content exactly
            desc["exact_lengths_warning"] = f"template offset not measured: {exc}"
            offsets = {}
        fitter.offsets.update(offsets)
    desc["exact_lengths"] = {
        "method": counter.name,
        "template_offsets": {"/".join(k): v for k, v in fitter.offsets.items()},
        "exact_requests": len(head),
    }
    return fitter


def _trace(cfg: RunConfig, link: TargetLink | None) -> Traffic:
    from loadgen.replay import ReplayOptions, replay_offsets_ns, replay_specs, schedule
    from loadgen.traces import load_trace

    assert cfg.trace is not None
    trace = load_trace(
        cfg.trace, cfg.trace_format, model=cfg.trace_model, log_type=cfg.trace_log_type
    )
    options = ReplayOptions(
        start_s=cfg.trace_start_s,
        duration_s=cfg.trace_duration_s,
        offset_s=cfg.trace_offset_s,
        speedup=cfg.speedup,
        rate_scale=cfg.rate_scale,
        limit=cfg.requests,
        seed=cfg.seed,
    )
    planned = schedule(trace.records, options)
    if not planned:
        raise ValueError(
            f"{cfg.trace}: no requests in the chosen window; check --trace-start/--trace-duration"
        )
    desc: dict[str, Any] = {
        "trace": cfg.trace,
        "format": trace.format,
        "records": len(planned),
        "trace_records": len(trace),
        "speedup": cfg.speedup,
        "rate_scale": cfg.rate_scale,
        "fingerprint": _replay_fingerprint(planned, cfg),
        "fingerprint_requests": len(planned),
    }
    timed = planned[0].t_s is not None
    if timed and len(planned) > 1 and planned[-1].t_s > planned[0].t_s:  # type: ignore[operator]
        span = planned[-1].t_s - planned[0].t_s  # type: ignore[operator]
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
    # Prompts are built as the runner asks: a whole Mooncake trace up front takes ~18 s
    # and ~0.9 GB. The schedule is shared with the description above, so not iter_replay.
    specs = replay_specs(planned, api=cfg.api, seed=cfg.seed, ignore_eos=cfg.ignore_eos)
    specs = _salted(specs, cfg, desc)
    head, rest = _exact_head(cfg, specs, _planned_n(cfg), desc, link)
    stream = itertools.chain(head, rest)
    if not timed:
        offsets = _arrivals(cfg)
        if offsets is None:
            return Traffic(stream, None, "closed", desc, max_requests=len(planned))
        desc["arrival"] = cfg.arrival
        return Traffic(stream, offsets, "open", desc, max_requests=len(planned))
    offsets_ns = replay_offsets_ns(planned)
    assert offsets_ns is not None  # timed
    return Traffic(stream, iter(offsets_ns), "replay", desc, max_requests=len(planned))


def _replay_fingerprint(planned: Sequence[Any], cfg: RunConfig) -> str:
    """Prompts are a pure function of the records, copies and seed, so hashing those (not the
    long prompts) fingerprints the replay completely and cheaply."""
    digest = hashlib.sha256(b"benchbench-replay-v1\n")
    digest.update(f"{cfg.seed}|{cfg.api}|{cfg.ignore_eos}\n".encode())
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
