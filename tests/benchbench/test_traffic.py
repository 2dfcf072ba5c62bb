"""build_traffic: the same config gives the same traffic and fingerprint, trace options shape
the replay, replay prompts are built lazily yet equal the planner's, think time reaches the
runner as a session source (one-line errors for bad specs), and sessions against the
simulator keep their turns in order with the history growing and the think time respected."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.errors import BenchError
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimProcess
from benchbench.traffic import build_traffic
from loadgen.replay import ReplayOptions, plan_replay
from loadgen.sessions import SessionDriver, ThinkingUsers
from loadgen.traces import load_trace


def _cfg(**kw):
    args = dict(input_len="uniform:min=10,max=30", output_len="5", requests=20)
    args.update(kw)
    return make_config(**args)


def test_same_config_same_fingerprint_and_the_runner_still_gets_every_request() -> None:
    a, b = build_traffic(_cfg(rate=5)), build_traffic(_cfg(rate=5))
    assert a.description["fingerprint"] == b.description["fingerprint"]
    assert a.description["fingerprint_requests"] == 20
    assert [s.index for s in itertools.islice(a.specs, 3)] == [0, 1, 2]  # nothing consumed
    assert next(a.arrivals) == 0
    assert (
        build_traffic(_cfg(rate=5, seed=1)).description["fingerprint"]
        != (a.description["fingerprint"])
    )
    assert build_traffic(_cfg(rate=6)).description["fingerprint"] != a.description["fingerprint"]


def _azure(tmp_path: Path, n: int = 40, gap_s: float = 0.5) -> Path:
    path = tmp_path / "azure.csv"
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(n):
        t = i * gap_s
        rows.append(f"2023-11-16 18:{int(t // 60):02d}:{t % 60:010.7f},{100 + i},{5 + i % 3}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_trace_window_speedup_offset_and_limit_shape_the_replay(tmp_path: Path) -> None:
    trace = _azure(tmp_path)
    t = build_traffic(
        make_config(
            trace=str(trace),
            trace_start_s=5.0,
            trace_duration_s=10.0,
            speedup=2.0,
            trace_offset_s=1.0,
        )
    )
    offsets = list(t.arrivals)
    assert t.mode == "replay" and t.max_requests == len(offsets) == 20
    assert offsets[0] == 1_000_000_000 and offsets[1] - offsets[0] == 250_000_000
    assert t.description["replay_rate"] == pytest.approx(4.0)
    limited = build_traffic(make_config(trace=str(trace), requests=7))
    assert limited.max_requests == 7
    scaled = build_traffic(make_config(trace=str(trace), rate_scale=2.0))
    assert scaled.max_requests == 80


def test_trace_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no such trace file"):
        build_traffic(make_config(trace=str(tmp_path / "missing.csv")))
    with pytest.raises(BenchError, match="no requests in the chosen window"):
        build_traffic(make_config(trace=str(_azure(tmp_path)), trace_start_s=1000))
    with pytest.raises(BenchError, match="burstgpt only"):
        build_traffic(make_config(trace=str(_azure(tmp_path)), trace_model="gpt-4"))


def test_lazy_replay_prompts_equal_the_planners_and_the_ideal_hit_is_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mooncake.jsonl"
    lines = [
        json.dumps(
            {
                "timestamp": i * 100,
                "input_length": 40 + i,
                "output_length": 3,
                "hash_ids": [0, i + 1],
            }
        )
        for i in range(6)
    ]
    path.write_text("\n".join(lines) + "\n")
    t = build_traffic(make_config(trace=str(path), seed=3, salt=False))
    planned, _ = plan_replay(load_trace(path).records, ReplayOptions(seed=3), api="chat", seed=3)
    assert list(t.specs) == planned
    # Block 0 (512 tokens) is shared, but every prompt is shorter than a block: hit = capped.
    assert 0 < t.description["ideal_prefix_hit"] <= 1


def test_dataset_turns_all_gives_one_request_per_user_turn(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_text(
        '[{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", '
        '"value": "hello you"}, {"from": "human", "value": "and again"}, '
        '{"from": "gpt", "value": "ok"}]}]'
    )
    first = build_traffic(make_config(dataset=str(path), requests=4))
    every = build_traffic(make_config(dataset=str(path), requests=4, dataset_turns="all"))
    assert first.description["items"] == 1 and every.description["items"] == 2
    second = list(itertools.islice(every.specs, 2))[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]


def test_agent_preset_shares_a_long_system_prompt() -> None:
    d = build_traffic(_cfg(preset="agent", requests=30)).description
    assert 4500 < d["system_prompt_tokens"] < 5800  # ~0.6 x mean input (~8.6k)
    assert d["ideal_prefix_hit"] > 0.5
    with pytest.raises(BenchError, match="valid presets: .*agent"):
        build_traffic(_cfg(preset="nope"))


def test_open_loop_sessions_start_one_session_per_arrival() -> None:
    sessions = build_traffic(_cfg(session_turns="3", rate=5, think_time="1"))
    assert isinstance(sessions.specs, SessionDriver) and sessions.arrivals is not None
    with pytest.raises(BenchError, match="--session-turns builds synthetic sessions"):
        make_config(session_turns="3", trace="t.csv")


def test_think_time_reaches_the_runner_through_a_session_source() -> None:
    sessions = build_traffic(_cfg(session_turns="3", think_time="exp:mean=0.5"))
    assert isinstance(sessions.specs, SessionDriver) and sessions.arrivals is None
    assert sessions.description["think_time_s"] == "exp:mean=0.5"
    users = build_traffic(_cfg(concurrency=2, think_time="uniform:min=1,max=3"))
    assert isinstance(users.specs, ThinkingUsers)
    assert users.description["think_time_s"] == "uniform:min=1,max=3"
    plain = build_traffic(_cfg(concurrency=2, think_time="0"))
    assert next(plain.specs).index == 0  # no think time: the plain shared stream
    assert make_config(think_time=2).load.think_time == "2"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"think_time": "exp:mean=-1"}, "--think-time: bad think time 'exp:mean=-1' (seconds"),
        ({"think_time": "often"}, "--think-time: bad think time 'often' (not a number)"),
        ({"think_time": "1", "rate": 5}, "--think-time paces closed-loop users"),
    ],
)
def test_bad_think_time_is_one_line(kw: dict, message: str) -> None:
    with pytest.raises(BenchError) as err:
        make_config(**kw)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_think_time_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from benchbench.cli import main; main()", "run"]
        + ["--db", str(tmp_path / "t.duckdb"), "--think-time", "uniform:min=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--think-time: bad think time 'uniform:min=2' (uniform needs max=)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_sessions_against_the_simulator_keep_turn_order_and_grow_the_history(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.duckdb"
    cfg = SimConfig(prefill_base_ms=1, prefill_ms_per_token=0, decode_base_ms=2)
    with SimProcess(cfg) as sim:
        result = run_benchmark(
            make_config(
                endpoint=sim.base_url,
                db=str(db),
                session_turns="3",
                concurrency=2,
                requests=12,
                input_len="10",
                output_len="4",
                system_prompt_tokens=16,
                think_time="0.01",
            )
        )
    assert result.summary.ok == 12
    assert result.summary.extra["traffic"]["ideal_prefix_hit"] > 0.3
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT session_id, turn, sent_ns, closed_ns, input_tokens FROM requests "
        "ORDER BY session_id, turn"
    ).fetchall()
    sessions: dict[str, list[tuple]] = {}
    for sid, turn, sent, closed, n_in in rows:
        sessions.setdefault(sid, []).append((turn, sent, closed, n_in))
    assert len(sessions) == 4
    for turns in sessions.values():
        assert [t[0] for t in turns] == [0, 1, 2]
        for (_, _, closed, n_in), (_, sent, _, n_next) in zip(turns, turns[1:], strict=False):
            assert sent >= closed + 10_000_000  # turn n+1 only after turn n and the think time
            assert n_next == n_in + 4 + 10  # + the reply + the new user text
