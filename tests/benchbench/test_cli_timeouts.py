"""Every wait around a run has a bound: /models, /tokenize and the chat-template probe use
--timeout (silence) and --request-timeout (total), so a server that stalls or trickles bytes
costs a one-line error or a fallback, never a hung command. The template probe sends text of
its own, so it cannot prime the server's prefix cache with the first workload prompt."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchbench.config import make_config
from benchbench.errors import BenchError
from benchbench.exact import LengthFitter, TokenizeError
from benchbench.exact_probe import measure_offsets
from benchbench.target import discover_model
from benchbench.token_counters import FallbackCounter, make_counter
from benchbench.traffic import build_traffic
from loadgen.spec import RequestSpec

TEMPLATE_TOKENS = 5  # what the fake server's "chat template" adds per request
TRICKLE_GAP_S = 0.1
TRICKLE_MAX_S = 30.0  # a trickle ends by itself: no test can leave a thread behind for long


class Behaviour:
    ok = "ok"  # answer at once
    trickle = "trickle"  # headers at once, then the body one byte per gap
    trickle_head = "trickle_head"  # even the status line and headers one byte per gap
    stall = "stall"  # headers, then nothing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # eight concurrent /tokenize connects must not overflow the backlog


class FakeServer:
    """A loopback OpenAI-like server with a word-counting /tokenize, whose routes can be made
    to stall or trickle. Records every request body it is sent."""

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.tokenize_ok_calls = 0  # /tokenize calls answered normally before misbehaving
        self.requests: list[tuple[str, dict[str, object]]] = []
        self.closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                owner._answer(self, {})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                owner._answer(self, json.loads(self.rfile.read(length) or b"{}"))

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,))

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _body(self, path: str, body: dict[str, object]) -> dict[str, object]:
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": "fake-model"}]}
        if path == "/tokenize":
            text = str(body.get("content") or body.get("prompt") or "")
            return {"tokens": list(range(len(text.split())))}
        if path == "/v1/chat/completions":
            messages = body.get("messages") or []
            words = sum(len(str(m["content"]).split()) for m in messages)  # type: ignore[index]
            usage = {"prompt_tokens": words + TEMPLATE_TOKENS, "completion_tokens": 1}
            return {"choices": [{"message": {"content": "x"}}], "usage": usage}
        return {"error": "not found"}

    def _answer(self, h: BaseHTTPRequestHandler, body: dict[str, object]) -> None:
        path = h.path
        self.requests.append((path, body))
        behaviour = self.behaviour.get(path, Behaviour.ok)
        if path == "/tokenize" and behaviour != Behaviour.ok and self.tokenize_ok_calls > 0:
            self.tokenize_ok_calls -= 1
            behaviour = Behaviour.ok
        data = json.dumps(self._body(path, body)).encode()
        # A trickled body promises more than it will ever send: it never completes.
        length = len(data) if behaviour == Behaviour.ok else len(data) + 1_000_000
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
        try:
            if behaviour == Behaviour.ok:
                h.wfile.write(head + data)
            elif behaviour == Behaviour.stall:
                h.wfile.write(head)
                self.closing.wait(TRICKLE_MAX_S)
            else:
                if behaviour == Behaviour.trickle:
                    h.wfile.write(head)
                    head = b""
                self._trickle(h, head + data)
        except OSError:
            pass  # the client gave up: that is the point
        h.close_connection = True

    def _trickle(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        # One byte per gap for ever (well: TRICKLE_MAX_S), never silent for long.
        end = time.monotonic() + TRICKLE_MAX_S
        i = 0
        while not self.closing.is_set() and time.monotonic() < end:
            h.wfile.write(data[i : i + 1] if i < len(data) else b" ")
            h.wfile.flush()
            i += 1
            self.closing.wait(TRICKLE_GAP_S)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s


def within(limit_s: float, fn: Callable[[], object]) -> object:
    """fn's result (or exception), asserting it came within `limit_s`: the proof of no hang."""
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - t0 < limit_s


