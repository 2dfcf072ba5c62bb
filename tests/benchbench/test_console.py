"""The run summary as a person reads it: the prompt-cache line (what the server served from
its cache beside the workload's own reuse, salted or not) and the energy verdict lines (like
the token truth line), on the console and in `--json`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from benchbench.config import make_config
from benchbench.console import energy_lines, print_summary, prompt_cache_line
from benchbench.execute import run_benchmark
from benchbench.results import Energy

SERVED = {"share": 0.992, "source": "requests", "prompt_tokens": 38400.0, "cached_tokens": 38093.0}


def test_the_prompt_cache_line_puts_the_served_share_beside_the_workloads_reuse() -> None:
    line = prompt_cache_line({**SERVED, "ideal_prefix_hit": 0.25, "salted": False})
    assert line == (
        "served 99.2% of 38,400 prompt tokens (requests); the workload's own reuse 25.0% "
        "(ideal prefix hit); unsalted (--no-salt)"
    )


def test_without_the_workloads_reuse_or_salting_those_parts_are_left_out() -> None:
    assert prompt_cache_line({**SERVED, "ideal_prefix_hit": None, "salted": True}) == (
        "served 99.2% of 38,400 prompt tokens (requests); salted"
    )
    gauge = {"share": 0.4, "source": "prometheus: cache_hit_rate gauge", "prompt_tokens": None}
    assert prompt_cache_line(gauge) == (
        "served 40.0% of the prompt tokens (prometheus: cache_hit_rate gauge)"
    )


def test_an_unreported_cache_is_said_so_never_zero() -> None:
    line = prompt_cache_line({"share": None, "source": "not reported", "salted": True,
                              "ideal_prefix_hit": 0.1})  # fmt: skip
    assert line == "not reported by the server; salted"
    assert "0.0%" not in prompt_cache_line({"share": None, "salted": False})


def _energy(**kw: object) -> Energy:
    base = dict(source="nvml_counter", gross_j=600.0, avg_power_w=600.0, j_per_output_token=0.5)
    return Energy(**{**base, **kw})  # type: ignore[arg-type]


def test_the_energy_verdict_line_names_its_reasons_and_the_sources() -> None:
    coarse = "the counter refreshed every 30 s, too coarse for a 12 s window"
    lines = energy_lines(
        _energy(
            verdict={"status": "invalid", "reasons": [coarse, "samples cover only 40%"]},
            idle_verdict={"status": "partial", "reasons": ["idle power was still falling"]},
            source_notes=("local GPU(s) 0 (H100) measured: asked with --gpus 0",),
            notes=(
                "2 warm-up request(s) were still generating inside the window: their 40 "
                "tokens are counted with their energy",
            ),
        )  # fmt: skip
    )
    by_label = dict(lines)
    assert by_label["energy"].startswith("INVALID (see the energy verdict): 0.500 J/output")
    assert by_label["energy verdict"] == f"invalid: {coarse}; samples cover only 40%"
    assert by_label["energy source"] == "local GPU(s) 0 (H100) measured: asked with --gpus 0"
    assert by_label["energy note"].startswith("2 warm-up request(s) were still generating")
    assert by_label["idle baseline"] == "partial: idle power was still falling"


def test_an_ok_verdict_is_one_word_and_an_ok_idle_baseline_is_not_shown() -> None:
    lines = energy_lines(
        _energy(verdict={"status": "ok", "reasons": []}, idle_verdict={"status": "ok"})
    )
    assert ("energy verdict", "ok") in lines
    assert "idle baseline" not in dict(lines)
    assert not dict(lines)["energy"].startswith(("PARTIAL", "INVALID"))


def test_unmeasured_energy_says_why_once() -> None:
    why = "local GPUs not measured: the endpoint (x) is not on this host; pass --power-agent"
    e = Energy(unavailable="energy not measured: " + why.split(": ", 1)[1], source_notes=(why,))
    assert [label for label, _ in energy_lines(e)] == ["energy"]


def test_a_run_summary_shows_the_prompt_cache_on_the_console_and_in_json(tmp_path: Path) -> None:
    result = run_benchmark(
        make_config(db=str(tmp_path / "c.duckdb"), requests=10, nvml=False, sim_fast=True)
    )
    s = result.summary
    pc = s.prompt_cache
    # The simulator reports cached tokens per request; a salted run (the default) with no
    # shared prefix in its workload is served none of them from the cache.
    assert pc["share"] == 0.0 and pc["source"] == "requests" and pc["salted"] is True
    assert pc["measured"] == s.ok == 10

    console = Console(record=True, width=200, file=io.StringIO())
    print_summary(console, s)
    text = console.export_text()
    (row,) = [line for line in text.splitlines() if line.startswith("prompt cache")]
    shown = row.split(None, 2)[2].strip()
    assert shown.startswith("served 0.0% of ") and shown.endswith(
        " prompt tokens (requests); salted"
    )

    data = json.loads(json.dumps(s.to_dict(), default=str))
    assert data["prompt_cache"]["salted"] is True and data["prompt_cache"]["share"] == 0.0
