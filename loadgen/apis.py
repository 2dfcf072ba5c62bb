"""The API registry: every `--api` name, built in or installed as a plugin, and how to build
its Endpoint.

A built-in row names its adapter as "module:attribute" and is imported only when a run uses
it, so checking a name (`Target.api`) stays cheap. Third-party adapters are found through the
entry-point group `benchbench.adapters`:

    [project.entry-points."benchbench.adapters"]
    my-api = "my_package.adapter:MyEndpoint"

The object an entry point names is a factory with one signature,
``factory(options: AdapterOptions) -> Endpoint`` (usually the adapter class itself). Optional
class (or function) attributes say how a run uses it, with these defaults:

    shape = "chat"        # the request the workload builds: "chat" (messages) or
                          # "completions" (one prompt string)
    at_root = False       # True: Endpoint.path is relative to the server root, not --endpoint
    models = "openai"     # model discovery: "openai" (GET /models), "ollama" (/api/tags),
                          # "tgi" (/info) or "none" (send --model, or "default")
    auth = "bearer"       # how --api-key is sent: "bearer" (Authorization) or "x-api-key"
    headers = {}          # headers sent with every request unless the user gave them
    summary = ""          # one line for `bench apis`
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the validator of --api imports this module: keep it light
    from loadgen.endpoints import Endpoint

ENTRY_POINT_GROUP = "benchbench.adapters"
SHAPES = ("chat", "completions", "embeddings", "rerank")
DISCOVERY = ("openai", "ollama", "tgi", "none")
AUTH = ("bearer", "x-api-key")


class UnknownApi(ValueError):
    """An --api name that is neither built in nor installed; the message lists the known."""


class BadAdapter(ValueError):
    """An installed adapter that cannot be loaded or does not declare itself correctly."""


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    """What every adapter factory is given: the run's choices for the request body."""

    model: str
    stream: bool = True
    # Counts output tokens from the streamed text when the server reports none (the
    # client tokenizer, `--tokenizer`); None leaves such counts unknown, never guessed.
    count_output: Callable[[str], int] | None = None
    extra_body: dict[str, Any] | None = None


AdapterFactory = Callable[[AdapterOptions], "Endpoint"]


@dataclass(frozen=True, slots=True)
class ApiInfo:
    """One --api name: where its adapter is and how a run uses it."""

    name: str
    target: str  # "module:attribute" of the factory (imported on first use)
    shape: str = "chat"
    at_root: bool = False
    models: str = "openai"
    auth: str = "bearer"
    headers: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    plugin: bool = False  # installed through the entry-point group, not built in

    def factory(self) -> AdapterFactory:
        module, _, attr = self.target.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise BadAdapter(f"--api {self.name}: cannot load {self.target} ({exc})") from None
        if not callable(obj):
            raise BadAdapter(f"--api {self.name}: {self.target} is not callable")
        return obj  # type: ignore[no-any-return]


def _openai_chat(options: AdapterOptions) -> Endpoint:
    from loadgen.endpoints import OpenAIEndpoint

    return OpenAIEndpoint("chat", options.model, options.stream, None, options.count_output)


def _openai_completions(options: AdapterOptions) -> Endpoint:
    from loadgen.endpoints import OpenAIEndpoint

    return OpenAIEndpoint("completions", options.model, options.stream, None, options.count_output)


_ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}

