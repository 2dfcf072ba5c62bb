"""The synthetic workload: lazy, seeded RequestSpecs of the sampled lengths."""

import itertools

import numpy as np
import pytest

from loadgen.arrivals import Poisson, first_offsets_ns
from loadgen.fingerprint import fingerprint
from loadgen.lengths import Fixed, LogNormal, Uniform
from loadgen.presets import PRESETS
from loadgen.workload import SyntheticWorkload

STORED_FINGERPRINT = "2f0923a1afe83bd43ebc2704cdc79e9cd8d8dae4986dab7d85b7d83287c71a5d"


def take(workload: SyntheticWorkload, n: int) -> list:
    return list(itertools.islice(workload.specs(), n))


def test_chat_specs_carry_a_user_message_of_the_sampled_length_and_forced_output():
    specs = take(SyntheticWorkload(Uniform(10, 200), Uniform(5, 50), seed=3), 2000)
    assert [s.index for s in specs] == list(range(2000))
    for s in specs:
        assert s.prompt is None and len(s.messages) == 1 and s.messages[0]["role"] == "user"
        assert len(s.messages[0]["content"].split()) == s.input_tokens_expected
        assert 10 <= s.input_tokens_expected <= 200
        assert s.max_tokens == s.output_tokens_expected and 5 <= s.max_tokens <= 50
        assert s.extra_body == {"ignore_eos": True, "min_tokens": s.max_tokens}


def test_completions_specs_carry_a_prompt():
    (spec,) = take(SyntheticWorkload(Fixed(64), Fixed(8), api="completions"), 1)
    assert spec.messages is None and len(spec.prompt.split()) == 64


def test_shared_system_prompt_is_identical_and_counted_in_the_input_length():
    specs = take(SyntheticWorkload(Fixed(300), Fixed(8), system_prompt_tokens=100), 3)
    systems = {s.messages[0]["content"] for s in specs}
    assert len(systems) == 1 and len(systems.pop().split()) == 100
    assert all(len(s.messages[1]["content"].split()) == 200 for s in specs)
    assert all(s.input_tokens_expected == 300 for s in specs)
    (completion,) = take(
        SyntheticWorkload(Fixed(300), Fixed(8), api="completions", system_prompt_tokens=100), 1
    )
    assert completion.prompt.split()[:100] == specs[0].messages[0]["content"].split()


def test_without_ignore_eos_no_extra_fields_and_model_rides_in_extra_body():
    (spec,) = take(SyntheticWorkload(Fixed(4), Fixed(4), ignore_eos=False), 1)
    assert spec.extra_body is None
    (spec,) = take(SyntheticWorkload(Fixed(4), Fixed(4), ignore_eos=False, model="m"), 1)
    assert spec.extra_body == {"model": "m"}


def test_same_seed_same_specs_other_seed_other_specs():
    def make(seed: int) -> list:
        return take(SyntheticWorkload(LogNormal(6, 1), LogNormal(4, 1), seed=seed), 300)

    assert make(1) == make(1) and make(1) != make(2)


def test_changing_the_output_distribution_leaves_the_prompts_alone():
    a = take(SyntheticWorkload(LogNormal(6, 1), Fixed(10), seed=9), 200)
    b = take(SyntheticWorkload(LogNormal(6, 1), Uniform(1, 999), seed=9), 200)
    assert [s.messages for s in a] == [s.messages for s in b]
    c = take(SyntheticWorkload(Fixed(5), Uniform(1, 999), seed=9), 200)
    assert [s.max_tokens for s in b] == [s.max_tokens for s in c]


def test_specs_are_lazy_and_endless():
    workload = SyntheticWorkload(Fixed(3), Fixed(3))
    assert next(itertools.islice(workload.specs(), 5000, None)).index == 5000


def test_from_preset_uses_the_tables_and_the_traces_api():
    workload = SyntheticWorkload.from_preset("azure-code", seed=4)
    assert workload.api == "completions" and workload.input_len == PRESETS["azure-code"].input
    assert SyntheticWorkload.from_preset("azure-code", api="chat").api == "chat"
    lengths = np.array([s.output_tokens_expected for s in take(workload, 3000)])
    assert abs(np.median(lengths) - 13) <= 1
    with pytest.raises(ValueError, match="valid presets"):
        SyntheticWorkload.from_preset("nope")


def test_bad_arguments_say_what_to_fix():
    with pytest.raises(ValueError, match="api must be"):
        SyntheticWorkload(Fixed(1), Fixed(1), api="embeddings")
    with pytest.raises(ValueError, match="system prompt"):
        SyntheticWorkload(Fixed(1), Fixed(1), system_prompt_tokens=-1)


