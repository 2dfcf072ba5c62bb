"""`bench report` and write_report: which runs a command reports, the file it writes, and a
store whose text carries a script that must stay text in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.errors import BenchError
from benchbench.report_file import resolve_runs, write_report
from benchbench.store import open_store
from loadgen.spec import RequestRecord
from reports import chart_count
from tests.benchbench.runs import record, write_run
from tests.reports import browser

PAYLOAD = "<script>window.__pwned=1</script>"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Runs 1-3: a lone run, then a two-point sweep, each of 40 requests 50 ms apart (every
    tenth an HTTP 500); model and error text carry a payload."""
    path = str(tmp_path_factory.mktemp("cli") / "r.duckdb")
    store = open_store(path)
    for i, sweep in enumerate((None, "sw1", "sw1")):
        write_run(
            store, (_request(k) for k in range(40)),
            endpoint="http://e", model=f"m {PAYLOAD}", load_mode="open",
            requested_rate=float(i + 1), sweep_id=sweep, sweep_point=i,
            config={"api_key": "sk-SECRET"},
        )  # fmt: skip
    store.close()
    return path


def _request(k: int) -> RequestRecord:
    sent = k * 50_000_000
    if k % 10 == 3:
        return record(k, sent, None, intended_ns=sent, error_kind="http_500",
                      error_detail=f"detail {PAYLOAD}", input_tokens=100)  # fmt: skip
    return record(k, sent, 20_000_000, 10_000_000, 8, intended_ns=sent, input_tokens=100)


def test_default_follows_the_last_command_a_whole_sweep(db: str) -> None:
    ids, note = resolve_runs(db, [], None)
    assert ids == [2, 3]
    assert note is not None and "sw1" in note


def test_latest_named_is_one_run_with_a_hint_about_its_sweep(db: str) -> None:
    ids, hint = resolve_runs(db, ["latest"], None)
    assert ids == [3]
    assert hint is not None and "--sweep sw1" in hint


def test_sweep_selects_its_runs_in_point_order(db: str) -> None:
    assert resolve_runs(db, [], "sw1") == ([2, 3], None)
    assert resolve_runs(db, [], "latest") == ([2, 3], None)
    assert resolve_runs(db, ["1", "latest"], None)[0] == [1, 3]


def test_unknown_run_or_sweep_is_a_one_line_error(db: str) -> None:
    with pytest.raises(BenchError, match="no run 99"):
        resolve_runs(db, ["99"], None)
    with pytest.raises(BenchError, match="no runs in group 'nope'"):
        resolve_runs(db, [], "nope")


def test_write_report_writes_one_escaped_secret_free_file(db: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    info = write_report(db, [2, 3], str(out))
    html = out.read_text(encoding="utf-8")
    assert info.bytes == out.stat().st_size and info.charts > 10
    assert PAYLOAD not in html and "sk-SECRET" not in html
    assert "m &lt;script&gt;" in html and "detail &lt;script&gt;" in html  # there, as text
    assert "Comparison" in html
    assert not list(tmp_path.glob(".report-*"))  # the temporary file was renamed


def test_the_command_writes_the_file_and_says_where(db: str, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", "1", "--db", db, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "wrote" in result.output


def test_report_has_help() -> None:
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "--sweep" in result.output


@pytest.mark.browser
def test_payload_in_model_and_error_detail_does_not_run_in_a_browser(
    db: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    write_report(db, [1], str(out))
    html = out.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(browser.without_csp_with_probe(html), encoding="utf-8")
    dom, log = browser.dump_dom(probe, tmp_path / "profile")
    assert 'data-pwned="no"' in dom
    assert "detail &lt;script&gt;window.__pwned=1&lt;/script&gt;" in dom
    dom, log = browser.dump_dom(out, tmp_path / "profile")  # as shipped, CSP on
    assert f'data-charts-rendered="{chart_count(html)}"' in dom
    assert browser.page_errors(dom) is None and browser.console_errors(log) == []
    assert browser.chart_divs_without_svg(dom) == []
