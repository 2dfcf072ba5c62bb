"""Ideal (infinite-cache) prefix-hit ratios, against WORKLOADS.md's published figures."""

import pytest

from loadgen.prefix import ideal_prefix_hit_ratio, ideal_prefix_hit_ratio_texts
from loadgen.prompts import prefix_blocks_text
from loadgen.traces import TraceRecord, load_trace
from tests.data.traces import MOONCAKE_CONV, MOONCAKE_SYNTHETIC


def test_mooncake_conversation_trace_hits_37_4_percent():
    trace = load_trace(MOONCAKE_CONV)
    assert ideal_prefix_hit_ratio(trace.records) == pytest.approx(0.374, abs=0.001)


def test_mooncake_synthetic_trace_hits_65_1_percent():
    trace = load_trace(MOONCAKE_SYNTHETIC)
    assert ideal_prefix_hit_ratio(trace.records, 512) == pytest.approx(0.651, abs=0.001)


def test_only_the_leading_run_of_seen_blocks_counts():
    requests = [
        ((1, 2, 3), 40),  # cold: 0 hits
        ((1, 2, 9), 40),  # reuses blocks 1, 2 -> 32 tokens
        ((7, 2, 3), 40),  # block 0 unseen: nothing reused even though 2, 3 were seen
        ((1, 2, 3, 4), 50),  # 3 blocks of 16 = 48 tokens
    ]
    assert ideal_prefix_hit_ratio(requests, 16) == pytest.approx((0 + 32 + 0 + 48) / 170)


def test_hits_are_capped_at_the_input_length():
    records = [TraceRecord(0.0, 20, 1, block_size=16, hash_ids=(1, 2))] * 2
    assert ideal_prefix_hit_ratio(records) == pytest.approx(20 / 40)


def test_tuples_need_a_block_size():
    with pytest.raises(ValueError, match="block size"):
        ideal_prefix_hit_ratio([((1,), 10)])
    assert ideal_prefix_hit_ratio([]) == 0.0


def test_texts_count_full_word_blocks_only():
    system = " ".join(f"s{i}" for i in range(32))  # two full blocks of 16
    texts = [system + " a b c", system + " d e", "other words entirely"]
    # second prompt: 32 of 34 words hit; the 3-word tail and the third prompt never do
    assert ideal_prefix_hit_ratio_texts(texts, 16) == pytest.approx(32 / (35 + 34 + 3))


def test_texts_chain_blocks_so_a_moved_block_is_no_hit():
    a = " ".join(["x"] * 16 + ["y"] * 16)
    b = " ".join(["z"] * 16 + ["y"] * 16)  # same second block, different prefix
    assert ideal_prefix_hit_ratio_texts([a, b], 16) == 0.0


def test_texts_and_hash_ids_agree_on_synthesised_prompts():
    requests = [((1, 2, 3), 48), ((1, 2, 4, 5), 64), ((1, 6), 32)]
    texts = [prefix_blocks_text(h, 16, n) for h, n in requests]
    assert ideal_prefix_hit_ratio_texts(texts, 16) == pytest.approx(
        ideal_prefix_hit_ratio(requests, 16)
    )