# The built-in APIs, in the order `bench apis` lists them. Native APIs live at the server
# root (at_root): a trailing /v1 on --endpoint is dropped for them.
BUILTIN: dict[str, ApiInfo] = {
    info.name: info
    for info in (
        ApiInfo("chat", "loadgen.apis:_openai_chat", summary="OpenAI chat completions"),
        ApiInfo(
            "completions",
            "loadgen.apis:_openai_completions",
            shape="completions",
            summary="OpenAI (legacy) completions",
        ),
        ApiInfo(
            "responses",
            "loadgen.api_responses:ResponsesEndpoint",
            summary="OpenAI Responses API, POST /responses",
        ),
        ApiInfo(
            "messages",
            "loadgen.api_messages:MessagesEndpoint",
            auth="x-api-key",
            headers=_ANTHROPIC_VERSION,
            summary="Anthropic Messages API, POST /messages",
        ),
        ApiInfo(
            "llamacpp",
            "loadgen.api_llamacpp:LlamaCppEndpoint",
            shape="completions",
            at_root=True,
            summary="llama.cpp native, POST /completion (per-request timings)",
        ),
        ApiInfo(
            "tgi",
            "loadgen.api_tgi:TgiEndpoint",
            shape="completions",
            at_root=True,
            models="tgi",
            summary="Hugging Face TGI native, POST /generate_stream",
        ),
        ApiInfo(
            "ollama-chat",
            "loadgen.api_ollama:OllamaChatEndpoint",
            at_root=True,
            models="ollama",
            summary="Ollama native chat, POST /api/chat (NDJSON)",
        ),
        ApiInfo(
            "ollama-generate",
            "loadgen.api_ollama:OllamaGenerateEndpoint",
            shape="completions",
            at_root=True,
            models="ollama",
            summary="Ollama native generate, POST /api/generate (NDJSON)",
        ),
        # Non-streaming APIs (embeddings, rerank) register here too.
        ApiInfo(
            "embeddings",
            "loadgen.api_embeddings:from_options",
            shape="embeddings",
            summary="OpenAI embeddings, POST /embeddings (not streamed; --batch-size inputs)",
        ),
        ApiInfo(
            "rerank",
            "loadgen.api_rerank:from_options",
            shape="rerank",
            summary="Rerank (llama.cpp, vLLM, Jina, Cohere), POST /rerank (--documents)",
        ),
    )
}


def plugins() -> dict[str, ApiInfo]:
    """Adapters installed through the entry-point group, by name. Built-in names win: a
    plugin cannot silently replace what a run of `--api chat` measures."""
    out: dict[str, ApiInfo] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN or ep.name in out:
            continue
        out[ep.name] = ApiInfo(ep.name, ep.value, plugin=True)
    return out


def known() -> dict[str, ApiInfo]:
    """Every --api name: the built-ins, then the installed plugins (undeclared details)."""
    return {**BUILTIN, **plugins()}


def check_name(name: str) -> str:
    """`name` if it is a known API; else UnknownApi listing the known ones. Imports nothing
    beyond the entry-point metadata."""
    if name in BUILTIN:
        return name
    names = known()
    if name not in names:
        raise UnknownApi(f"unknown API {name!r}; use one of: {', '.join(names)}")
    return name


def lookup(name: str) -> ApiInfo:
    """The full description of `name`; a plugin's factory is loaded to read its declared
    attributes (shape, at_root, models, auth, headers, summary), each checked."""
    info = BUILTIN.get(name)
    if info is not None:
        return info
    check_name(name)
    info = plugins()[name]
    factory = info.factory()
    shape = getattr(factory, "shape", "chat")
    models = getattr(factory, "models", "openai")
    auth = getattr(factory, "auth", "bearer")
    headers = getattr(factory, "headers", {})
    for what, value, allowed in (("shape", shape, SHAPES), ("models", models, DISCOVERY)):
        if value not in allowed:
            raise BadAdapter(f"--api {name}: {what}={value!r}; use one of: {', '.join(allowed)}")
    if auth not in AUTH:
        raise BadAdapter(f"--api {name}: auth={auth!r}; use one of: {', '.join(AUTH)}")
    if not isinstance(headers, Mapping):
        raise BadAdapter(f"--api {name}: headers must be a mapping of header names to values")
    return ApiInfo(
        name,
        info.target,
        shape=shape,
        at_root=bool(getattr(factory, "at_root", False)),
        models=models,
        auth=auth,
        headers=dict(headers),
        summary=str(getattr(factory, "summary", "") or ""),
        plugin=True,
    )


def make_endpoint(name: str, options: AdapterOptions) -> Endpoint:
    """The Endpoint of `--api name` for one run."""
    endpoint = lookup(name).factory()(options)
    path = getattr(endpoint, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadAdapter(f"--api {name}: the adapter's path must be a string starting with '/'")
    return endpoint


def prompt_shape(name: str) -> str:
    """Which request the workload builds for `name`: "chat" (messages) or "completions"
    (a prompt); the pooling APIs name their own shapes."""
    return lookup(name).shape
