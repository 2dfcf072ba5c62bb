"""The comparison: each rule's change, its interval and verdict; each SLO's check; the
overall verdict and exit code (0 pass, 1 regression; validity problems raise, exit 2)."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchbench.gate.data import SideData
from benchbench.gate.rules import GateConfig, Rule, Slo, stat_quantile
from benchbench.gate.stats import Change, change_of_runs, change_of_statistic, point
from benchbench.gate.validity import side_cache_share, side_energy_status, validity_problems

EXIT_PASS, EXIT_REGRESSION, EXIT_INVALID = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RuleResult:
    key: str  # "ttft_ms.p99", "output_tok_s", or "slo:ttft_p99_ms"
    kind: str  # "rule" | "slo"
    verdict: str  # "pass" | "improved" | "regression" | "slo-fail" | "skipped"
    better: str
    baseline: float | None
    candidate: float | None
    diff: float | None
    low: float | None  # interval of the change (candidate - baseline)
    high: float | None
    tolerance: float | None  # the change that counts: max(rel x |baseline|, abs)
    detail: str
    limit: float | None = None  # an SLO's bound

    @property
    def failed(self) -> bool:
        return self.verdict in ("regression", "slo-fail")

    @property
    def rel_change(self) -> float | None:
        if self.diff is None or not self.baseline:
            return None
        return self.diff / abs(self.baseline)


@dataclass(frozen=True, slots=True)
class GateResult:
    baseline: str
    candidate: str
    baseline_runs: tuple[int, ...]
    candidate_runs: tuple[int, ...]
    results: tuple[RuleResult, ...]
    confidence: float
    config_source: str
    # Each side's served prompt-cache share (benchbench.cache; None: not reported) and energy
    # verdict (worst of its runs; None: not measured), shown beside the verdict.
    baseline_served_cache: float | None = None
    candidate_served_cache: float | None = None
    baseline_energy: str | None = None
    candidate_energy: str | None = None

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.failed)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_REGRESSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["exit_code"] = self.exit_code
        return d


class InvalidComparison(Exception):
    """The sides cannot be compared; `problems` lists why (the CLI exits 2)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def needed_metrics(cfg: GateConfig) -> tuple[set[str], set[str]]:
    """(distribution metrics, run-level metrics) the rules and SLOs read."""
    items = [(r.metric, r.stat) for r in cfg.rules] + [(s.metric, s.stat) for s in cfg.slos]
    dists = {m for m, stat in items if stat is not None}
    return dists, {m for m, stat in items if stat is None}


def compare(base: SideData, cand: SideData, cfg: GateConfig) -> GateResult:
    """Validity first (InvalidComparison), then every rule and SLO."""
    problems = validity_problems(base, cand, cfg)
    if problems:
        raise InvalidComparison(problems)
    results = [evaluate_rule(rule, base, cand, cfg) for rule in cfg.rules]
    results += [evaluate_slo(slo, cand) for slo in cfg.slos]
    return GateResult(
        base.label,
        cand.label,
        base.run_ids,
        cand.run_ids,
        tuple(results),
        cfg.confidence,
        cfg.source,
        side_cache_share(base),
        side_cache_share(cand),
        side_energy_status(base),
        side_energy_status(cand),
    )


def evaluate_rule(rule: Rule, base: SideData, cand: SideData, cfg: GateConfig) -> RuleResult:
    change = _change(rule, base, cand, cfg)
    if change is None:
        return _skipped(rule.key, "rule", rule.better, "no data on one side")
    tol = max(rule.rel * abs(change.baseline), rule.abs)
    # In "worse" units: positive = worse, whatever the better direction.
    if rule.better == "lower":
        worse, wlow, whigh = change.diff, change.low, change.high
    else:
        worse = -change.diff
        wlow = None if change.high is None else -change.high
        whigh = None if change.low is None else -change.low
    if wlow is None or whigh is None:  # no interval: the point change decides
        worse_low = worse_high = worse
        how = "point change (one run per side, no interval)"
    else:
        worse_low, worse_high = wlow, whigh
        how = f"{cfg.confidence:.0%} interval"
    if worse_low > tol:
        verdict = "regression"
        detail = f"{how} of the change lies beyond the tolerance {tol:.4g}"
    elif worse_high < -tol:
        verdict, detail = "improved", f"{how} better by more than the tolerance {tol:.4g}"
    else:
        verdict, detail = "pass", f"within tolerance {tol:.4g} ({how})"
    return RuleResult(
        rule.key, "rule", verdict, rule.better, change.baseline, change.candidate,
        change.diff, change.low, change.high, tol, detail,
    )  # fmt: skip


def _change(rule: Rule, base: SideData, cand: SideData, cfg: GateConfig) -> Change | None:
    if rule.stat is None:
        a, b = base.run_values.get(rule.metric), cand.run_values.get(rule.metric)
        if not a or not b:
            return None
        return change_of_runs(a, b, confidence=cfg.confidence)
    a, b = base.values.get(rule.metric), cand.values.get(rule.metric)
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    # Seeded per rule, so adding a rule never changes another rule's interval.
    rng = np.random.default_rng([cfg.seed, zlib.crc32(rule.key.encode())])
    q = stat_quantile(rule.stat)
    return change_of_statistic(a, b, q, confidence=cfg.confidence, resamples=cfg.resamples, rng=rng)


def evaluate_slo(slo: Slo, cand: SideData) -> RuleResult:
    key = f"slo:{slo.key}"
    if slo.stat is None:
        vals = cand.run_values.get(slo.metric)
        value = float(np.mean(vals)) if vals else None
    else:
        arr = cand.values.get(slo.metric)
        value = (
            point(np.sort(arr), stat_quantile(slo.stat)) if arr is not None and len(arr) else None
        )
    if value is None:
        # An SLO that cannot be checked fails: silence must not read as compliance.
        return RuleResult(
            key, "slo", "slo-fail", slo.better, None, None, None, None, None, None,
            "no data in the candidate to check this SLO", slo.limit,
        )  # fmt: skip
    met = value <= slo.limit if slo.better == "lower" else value >= slo.limit
    op = "<=" if slo.better == "lower" else ">="
    return RuleResult(
        key, "slo", "pass" if met else "slo-fail", slo.better, None, value, None, None, None,
        None, f"candidate {value:.4g} {'meets' if met else 'breaks'} {op} {slo.limit:g}",
        slo.limit,
    )  # fmt: skip


def _skipped(key: str, kind: str, better: str, why: str) -> RuleResult:
    return RuleResult(key, kind, "skipped", better, None, None, None, None, None, None, why)
