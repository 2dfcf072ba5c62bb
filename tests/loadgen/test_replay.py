"""Trace replay: time transforms, synthesised prompts and send drift."""

import numpy as np
import pytest

from loadgen.replay import ReplayOptions, iter_replay, plan_replay, schedule
from loadgen.traces import TraceRecord, load_trace
from tests.data.traces import AZURE_CONV, MOONCAKE_CONV


def records(times, input_tokens=8, output_tokens=4):
    return [TraceRecord(t, input_tokens, output_tokens) for t in times]


def offsets(recs, **options):
    _, offs = plan_replay(recs, ReplayOptions(**options), api="completions", seed=0)
    return offs


def iat_cv(times):
    gaps = np.diff(np.asarray(times))
    return gaps.std() / gaps.mean()


@pytest.fixture(scope="module")
def azure_conv():
    return load_trace(AZURE_CONV).records


def test_plain_replay_keeps_trace_times_in_ns():
    assert offsets(records([0.0, 0.5, 2.25])) == [0, 500_000_000, 2_250_000_000]


def test_speedup_divides_and_offset_shifts():
    recs = records([0.0, 1.0, 3.0])
    assert offsets(recs, speedup=10) == [0, 100_000_000, 300_000_000]
    assert offsets(recs, speedup=10, offset_s=2) == [2_000_000_000, 2_100_000_000, 2_300_000_000]


