"""Project-wide rules that no single module test can see."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install the project with its [dev] extra")
    return path


def test_leaves_import_neither_the_spine_nor_each_other() -> None:
    result = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_ruff_clean() -> None:
    result = subprocess.run(
        [
            _tool("ruff"),
            "check",
            "benchbench",
            "loadgen",
            "collectors",
            "reports",
            "tests",
            "benchmarks",
            "scripts",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_cli_command_has_help() -> None:
    from benchbench.cli import app

    for command in app.registered_commands:
        doc = command.help or (command.callback.__doc__ if command.callback else None)
        assert doc, f"bench {command.name} has no help text"


# The developers' folder beside the checkout, spelled so that this file does not match itself.
_DEV_FOLDER = "sha" + "red"


def test_no_test_or_benchmark_reads_the_developers_data_folder() -> None:
    """A user's clone has no developers' folder beside it: the repository carries the data
    its tests read (tests/data/), so a fresh clone runs every test."""
    needles = (f"../{_DEV_FOLDER}", f'"{_DEV_FOLDER}"', f"'{_DEV_FOLDER}'", f"{_DEV_FOLDER}/data")
    offenders = []
    for folder in ("tests", "benchmarks", "benchbench", "loadgen", "collectors", "reports"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if any(needle in text for needle in needles):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"these read the developers' folder: {offenders}"


def test_no_import_cycles() -> None:
    """No module imports itself through others, deferred imports inside functions included:
    a cycle means two modules are one, and the layers (faces -> flow -> parts -> records)
    stop meaning anything."""
    import grimp

    graph = grimp.build_graph("benchbench", "loadgen", "collectors", "reports", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} -> {imported} -> ... -> {module}")
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_flow_imports_no_command_module() -> None:
    """Library first: nothing under execute() reaches a `bench` command module (cli_*)."""
    import grimp

    graph = grimp.build_graph("benchbench", cache_dir=None)
    reached = graph.find_upstream_modules("benchbench.execute") | {"benchbench.execute"}
    for module in ("benchbench.sweep", "benchbench.search", "benchbench.report_file"):
        reached |= graph.find_upstream_modules(module) | {module}
    assert sorted(m for m in reached if m.rsplit(".", 1)[-1].startswith("cli")) == []
