"""`bench sim` as a function: every option has help, bad values are one line."""

from __future__ import annotations

import dataclasses

import typer
from typer.testing import CliRunner

from benchbench.sim import SimConfig
from benchbench.sim.cli import sim_command
from benchbench.sim.faults import FAULTS


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command("sim")(sim_command)
    return app


def test_every_config_knob_is_an_option_with_help() -> None:
    result = CliRunner().invoke(_app(), ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for field in dataclasses.fields(SimConfig):
        assert "--" + field.name.replace("_", "-") in result.output
    assert "Model id served by /v1/models" in result.output


def test_a_bad_value_is_a_one_line_error_not_a_traceback() -> None:
    result = CliRunner().invoke(_app(), ["--max-batch", "0"])
    assert result.exit_code == 2
    assert "max_batch must be >= 1" in result.output
    assert "Traceback" not in result.output


def test_faults_list_prints_every_fault_with_what_a_correct_client_records() -> None:
    result = CliRunner().invoke(_app(), ["--faults", "list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == len(FAULTS)
    for line, fault in zip(lines, FAULTS.values(), strict=True):
        assert line.startswith(fault.name + " ")
        assert fault.description in line
        assert "-> " + fault.outcomes[0] in line


def test_an_unknown_fault_is_a_one_line_error_naming_the_list() -> None:
    result = CliRunner().invoke(_app(), ["--faults", "ok,stall-forever"])
    assert result.exit_code == 2
    assert "unknown fault 'stall-forever'" in result.output
    assert "--faults list" in result.output
    assert "Traceback" not in result.output