def test_window_selects_and_rezeroes_at_its_start():
    recs = records([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert offsets(recs, start_s=1.5, duration_s=2.5) == [500_000_000, 1_500_000_000]
    assert offsets(recs, start_s=4.0) == [0, 1_000_000_000]


def test_limit_keeps_the_earliest():
    assert offsets(records([0.0, 1.0, 2.0]), limit=2) == [0, 1_000_000_000]
    assert offsets(records([0.0, 1.0]), limit=0) == []


def test_rate_scale_half_thins_keeping_span_and_iat_shape(azure_conv):
    base = [p.t_s for p in schedule(azure_conv, ReplayOptions())]
    thin = [p.t_s for p in schedule(azure_conv, ReplayOptions(rate_scale=0.5, seed=3))]
    assert len(thin) == pytest.approx(len(base) / 2, rel=0.03)
    assert thin[-1] == pytest.approx(base[-1], rel=0.01)  # same duration, unlike speedup
    assert iat_cv(thin) == pytest.approx(iat_cv(base), rel=0.10)


def test_rate_scale_above_one_superposes_shifted_copies(azure_conv):
    base = [p.t_s for p in schedule(azure_conv, ReplayOptions())]
    for scale in (2.0, 2.5):
        planned = schedule(azure_conv, ReplayOptions(rate_scale=scale, seed=4))
        times = [p.t_s for p in planned]
        assert len(times) == pytest.approx(scale * len(base), rel=0.02)
        assert times == sorted(times)
        assert 0 <= times[0] and times[-1] < base[-1] * 1.01
        assert iat_cv(times) == pytest.approx(iat_cv(base), rel=0.10)
        assert {p.copy for p in planned} == set(range(int(np.ceil(scale))))


def test_rate_scaling_is_seeded():
    recs = records(np.arange(200) * 0.1)
    a = offsets(recs, rate_scale=0.5, seed=1)
    assert a == offsets(recs, rate_scale=0.5, seed=1)
    assert a != offsets(recs, rate_scale=0.5, seed=2)


def test_specs_carry_lengths_and_force_the_output():
    recs = [TraceRecord(0.0, 5, 0), TraceRecord(1.0, 12, 30, session_id="s", turn=2)]
    specs, _ = plan_replay(recs, ReplayOptions(), api="completions", seed=0)
    assert [len(s.prompt.split()) for s in specs] == [5, 12]
    assert [s.max_tokens for s in specs] == [1, 30]  # 0 clamped to 1
    assert specs[1].extra_body == {"ignore_eos": True, "min_tokens": 30}
    assert (specs[1].session_id, specs[1].turn, specs[1].input_tokens_expected) == ("s", 2, 12)
    assert [s.index for s in specs] == [0, 1]
    plain, _ = plan_replay(recs, ReplayOptions(), api="chat", seed=0, ignore_eos=False)
    assert plain[1].extra_body is None and plain[1].prompt is None
    assert plain[1].messages[0]["role"] == "user"
    assert len(plain[1].messages[0]["content"].split()) == 12


def test_equal_hash_ids_give_identical_prompt_prefixes():
    recs = [
        TraceRecord(0.0, 40, 1, block_size=16, hash_ids=(1, 2, 3)),
        TraceRecord(1.0, 45, 1, block_size=16, hash_ids=(1, 2, 4)),
        TraceRecord(2.0, 20, 1, block_size=16, hash_ids=(5, 6)),
    ]
    specs, _ = plan_replay(recs, ReplayOptions(), api="completions", seed=7)
    words = [s.prompt.split() for s in specs]
    assert [len(w) for w in words] == [40, 45, 20]
    assert words[0][:32] == words[1][:32]
    assert words[0][32:40] != words[1][32:40]
    assert words[2][:16] != words[0][:16]
    again, _ = plan_replay(recs, ReplayOptions(), api="completions", seed=7)
    assert [s.prompt for s in again] == [s.prompt for s in specs]


def test_superposed_copies_do_not_reuse_the_originals_prompts():
    recs = [TraceRecord(float(i), 32, 1, block_size=16, hash_ids=(i, i + 100)) for i in range(4)]
    specs, _ = plan_replay(recs, ReplayOptions(rate_scale=2, seed=0), api="completions", seed=0)
    assert len(specs) == 8
    assert len({s.prompt for s in specs}) == 8


def test_untimed_records_get_no_offsets_and_refuse_time_options():
    recs = [TraceRecord(None, 3, 2), TraceRecord(None, 4, 2)]
    specs, offs = plan_replay(recs, ReplayOptions(limit=1), api="chat", seed=0)
    assert offs is None and len(specs) == 1
    with pytest.raises(ValueError, match="no arrival times"):
        plan_replay(recs, ReplayOptions(speedup=2), api="chat", seed=0)


@pytest.mark.parametrize(
    "bad",
    [{"speedup": 0}, {"rate_scale": -1}, {"duration_s": 0}, {"offset_s": -1}, {"limit": -1}],
)
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError, match="replay"):
        ReplayOptions(**bad)


def test_lazy_replay_builds_nothing_up_front_and_equals_the_plan():
    recs = [TraceRecord(i * 0.5, 10 + i, 3) for i in range(6)]
    recs += [TraceRecord(3.0 + i, 32, 2, block_size=16, hash_ids=(i, 9)) for i in range(3)]
    options = ReplayOptions(rate_scale=1.5, seed=2)
    specs, offs, n = iter_replay(recs, options, api="completions", seed=5, ignore_eos=True)
    eager, eager_offs = plan_replay(recs, options, api="completions", seed=5)
    assert n == len(eager) and list(offs) == eager_offs
    assert list(specs) == eager
    untimed = [TraceRecord(None, 3, 2)] * 3
    specs, offs, n = iter_replay(untimed, ReplayOptions(), api="chat", seed=0, ignore_eos=False)
    assert offs is None and n == 3 and len(list(specs)) == 3


@pytest.mark.parametrize("trace", [MOONCAKE_CONV, AZURE_CONV], ids=["mooncake", "azure"])
def test_lazy_replay_of_a_whole_trace_starts_with_the_planned_specs(trace):
    """The first 500 specs of the whole trace, built lazily, equal an eager plan of the first
    500 records: hash-id prompts (Mooncake) and seeded filler text (Azure) alike."""
    recs = load_trace(trace).records
    specs, offs, n = iter_replay(recs, ReplayOptions(), api="chat", seed=3, ignore_eos=True)
    assert n == len(recs)
    head, head_offs = plan_replay(recs, ReplayOptions(limit=500), api="chat", seed=3)
    assert [next(specs) for _ in range(500)] == head
    assert [next(offs) for _ in range(500)] == head_offs
