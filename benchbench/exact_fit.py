"""A run's first requests fitted to exact token lengths before the run (benchbench.exact),
the rest corrected by what that fit learned; the traffic description says how."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from benchbench.sections import Target, Workload
from loadgen.spec import RequestSpec

if TYPE_CHECKING:
    from benchbench.exact import LengthFitter
    from benchbench.target import TargetLink

EXACT_MAX_SPECS = 2_000  # fitted through the tokenizer before the run; later ones as learned
HEAD_MAX_WORDS = 5_000_000  # prompts held in memory before the run (fingerprint, exact fit)


def head(specs: Iterator[RequestSpec], n: int) -> list[RequestSpec]:
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


def exact_head(
    workload: Workload,
    target: Target,
    specs: Iterator[RequestSpec],
    n: int,
    desc: dict[str, Any],
    link: TargetLink | None,
) -> tuple[list[RequestSpec], Iterator[RequestSpec]]:
    """The first n specs fitted to exact lengths (where a counter is available), and the rest
    corrected by what the fit learned."""
    first = head(specs, n)
    fitter = _fitter(workload, target, first, desc, link)
    if fitter is None:
        return first, specs
    fitted = fitter.fit(first[:EXACT_MAX_SPECS])
    first = fitted + [fitter.apply_learned(s) for s in first[EXACT_MAX_SPECS:]]
    desc["exact_lengths"]["stats"] = dict(fitter.stats)
    return first, map(fitter.apply_learned, specs)


def _fitter(
    workload: Workload,
    target: Target,
    first: list[RequestSpec],
    desc: dict[str, Any],
    link: TargetLink | None,
) -> LengthFitter | None:
    """A LengthFitter for --exact-lengths, its offsets measured; None when not fitting."""
    from benchbench.exact import LengthFitter
    from benchbench.exact_probe import measure_offsets
    from benchbench.target import auth_headers
    from benchbench.token_counters import make_counter

    if not any(s.input_tokens_expected is not None for s in first):
        desc["exact_lengths"] = {"method": "none (the prompts have no target length)"}
        return None
    endpoint, method = target.endpoint, workload.exact_lengths
    headers = auth_headers(target.api_key, target.headers)
    model = target.model
    # Every call to the server is bounded by the run's own limits: --timeout (silence) and
    # --request-timeout (total), so a stalled /models, /tokenize or probe cannot hang the command.
    bounds = {
        "request_timeout_s": target.request_timeout_s,
        "connect_timeout_s": target.connect_timeout_s,
    }
    if link is not None and endpoint is not None and method != "off":
        model = link.model()  # the run asks /models once: the link keeps the answer
    counter = make_counter(
        method, endpoint, model, headers, workload.tokenizer, timeout_s=target.timeout_s, **bounds
    )
    if counter is None:
        desc["exact_lengths"] = {"method": _unfitted(method, endpoint)}
        return None
    fitter = LengthFitter(counter, seed=workload.seed)
    if endpoint is not None and model is not None:
        try:
            offsets = measure_offsets(
                first, counter, endpoint, model, headers, target.timeout_s, **bounds
            )
        except Exception as exc:  # noqa: BLE001 - the fit still counts the content exactly
            desc["exact_lengths_warning"] = f"template offset not measured: {exc}"
            offsets = {}
        fitter.offsets.update(offsets)
    desc["exact_lengths"] = {
        "method": counter.name,
        "template_offsets": {"/".join(k): v for k, v in fitter.offsets.items()},
        "exact_requests": len(first),
    }
    return fitter


def _unfitted(method: str, endpoint: str | None) -> str:
    """How lengths are counted when no counter fits them."""
    if method == "off":
        return "off"
    if endpoint is None:
        return "words (exact for the built-in simulator)"
    return "words (approximate: no /tokenize and no --tokenizer)"
