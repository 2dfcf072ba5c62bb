"""Building llama-server: reuse the cache, and say clearly why a build is impossible."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realserver.build import (
    BuildError,
    cache_root,
    cached_server_binary,
    ensure_llama_server,
)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCHBENCH_CACHE", str(tmp_path))
    return tmp_path


def test_cache_root_follows_the_environment(empty_cache: Path):
    assert cache_root() == empty_cache


def test_a_cached_binary_is_reused_without_building(empty_cache: Path):
    binary = empty_cache / "llama-server" / "9.9.9" / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    logged: list[str] = []
    assert ensure_llama_server("9.9.9", log=logged.append) == binary
    assert logged == []


def test_missing_build_tools_raise_a_build_error_naming_them(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(empty_cache))  # nothing executable on PATH
    with pytest.raises(BuildError, match="cmake and a C\\+\\+ compiler not found"):
        ensure_llama_server("9.9.9", log=lambda _line: None)
    assert cached_server_binary("9.9.9") is None
    assert os.listdir(empty_cache / "llama-server" / "9.9.9") == ["build.lock"]
