"""The gate's verdict for people and for CI: a rich table, Markdown (GitHub step summary),
JUnit XML (one test case per rule) and JSON."""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table

from benchbench.gate.compare import GateResult, RuleResult

_STYLE = {"pass": "green", "improved": "cyan", "regression": "bold red", "slo-fail": "bold red"}


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def _change(r: RuleResult) -> str:
    if r.diff is None:
        return "—"
    rel = r.rel_change
    return f"{r.diff:+.4g}" + (f" ({rel:+.1%})" if rel is not None else "")


def _interval(r: RuleResult) -> str:
    if r.low is None or r.high is None:
        return "—"
    return f"[{r.low:+.4g}, {r.high:+.4g}]"


def _target(r: RuleResult) -> str:
    if r.kind == "slo":
        return "—" if r.limit is None else f"{'≤' if r.better == 'lower' else '≥'} {r.limit:g}"
    if r.tolerance is None:
        return "—"
    return f"{'≤ +' if r.better == 'lower' else '≥ −'}{r.tolerance:.4g}"


def _share(v: float | None) -> str:
    return "not reported" if v is None else f"{v:.1%}"


def sides_line(result: GateResult) -> str:
    """What else each side was: its served prompt-cache share, and its energy verdict when
    either measured energy."""
    line = (
        f"served prompt cache: baseline {_share(result.baseline_served_cache)}, candidate "
        f"{_share(result.candidate_served_cache)}"
    )
    if result.baseline_energy or result.candidate_energy:
        line += (
            f"; energy verdict: baseline {result.baseline_energy or 'not measured'}, candidate "
            f"{result.candidate_energy or 'not measured'}"
        )
    return line


def headline(result: GateResult) -> str:
    if result.passed:
        return f"PASS: {result.candidate} vs {result.baseline}"
    names = ", ".join(r.key for r in result.failures)
    return f"FAIL: {len(result.failures)} regression(s) in {result.candidate}: {names}"


def print_result(console: Console, result: GateResult) -> None:
    table = Table(
        title=f"bench gate: baseline {result.baseline} → candidate {result.candidate}",
        caption=f"interval: {result.confidence:.0%} CI of the change; rules from "
        f"{result.config_source}",
    )
    for col in ("check", "baseline", "candidate", "change", "interval", "allowed", "verdict"):
        table.add_column(col, justify="left" if col in ("check", "verdict") else "right")
    for r in result.results:
        table.add_row(
            r.key,
            _num(r.baseline),
            _num(r.candidate),
            _change(r),
            _interval(r),
            _target(r),
            f"[{_STYLE.get(r.verdict, 'dim')}]{r.verdict}[/]",
        )
    console.print(table)
    console.print(sides_line(result), highlight=False, style="dim")
    style = "bold green" if result.passed else "bold red"
    console.print(f"[{style}]{headline(result)}[/]", highlight=False)


def markdown(result: GateResult) -> str:
    icon = {"pass": "✅", "improved": "🟢", "regression": "❌", "slo-fail": "❌", "skipped": "➖"}
    lines = [
        f"### bench gate: {'✅ pass' if result.passed else '❌ regression'}",
        "",
        f"Baseline **{result.baseline}**, candidate **{result.candidate}**. "
        f"Intervals are {result.confidence:.0%} confidence intervals of the change "
        f"(candidate − baseline); rules from {result.config_source}.",
        "",
        sides_line(result) + ".",
        "",
        "| check | baseline | candidate | change | interval | allowed | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in result.results:
        cells = (r.key, _num(r.baseline), _num(r.candidate), _change(r), _interval(r), _target(r))
        lines.append(
            "| "
            + " | ".join(c.replace("|", "\\|") for c in cells)
            + f" | {icon.get(r.verdict, '')} {r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def invalid_markdown(baseline: str, candidate: str, problems: list[str]) -> str:
    items = "\n".join(f"- {p}" for p in problems)
    return (
        f"### bench gate: ⚠️ invalid comparison\n\nBaseline **{baseline}**, candidate "
        f"**{candidate}** cannot be compared:\n\n{items}\n"
    )


def junit(result: GateResult) -> str:
    """One test case per rule and SLO; regressions are <failure>s, skipped rules <skipped>."""
    suite = ET.Element(
        "testsuite",
        name="bench gate",
        tests=str(len(result.results)),
        failures=str(len(result.failures)),
        errors="0",
        skipped=str(sum(r.verdict == "skipped" for r in result.results)),
    )
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname="benchbench.gate", name=r.key)
        message = (
            f"{r.key}: baseline {_num(r.baseline)}, candidate {_num(r.candidate)}, change "
            f"{_change(r)}, interval {_interval(r)}, allowed {_target(r)}: {r.detail}"
        )
        if r.failed:
            ET.SubElement(case, "failure", message=message, type=r.verdict).text = message
        elif r.verdict == "skipped":
            ET.SubElement(case, "skipped", message=r.detail)
        else:
            ET.SubElement(case, "system-out").text = message
    return _xml(suite)


def invalid_junit(problems: list[str]) -> str:
    suite = ET.Element("testsuite", name="bench gate", tests="1", failures="0", errors="1")
    case = ET.SubElement(suite, "testcase", classname="benchbench.gate", name="validity")
    text = "; ".join(problems)
    ET.SubElement(case, "error", message=text, type="invalid").text = text
    return _xml(suite)


def _xml(suite: ET.Element) -> str:
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_json(result: GateResult) -> str:
    d = result.to_dict()
    d["results"] = [_json_safe(r) for r in d["results"]]
    return json.dumps({"valid": True, **d}, default=str)


def _json_safe(row: dict) -> dict:
    """Infinite figures (error-adjusted metrics past their failures) as null, named in the
    row's `infinite` list: strict JSON has no infinity (as RunSummary.to_dict)."""
    inf = [k for k, v in row.items() if isinstance(v, float) and math.isinf(v)]
    return {**row, **dict.fromkeys(inf), "infinite": inf} if inf else row


def invalid_json(problems: list[str]) -> str:
    return json.dumps({"valid": False, "passed": False, "exit_code": 2, "problems": problems})
