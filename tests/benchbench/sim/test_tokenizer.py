"""The documented tokenizer: one token per whitespace-separated word."""

import random

from benchbench.sim import VOCABULARY, count_message_tokens, count_tokens, token_ids
from benchbench.sim.tokenizer import output_length


def test_one_token_per_word_whatever_the_whitespace() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello") == 1
    assert count_tokens("  a  b\tc\nd ") == 4


def test_chat_prompt_is_the_sum_over_messages() -> None:
    assert count_message_tokens(["a b", "c", ""]) == 3


def test_token_ids_are_stable_per_word() -> None:
    ids = token_ids("x y x")
    assert len(ids) == 3 and ids[0] == ids[2] and ids == token_ids("x  y x")


def test_vocabulary_words_are_single_plain_words() -> None:
    assert all(w.isascii() and w.isalpha() for w in VOCABULARY)
    assert len(set(VOCABULARY)) == len(VOCABULARY)


def test_without_eos_the_output_runs_to_max_tokens() -> None:
    assert output_length(random.Random(1), 50, 0, 0.0) == (50, "length")


def test_early_stop_respects_min_tokens() -> None:
    rng = random.Random(7)
    lengths = [output_length(rng, 100, 10, 0.5)[0] for _ in range(200)]
    assert min(lengths) == 10
    assert max(lengths) < 100
