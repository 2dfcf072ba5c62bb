"""pytest fixtures that serve the generated models with a real llama-server.

Used by tests/realserver/conftest.py; a test directory elsewhere can use them too by
importing the fixtures into its own conftest.py:
`from tests.realserver.fixtures import llama_server_binary, llama_tiny  # noqa: F401`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realserver.build import BuildError, ensure_llama_server
from tests.realserver.model import GeneratedModel, ensure_model
from tests.realserver.server import LlamaServer

__all__ = [
    "llama_server_binary",
    "llama_small",
    "llama_small_model",
    "llama_tiny",
    "llama_tiny_model",
]

# Point at an existing binary (e.g. a CUDA build) instead of building one.
BINARY_ENV = "BENCHBENCH_LLAMA_SERVER"


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    """A llama-server binary: $BENCHBENCH_LLAMA_SERVER, the cached build, or a fresh build.

    A machine that cannot build one skips the llama.cpp tests with the reason; it never
    lets them pass without running.
    """
    given = os.environ.get(BINARY_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(f"${BINARY_ENV}={given} is not a file")
        return path
    try:
        return ensure_llama_server()
    except BuildError as exc:
        pytest.skip(f"llama-server unavailable: {exc}")


@pytest.fixture(scope="session")
def llama_tiny_model() -> GeneratedModel:
    return ensure_model("tiny", seed=0)


@pytest.fixture(scope="session")
def llama_small_model() -> GeneratedModel:
    return ensure_model("small", seed=0)


def _serve(binary: Path, model: GeneratedModel) -> Iterator[LlamaServer]:
    server = LlamaServer(
        binary,
        model.gguf_path,
        model_name=f"random-{model.spec.name}",
        tokenizer_path=model.tokenizer_path,
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def llama_tiny(
    llama_server_binary: Path, llama_tiny_model: GeneratedModel
) -> Iterator[LlamaServer]:
    """llama-server with the ~1 M-parameter model: milliseconds per request."""
    yield from _serve(llama_server_binary, llama_tiny_model)


@pytest.fixture(scope="session")
def llama_small(
    llama_server_binary: Path, llama_small_model: GeneratedModel
) -> Iterator[LlamaServer]:
    """llama-server with the ~220 M-parameter F16 model: tens of tokens/s on 2 threads."""
    yield from _serve(llama_server_binary, llama_small_model)
