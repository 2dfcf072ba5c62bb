"""The run's config: six sections whose fields are the only source of `bench run`'s flags,
help and defaults; a TOML file that `--print-config` writes and `--config` reads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.cli_options import read_config_file, to_toml
from benchbench.config import SECTIONS, RunConfig, flag_of, make_config
from benchbench.errors import ConfigError

runner = CliRunner()


def _run_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def test_field_names_are_unique_across_sections() -> None:
    names = [n for model in SECTIONS.values() for n in model.model_fields]
    assert len(names) == len(set(names))


def test_every_field_is_one_run_option_with_its_description_and_default() -> None:
    options = _run_options()
    for model in SECTIONS.values():
        for name, info in model.model_fields.items():
            option = options[name]
            assert option.help == info.description, name
            assert flag_of(name) in option.opts, name
            default = info.get_default(call_default_factory=True)
            expected = list(default) if isinstance(default, dict | tuple) else default
            if name in ("rate", "concurrency"):
                continue  # a string that may hold a sweep list; both default to None
            assert option.default == expected, name


def test_search_shares_runs_options_without_redeclaring_them() -> None:
    search = typer.main.get_command(app).commands["search"]  # type: ignore[attr-defined]
    run = _run_options()
    shared = {p.name: p for p in search.params if p.name in run}
    assert {"endpoint", "input_len", "timeout_s", "salt", "gpu_price"} <= set(shared)
    assert "rate" not in shared and "repeat" not in shared
    assert shared["duration_s"].default == 10.0  # a probe's own default
    assert shared["endpoint"].help == run["endpoint"].help


def _printed(args: list[str]) -> str:
    result = runner.invoke(app, ["run", "--print-config", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_print_config_reads_back_to_the_same_config(tmp_path: Path) -> None:
    args = ["--rate", "3", "--duration", "5", "--workload", "agent", "--no-salt",
            "--scrape", "http://127.0.0.1:9/metrics", "--name", 'quote " and \\ back',
            "--slo", "ttft_p99_ms=200", "--gpu-price", "2.5", "--db", "x.duckdb"]  # fmt: skip
    text = _printed(args)
    path = tmp_path / "run.toml"
    path.write_text(text)
    cfg = make_config(read_config_file(str(path)))
    assert cfg.load.rate == 3.0 and cfg.workload.salt is False
    assert cfg.workload.preset == "agent" and cfg.output.name == 'quote " and \\ back'
    assert cfg.collect.scrape == ("http://127.0.0.1:9/metrics",)
    assert to_toml(cfg) == text
    assert _printed(["--config", str(path)]) == text


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[load]\nrate = 2.0\nduration_s = 4.0\n[output]\nname = "file"\n')
    text = _printed(["--config", str(path), "--rate", "7"])
    cfg = make_config(read_config_file(_write(tmp_path / "out.toml", text)))
    assert cfg.load.rate == 7.0 and cfg.load.duration_s == 4.0 and cfg.output.name == "file"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_bad_config_file_is_one_line(tmp_path: Path) -> None:
    for text, says in [
        ("[loads]\nrate = 1\n", "unknown config section [loads]"),
        ("[load]\nrat = 1\n", "unknown setting"),
        ("[load]\nrate = -1\n", "--rate"),
        ("rate = 1\n", "must be a [section] table"),
        ("[load\n", "not valid TOML"),
    ]:
        path = _write(tmp_path / "bad.toml", text)
        result = runner.invoke(app, ["run", "--config", path, "--print-config"])
        assert result.exit_code == 2, (text, result.output)
        assert says in result.output and "Traceback" not in result.output


def test_secrets_are_never_printed() -> None:
    text = _printed(["--api-key", "sk-secret", "--header", "X-Token: hunter2"])
    assert "sk-secret" not in text and "hunter2" not in text


def test_variants_are_validated() -> None:
    cfg = make_config(rate=2.0, duration_s=3.0)
    assert cfg.replace(rate=4.0).load.rate == 4.0
    with pytest.raises(ConfigError, match="--rate"):
        cfg.replace(rate=-1.0)
    with pytest.raises(ConfigError, match="not both"):
        cfg.replace(concurrency=4)


def test_sections_default_and_each_setting_is_read_through_its_section() -> None:
    cfg = RunConfig()
    assert cfg.load.requests == 100 and cfg.load.concurrency == 8  # closed loop by default
    assert cfg.workload.salt is True and cfg.flat()["salt"] is True
    with pytest.raises(AttributeError):
        cfg.rate  # type: ignore[attr-defined]  # noqa: B018 - no flat alias of a section's field