# -- /models --------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [Behaviour.trickle, Behaviour.trickle_head])
def test_a_trickling_models_endpoint_is_cut_at_the_total_bound(
    server: FakeServer, behaviour: str
) -> None:
    server.behaviour["/v1/models"] = behaviour
    with pytest.raises(BenchError, match="did not finish answering within 1 s") as err:
        within(6, lambda: discover_model(server.root + "/v1", {}, 0.5, 1.0))
    assert "\n" not in str(err.value)


def test_a_silent_models_endpoint_is_cut_at_the_silence_bound(server: FakeServer) -> None:
    server.behaviour["/v1/models"] = Behaviour.stall
    with pytest.raises(BenchError, match="did not answer within 0.5 s"):
        within(6, lambda: discover_model(server.root + "/v1", {}, 0.5, 30.0))


def test_discovery_answers_normally(server: FakeServer) -> None:
    assert discover_model(server.root + "/v1", {}, 2.0, 5.0) == "fake-model"


# -- /tokenize ------------------------------------------------------------------------------


def counter_for(server: FakeServer, method: str, warnings: list[str]) -> object:
    return make_counter(
        method,
        server.root + "/v1",
        "fake-model",
        {},
        None,
        timeout_s=0.5,
        request_timeout_s=1.0,
        warn=warnings.append,
    )


@pytest.mark.parametrize("behaviour", [Behaviour.stall, Behaviour.trickle])
def test_auto_falls_back_with_one_warning_when_tokenize_stalls_at_once(
    server: FakeServer, behaviour: str
) -> None:
    server.behaviour["/tokenize"] = behaviour
    warnings: list[str] = []
    counter = within(6, lambda: counter_for(server, "auto", warnings))
    assert counter is None  # lengths as drawn (words), as for a server without /tokenize
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "/tokenize" in warnings[0]


@pytest.mark.parametrize("behaviour", [Behaviour.stall, Behaviour.trickle])
def test_server_method_fails_in_one_line_when_tokenize_stalls(
    server: FakeServer, behaviour: str
) -> None:
    server.behaviour["/tokenize"] = behaviour
    with pytest.raises(ValueError, match="/tokenize does not answer") as err:
        within(6, lambda: counter_for(server, "server", []))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("behaviour", [Behaviour.stall, Behaviour.trickle])
def test_auto_falls_back_when_tokenize_stalls_mid_fit(server: FakeServer, behaviour: str) -> None:
    server.behaviour["/tokenize"] = behaviour
    server.tokenize_ok_calls = 1  # the probe is answered; the counting then stalls
    warnings: list[str] = []
    counter = counter_for(server, "auto", warnings)
    assert isinstance(counter, FallbackCounter)
    texts = [f"w{i} " * (10 + i) for i in range(40)]
    counts = within(8, lambda: counter.count(texts))
    assert counts == [10 + i for i in range(40)]  # words: the fallback
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert counter.name.startswith("words (after server:")
    # Later counts go straight to the fallback: one warning, no second wait.
    assert within(1, lambda: counter.count(["a b"])) == [2]
    assert len(warnings) == 1


def test_server_method_mid_fit_stall_is_one_line(server: FakeServer) -> None:
    server.behaviour["/tokenize"] = Behaviour.trickle
    server.tokenize_ok_calls = 1
    counter = counter_for(server, "server", [])
    with pytest.raises(TokenizeError, match="within 1 s") as err:
        within(6, lambda: counter.count(["a b c"] * 20))
    assert "\n" not in str(err.value)


def test_the_template_probe_is_bounded_too(server: FakeServer) -> None:
    server.behaviour["/v1/chat/completions"] = Behaviour.trickle
    specs = drawn(server, 2)
    with pytest.raises(TokenizeError, match="within 1 s"):
        within(6, lambda: measure_offsets(specs, _Words(), server.root + "/v1", "m", {}, 0.5, 1.0))


def drawn(server: FakeServer, n: int, **cfg: object) -> list[RequestSpec]:
    """The first n requests of a synthetic workload, lengths as drawn (no fitting)."""
    traffic = build_traffic(
        make_config(endpoint=server.root + "/v1", requests=n, exact_lengths="off", model="m", **cfg)
    )
    return list(itertools.islice(traffic.specs, n))  # type: ignore[arg-type]