def test_stored_fingerprint_of_seed_0_schedule():
    # If this changes, the same seed no longer sends the same traffic: a deliberate change
    # must update the digest (and say so in the changelog).
    workload = SyntheticWorkload.from_preset("azure-conv", seed=0)
    specs = take(workload, 200)
    offsets = first_offsets_ns(Poisson(5.0), 0, 200)
    assert fingerprint(specs, offsets) == STORED_FINGERPRINT


# The run's salt: new every run, at the very start of every prompt, counted in its length.

SALT = "river moon stone ship"


def _salted(workload: SyntheticWorkload, n: int, salt: str = SALT) -> list:
    from loadgen.workload import salt_specs

    return list(salt_specs(itertools.islice(workload.specs(), n), salt))


def _text(spec) -> str:
    return spec.prompt if spec.prompt is not None else " ".join(m["content"] for m in spec.messages)


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("system", [0, 30])
def test_salted_prompts_start_with_the_salt_and_keep_their_length(api, system):
    wl = SyntheticWorkload(Uniform(40, 120), Fixed(8), api=api, seed=5, system_prompt_tokens=system)
    plain, salted = take(wl, 200), _salted(wl, 200)
    for p, s in zip(plain, salted, strict=True):
        assert _text(s).startswith(SALT + " ")
        assert s.salt_words == 4
        assert len(_text(s).split()) == len(_text(p).split()) == s.input_tokens_expected
        # Everything else is the workload's own: the same lengths and fields.
        assert (s.max_tokens, s.extra_body, s.index) == (p.max_tokens, p.extra_body, p.index)
        assert _text(s).split()[4:] == _text(p).split()[:-4]


def test_salt_keeps_a_shared_system_prompt_shared_within_the_run():
    wl = SyntheticWorkload(Fixed(100), Fixed(8), seed=5, system_prompt_tokens=40)
    salted = _salted(wl, 50)
    systems = {s.messages[0]["content"] for s in salted}
    assert len(systems) == 1 and systems.pop().startswith(SALT + " ")
    # Another run (another salt) shares not even the first word with this one.
    other = _salted(wl, 50, "plane tree bird fire")
    assert all(
        a.messages[0]["content"][:5] != b.messages[0]["content"][:5]
        for a, b in zip(salted, other, strict=True)
    )


def test_a_prompt_too_short_for_the_whole_salt_carries_its_start_and_one_word_of_its_own():
    from loadgen.spec import RequestSpec
    from loadgen.workload import salt_spec

    for n in (1, 2, 3, 4, 5, 9):
        spec = RequestSpec(index=0, prompt=" ".join(["word"] * n), input_tokens_expected=n)
        salted = salt_spec(spec, SALT)
        k = min(4, n - 1)
        assert salted.prompt.split() == SALT.split()[:k] + ["word"] * (n - k)
        assert salted.salt_words == k


def test_a_prompt_without_a_target_length_is_sent_whole_after_the_salt():
    from loadgen.spec import RequestSpec
    from loadgen.workload import salt_spec

    history = (
        {"role": "user", "content": "Hi there."},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "What now?"},
    )
    salted = salt_spec(RequestSpec(index=0, messages=history), SALT)
    assert [m["content"] for m in salted.messages] == [f"{SALT} Hi there.", "Hello", "What now?"]
    assert salt_spec(RequestSpec(index=0, prompt=""), SALT).prompt == SALT
    # Content that is not plain text (image parts) is left as it is.
    parts = ({"role": "user", "content": [{"type": "text", "text": "x"}]},)
    assert salt_spec(RequestSpec(index=0, messages=parts), SALT).messages == parts


def test_no_salt_leaves_the_stream_byte_identical():
    from loadgen.workload import salt_specs

    wl = SyntheticWorkload(Uniform(5, 50), Fixed(8), seed=2)
    assert list(salt_specs(itertools.islice(wl.specs(), 30), "")) == take(wl, 30)


def test_salted_trace_replay_keeps_the_traces_shared_prefixes():
    from loadgen.prefix import ideal_prefix_hit_ratio_texts
    from loadgen.replay import ReplayOptions, plan_replay
    from loadgen.traces import TraceRecord
    from loadgen.workload import salt_specs

    recs = [
        TraceRecord(
            t_arrival_s=i * 0.1,
            input_tokens=64,
            output_tokens=4,
            hash_ids=(1, 2, 3 + i % 2),
            block_size=16,
        )
        for i in range(20)
    ]
    plain, _ = plan_replay(recs, ReplayOptions(), api="completions", seed=1)
    salted = list(salt_specs(iter(plain), SALT))
    ratio = lambda specs: ideal_prefix_hit_ratio_texts((s.prompt for s in specs), 16)  # noqa: E731
    assert ratio(salted) == pytest.approx(ratio(plain), abs=0.02)
    assert all(len(s.prompt.split()) == 64 for s in salted)
