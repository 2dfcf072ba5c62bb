"""The real llama-server the other tests benchmark: what it must do for benchbench to work.

Every request sends `Connection: close`: llama-server closes the socket after each
streamed response while advertising keep-alive, so a pooled connection could fail the
next request for reasons that have nothing to do with what is tested here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tokenizers import Tokenizer

from tests.realserver.model import GeneratedModel
from tests.realserver.server import LlamaServer, LlamaServerError

pytestmark = pytest.mark.llamacpp

CLOSE = {"Connection": "close"}
TIMEOUT = httpx.Timeout(30.0)


def stream_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST with stream=true and return the decoded `data:` events (without [DONE])."""
    events: list[dict[str, Any]] = []
    with httpx.stream("POST", url, json=body, headers=CLOSE, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: ") :]))
    return events


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url, json=body, headers=CLOSE, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_streaming_chat_sends_tokens_then_a_usage_chunk_with_timings(llama_tiny: LlamaServer):
    events = stream_events(
        f"{llama_tiny.base_url}/chat/completions",
        {
            "model": llama_tiny.model_name,
            "messages": [{"role": "user", "content": "Write a haiku about caches."}],
            "max_tokens": 16,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    contents = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    assert sum(1 for c in contents if c) >= 8  # one token per chunk, some may be empty text
    last = events[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 16
    assert last["usage"]["prompt_tokens"] > 0
    assert last["timings"]["predicted_n"] == 16
    assert last["timings"]["prompt_ms"] >= 0


def test_streaming_completions_reports_usage_in_the_last_chunk(llama_tiny: LlamaServer):
    events = stream_events(
        f"{llama_tiny.base_url}/completions",
        {
            "model": llama_tiny.model_name,
            "prompt": "import os\nimport sys\n\ndef main():",
            "max_tokens": 12,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    token_events = [e for e in events if e.get("choices") and e["choices"][0].get("text")]
    assert len(token_events) >= 6
    assert events[-1]["usage"]["completion_tokens"] == 12
    assert "timings" in events[-1]


@pytest.mark.parametrize("ignore_eos", [True, False])
def test_output_length_is_exactly_max_tokens(llama_tiny: LlamaServer, ignore_eos: bool):
    # Without ignore_eos too: the generated models can never sample an end-of-generation
    # token, so benchmarks get exactly the output lengths they ask for.
    for seed in range(4):
        result = post(
            f"{llama_tiny.base_url}/completions",
            {
                "model": llama_tiny.model_name,
                "prompt": f"class Parser{seed}:",
                "max_tokens": 48,
                "temperature": 1.0,
                "seed": seed,
                "ignore_eos": ignore_eos,
            },
        )
        assert result["usage"]["completion_tokens"] == 48
        assert result["choices"][0]["finish_reason"] == "length"


TEXTS = [
    "def fibonacci(n: int) -> int:\n    return n if n < 2 else fibonacci(n - 1)",
    "Ünïcödé and émojis 🚀 are bytes too; 12345 67.89",
    "    indented\n\n\ttabs  and   spaces\r\n",
    "<|im_start|> is plain text when it is not parsed as special",
]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_counts_match_the_saved_tokenizer_json(
    llama_tiny: LlamaServer, llama_tiny_model: GeneratedModel, text: str
):
    server_ids = post(f"{llama_tiny.root_url}/tokenize", {"content": text})["tokens"]
    client = Tokenizer.from_file(str(llama_tiny_model.tokenizer_path))
    # The client splits special-token text into ordinary tokens, as the server does here.
    client_ids = client.encode(text, add_special_tokens=False).ids
    assert len(server_ids) == len(client_ids)
    if "<|im_start|>" not in text:
        assert server_ids == client_ids


def test_prompt_token_count_matches_the_client_tokenizer(
    llama_tiny: LlamaServer, llama_tiny_model: GeneratedModel
):
    prompt = TEXTS[0] * 5
    result = post(
        f"{llama_tiny.base_url}/completions",
        {"model": llama_tiny.model_name, "prompt": prompt, "max_tokens": 1},
    )
    client = Tokenizer.from_file(str(llama_tiny_model.tokenizer_path))
    assert result["usage"]["prompt_tokens"] == len(client.encode(prompt).ids)


def test_metrics_endpoint_exposes_llamacpp_counters(llama_tiny: LlamaServer):
    post(
        f"{llama_tiny.base_url}/completions",
        {"model": llama_tiny.model_name, "prompt": "x = 1", "max_tokens": 4},
    )
    response = httpx.get(f"{llama_tiny.root_url}/metrics", headers=CLOSE, timeout=TIMEOUT)
    assert response.status_code == 200
    samples = dict(
        line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#")
    )
    assert float(samples["llamacpp:prompt_tokens_total"]) > 0
    assert float(samples["llamacpp:tokens_predicted_total"]) >= 4
    assert "llamacpp:requests_processing" in samples


def test_server_stops_on_exit_and_frees_its_port(
    llama_server_binary: Path, llama_tiny_model: GeneratedModel
):
    with LlamaServer(llama_server_binary, llama_tiny_model.gguf_path, slots=1) as server:
        assert httpx.get(f"{server.root_url}/health", headers=CLOSE).status_code == 200
        root = server.root_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{root}/health", headers=CLOSE, timeout=2.0)


def test_a_server_that_cannot_load_its_model_raises_with_the_log_tail(
    llama_server_binary: Path, tmp_path: Path
):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    with pytest.raises(LlamaServerError, match="exited with code") as info:
        with LlamaServer(llama_server_binary, bogus, startup_timeout_s=30):
            pass
    assert "not-a-model.gguf" in str(info.value)


@pytest.mark.slow
def test_small_model_decodes_at_a_realistic_pace(llama_small: LlamaServer):
    events = stream_events(
        f"{llama_small.base_url}/completions",
        {
            "model": llama_small.model_name,
            "prompt": TEXTS[0] * 4,
            "max_tokens": 16,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    timings = events[-1]["timings"]
    assert events[-1]["usage"]["completion_tokens"] == 16
    # Slow enough that queueing and batching are visible, fast enough for a test.
    assert 1.0 < timings["predicted_per_second"] < 2000.0