class _Words:
    name = "words"

    def count(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


# -- the template probe and the prefix cache -------------------------------------------------


def _contents(body: dict[str, object]) -> list[str]:
    return [str(m["content"]) for m in body.get("messages") or []]  # type: ignore[index]


@pytest.mark.parametrize("system_prompt_tokens", [0, 40])
def test_the_template_probe_shares_no_prefix_with_any_workload_prompt(
    server: FakeServer, system_prompt_tokens: int, tmp_path: Path
) -> None:
    cfg = make_config(
        endpoint=server.root + "/v1",
        model="fake-model",
        requests=20,
        input_len="uniform:min=30,max=80",
        output_len="4",
        system_prompt_tokens=system_prompt_tokens,
        exact_lengths="auto",
        db=str(tmp_path / "x.duckdb"),
    )
    traffic = build_traffic(cfg)
    probes = [b for p, b in server.requests if p == "/v1/chat/completions"]
    assert probes, "the template offset was measured with a real request"
    workload = [
        " ".join(str(m["content"]) for m in s.messages or ())
        for s in itertools.islice(traffic.specs, cfg.load.requests)  # type: ignore[arg-type]
    ]
    for probe in probes:
        first = _contents(probe)[0]
        for prompt in workload:
            # Not even the first word in common: the cache holds nothing of request 0.
            assert prompt.split()[0] != first.split()[0]
            assert not prompt.startswith(first[:3])
    # And the offset it measured is the template's, so the prompts still fit exactly.
    offsets = traffic.description["exact_lengths"]["template_offsets"]
    assert set(offsets.values()) == {TEMPLATE_TOKENS}


def test_two_probes_do_not_share_their_text(server: FakeServer) -> None:
    specs = drawn(server, 2)
    for _ in range(2):
        measure_offsets(specs, _Words(), server.root + "/v1", "m", {}, 2.0, 5.0)
    probes = [_contents(b)[0] for p, b in server.requests if p == "/v1/chat/completions"]
    assert len(probes) == 2 and probes[0].split()[0] != probes[1].split()[0]


def test_fitting_with_a_measured_offset_hits_the_server_count(server: FakeServer) -> None:
    counter = make_counter("server", server.root + "/v1", "m", {}, None, timeout_s=2.0)
    specs = drawn(server, 4, input_len="uniform:min=20,max=40")
    offsets = measure_offsets(specs, counter, server.root + "/v1", "m", {}, 2.0, 5.0)
    fitted = LengthFitter(counter, offsets=offsets).fit(specs)
    for s in fitted:
        words = sum(len(str(m["content"]).split()) for m in s.messages or ())
        assert words + TEMPLATE_TOKENS == s.input_tokens_expected


# -- through the run's own path (RunConfig -> build_traffic) --------------------------------


@pytest.mark.parametrize("behaviour", [Behaviour.stall, Behaviour.trickle])
def test_a_stalling_tokenize_does_not_hold_the_run_before_it_starts(
    server: FakeServer, behaviour: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.behaviour["/tokenize"] = behaviour
    cfg = make_config(
        endpoint=server.root + "/v1",
        requests=4,
        input_len="20",
        output_len="4",
        timeout_s=0.5,
        request_timeout_s=1.0,
        db=str(tmp_path / "x.duckdb"),
    )
    traffic = within(8, lambda: build_traffic(cfg))
    assert "approximate" in traffic.description["exact_lengths"]["method"]  # type: ignore[attr-defined]
    with pytest.raises(BenchError, match="/tokenize does not answer"):
        within(8, lambda: build_traffic(cfg.replace(exact_lengths="server")))


def test_request_timeout_is_a_run_flag_with_a_generous_default() -> None:
    from typer.testing import CliRunner

    from benchbench.cli import app

    cfg = make_config()
    assert cfg.target.request_timeout_s == 1800.0 and cfg.target.timeout_s == 300.0
    assert make_config(request_timeout_s=2.5).target.request_timeout_s == 2.5
    for bad in (0, -1):
        with pytest.raises(BenchError, match="--request-timeout"):
            make_config(request_timeout_s=bad)
    help_text = " ".join(
        CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output.split()
    )
    assert "--request-timeout" in help_text and "from send to the end of its stream" in help_text
