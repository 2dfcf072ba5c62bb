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
