"""How a run reaches each API: native APIs at the server root whatever --endpoint's /v1, the
API key sent the way the API reads it, and the model named the API's own way (/v1/models,
Ollama's /api/tags, TGI's /info), all against the simulator over loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from benchbench.config import make_config
from benchbench.errors import EndpointError
from benchbench.sim import SimConfig, start_sim
from benchbench.target import TargetLink, api_headers, server_root


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A simulator on its own thread's loop, for synchronous callers (model discovery)."""
    ready = threading.Event()
    state: dict = {}

    def serve() -> None:
        async def main() -> None:
            sim = await start_sim(SimConfig(model="sim-model"))
            state["url"], state["stop"] = sim.base_url, asyncio.Event()
            ready.set()
            await state["stop"].wait()
            await sim.stop()

        loop = asyncio.new_event_loop()
        state["loop"] = loop
        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield state["url"]
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(10)


def _link(api: str, url: str, **target: object) -> TargetLink:
    return TargetLink(make_config(api=api, endpoint=url, **target).target, url)


def test_native_apis_are_sent_to_the_server_root() -> None:
    assert server_root("http://h:8080/v1") == "http://h:8080"
    assert server_root("http://h:8080/v1/") == "http://h:8080"
    assert server_root("http://h:11434") == "http://h:11434"
    assert server_root("http://h/proxy/v1") == "http://h/proxy"


@pytest.mark.parametrize(
    ("api", "suffix"),
    [("chat", "/v1"), ("responses", "/v1"), ("messages", "/v1"), ("llamacpp", ""),
     ("tgi", ""), ("ollama-chat", ""), ("ollama-generate", "")],
)  # fmt: skip
def test_each_api_gets_its_base_url(api: str, suffix: str) -> None:
    assert _link(api, "http://127.0.0.1:9/v1").base_url == "http://127.0.0.1:9" + suffix


def test_the_messages_api_takes_its_key_in_x_api_key_with_a_version() -> None:
    link = _link("messages", "http://127.0.0.1:9/v1", api_key="k1")
    assert link.headers == {"x-api-key": "k1", "anthropic-version": "2023-06-01"}
    assert _link("chat", "http://127.0.0.1:9/v1", api_key="k1").headers == {
        "Authorization": "Bearer k1"
    }


def test_a_header_the_user_gave_wins_over_the_apis_default() -> None:
    headers = api_headers("k", {"Anthropic-Version": "2024-01-01"}, "x-api-key", {
        "anthropic-version": "2023-06-01"
    })  # fmt: skip
    assert headers == {"Anthropic-Version": "2024-01-01", "x-api-key": "k"}


@pytest.mark.parametrize(
    ("api", "given"),
    [("chat", "v1"), ("responses", "v1"), ("llamacpp", "v1"), ("llamacpp", "root"),
     ("tgi", "v1"), ("tgi", "root"), ("ollama-chat", "v1"), ("ollama-chat", "root")],
)  # fmt: skip
def test_the_model_is_discovered_the_apis_way(sim_url: str, api: str, given: str) -> None:
    url = sim_url if given == "v1" else server_root(sim_url)
    assert _link(api, url).model() == "sim-model"


def test_a_server_without_the_native_listing_says_pass_model() -> None:
    link = _link("ollama-chat", "http://127.0.0.1:9")
    with pytest.raises(EndpointError, match="cannot connect to http://127.0.0.1:9/api/tags"):
        link.model()
