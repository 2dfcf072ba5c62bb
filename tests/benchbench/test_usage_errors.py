"""A bad command line is one `error:` line (and at most a one-line pointer to --help) with
exit 2, for every command `bench --help` lists, through the same entry point as the `bench`
console script (benchbench.cli:main). A bug inside a command keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from benchbench import cli

ROOT = Path(__file__).resolve().parents[2]


def _walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_walk(typer.main.get_command(cli.app), ()))
GROUPS = [()] + [
    path for path, _ in _walk(typer.main.get_command(cli.app), ()) for path in [path[:-1]] if path
]


def ids(paths: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(p) or "bench" for p in paths]


def run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """`bench ARGS` in this process, through cli.main exactly as the console script runs it."""
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def assert_usage_error(code: int, err: str, *mentions: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith("error: "), err
    if len(lines) == 2:
        assert lines[1].startswith("see `bench") and lines[1].endswith("--help`"), err
    for m in mentions:
        assert m in lines[0], err


def _params(command: object) -> list[object]:
    return [p for p in getattr(command, "params", []) if getattr(p, "name", "") != "help"]


def _takes_value(p: object) -> bool:
    return getattr(p, "param_type_name", "") == "option" and not getattr(p, "is_flag", False)


def _kind(p: object) -> str:
    bare = getattr(p, "bare_type", None)
    return str(bare() if callable(bare) else "").strip("'")


# (command path, flag) for every option that takes a value, and for every numeric one.
VALUE_OPTIONS = [
    (path, p.opts[0])  # type: ignore[attr-defined]
    for path, command in COMMANDS
    for p in _params(command)
    if _takes_value(p)
]
NUMERIC_OPTIONS = [
    (path, p.opts[0])  # type: ignore[attr-defined]
    for path, command in COMMANDS
    for p in _params(command)
    if _takes_value(p) and _kind(p) in ("int", "float")
]
REQUIRED = [
    path
    for path, command in COMMANDS
    if any(getattr(p, "required", False) for p in _params(command))
]


def option_ids(pairs: list[tuple[tuple[str, ...], str]]) -> list[str]:
    return [" ".join((*path, flag)) for path, flag in pairs]


def test_the_walk_finds_every_listed_command() -> None:
    listed = {path[0] for path, _ in COMMANDS}
    assert {"run", "runs", "show", "sim", "gate", "report", "search", "export"} <= listed
    assert ("baseline", "set") in [path for path, _ in COMMANDS]


def test_the_console_script_is_cli_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bench"] == "benchbench.cli:main"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=ids([p for p, _ in COMMANDS]))
def test_an_unknown_option_is_one_line(
    path: tuple[str, ...],
    command: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_main([*path, "--no-such-option"], monkeypatch, capsys)
    assert_usage_error(code, err, "--no-such-option")


@pytest.mark.parametrize(("path", "flag"), VALUE_OPTIONS, ids=option_ids(VALUE_OPTIONS))
def test_an_option_without_its_value_is_one_line(
    path: tuple[str, ...],
    flag: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_main([*path, flag], monkeypatch, capsys)
    assert_usage_error(code, err, flag)


@pytest.mark.parametrize(("path", "flag"), NUMERIC_OPTIONS, ids=option_ids(NUMERIC_OPTIONS))
def test_a_value_of_the_wrong_type_is_one_line(
    path: tuple[str, ...],
    flag: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_main([*path, flag, "abc"], monkeypatch, capsys)
    assert_usage_error(code, err, flag)


@pytest.mark.parametrize("path", REQUIRED, ids=ids(REQUIRED))
def test_a_missing_required_parameter_is_one_line(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(list(path), monkeypatch, capsys)
    assert_usage_error(code, err, "Missing")


def test_the_lists_cover_the_cases_the_issue_names() -> None:
    assert (("run",), "--requests") in NUMERIC_OPTIONS
    assert ("gate",) in REQUIRED
    assert len(VALUE_OPTIONS) > len(COMMANDS)


@pytest.mark.parametrize("group", GROUPS, ids=ids(GROUPS))
def test_an_unknown_command_is_one_line(
    group: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main([*group, "no-such-command"], monkeypatch, capsys)
    assert_usage_error(code, err, "no-such-command")


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=ids([p for p, _ in COMMANDS]))
def test_every_command_has_help(
    path: tuple[str, ...],
    command: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main([*path, "--help"], monkeypatch, capsys)
    assert code == 0 and "Usage" in out and not err


def test_the_console_script_prints_one_line_too() -> None:
    """The same through a separate interpreter, as a user's shell runs `bench`."""
    proc = subprocess.run(
        [sys.executable, "-c", "from benchbench.cli import main; main()", "run", "--requests"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_usage_error(proc.returncode, proc.stderr, "--requests")
    proc = subprocess.run(
        [sys.executable, "-c", "from benchbench.cli import main; main()", "gate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_usage_error(proc.returncode, proc.stderr, "--baseline")


def test_a_bug_inside_a_command_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import benchbench.queries

    def broken(db: str) -> list[object]:
        raise RuntimeError("a bug, not a usage error")

    monkeypatch.setattr(benchbench.queries, "list_runs", broken)
    monkeypatch.setattr(sys, "argv", ["bench", "runs", "--db", str(tmp_path / "x.duckdb")])
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "http://user:PASSw0rd7x@127.0.0.1:8000/v1"],
        ["show", "1", "(http://user:PASSw0rd7x@[::1]:8000/v1?token=SECRETtok42)"],
        ["http://user:PASSw0rd7x@127.0.0.1:8000/v1"],
    ],
)
def test_an_echoed_url_loses_its_credentials(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(args, monkeypatch, capsys)
    assert_usage_error(code, err, "REDACTED@")
    assert "PASSw0rd7x" not in out + err and "SECRETtok42" not in out + err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["[/]"], "[/]"),
        (["run", "--db", "x.duckdb", "--endpoint", "http://[/]"], "[/]"),
        (["run", "--db", "x.duckdb", "--input-len", "[/]"], "[/]"),
        (["gate", "--baseline", "x", "--db", "[/].duckdb"], "[/].duckdb"),
    ],
)
def test_brackets_in_bad_input_are_printed_not_parsed_as_markup(
    args: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(args, monkeypatch, capsys)
    assert_usage_error(code, err, says)
