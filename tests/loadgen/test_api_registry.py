"""The --api registry: every built-in name resolves to an adapter that declares its path and
shape; an unknown name is one line listing the known ones; checking a name stays cheap (the
config validator runs it for every command)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchbench.config import make_config
from benchbench.errors import ConfigError
from loadgen.apis import BUILTIN, SHAPES, AdapterOptions, UnknownApi, check_name, make_endpoint

STREAMING = ["responses", "messages", "llamacpp", "tgi", "ollama-chat", "ollama-generate"]


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_built_in_name_builds_an_adapter_as_declared(name: str) -> None:
    info = BUILTIN[name]
    endpoint = make_endpoint(name, AdapterOptions(model="m"))
    assert endpoint.path.startswith("/") and info.shape in SHAPES
    # Where an adapter class declares its own details, the registry row agrees with them.
    for attr in ("shape", "at_root", "models", "auth"):
        declared = getattr(type(endpoint), attr, None)
        if declared is not None:
            assert declared == getattr(info, attr), (name, attr)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownApi) as caught:
        check_name("anthropic")
    message = str(caught.value)
    assert message.startswith("unknown API 'anthropic'; use one of: chat, completions")
    assert all(name in message for name in STREAMING)


def test_the_config_refuses_an_unknown_api_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(api="grpc")
    assert "unknown API 'grpc'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", STREAMING)
def test_the_config_accepts_each_new_api(name: str) -> None:
    assert make_config(api=name).target.api == name


def test_checking_a_name_imports_no_adapter_and_no_http_stack() -> None:
    code = (
        "import sys; from loadgen.apis import check_name; check_name('messages');"
        "print(sorted(m for m in sys.modules if m.startswith(('loadgen.api_', 'httpx', "
        "'loadgen.endpoints'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
