"""Prompt text: exact word counts, and block text that is a pure function of its id. (How
fast prompts are made: benchmarks/prompt_synthesis.py.)"""

import numpy as np
import pytest

from loadgen.prompts import WORDS, block_text, prefix_blocks_text, synth_text


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("n", [1, 2, 17, 2000, 130_000])
def test_synth_text_has_exactly_n_words_separated_by_single_spaces(n):
    text = synth_text(n, np.random.default_rng(0))
    assert len(words(text)) == n and text == " ".join(words(text))


def test_word_list_is_plain_lowercase_words_without_punctuation():
    assert len(set(WORDS)) == len(WORDS) >= 300
    assert all(w.isalpha() and w.islower() and w.isascii() for w in WORDS)


def test_synth_text_is_seeded_and_random_prompts_share_no_prefix():
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert synth_text(50, rng_a) == synth_text(50, rng_b)
    rng = np.random.default_rng(2)
    heads = {tuple(words(synth_text(64, rng))[:4]) for _ in range(2000)}
    assert len(heads) == 2000  # no two prompts begin with the same 4 words


def test_synth_text_rejects_empty_prompts():
    with pytest.raises(ValueError, match="at least 1 token"):
        synth_text(0, np.random.default_rng(0))


def test_block_text_is_deterministic_per_id_and_differs_between_ids():
    assert block_text(42, 16) == block_text(42, 16)
    assert len(words(block_text(42, 512))) == 512
    texts = {block_text(i, 16) for i in range(5000)}
    assert len(texts) == 5000
    assert block_text(42, 16, salt=1) != block_text(42, 16)
    assert block_text(-1, 8) != block_text(1, 8)  # negative ids are fine too


def test_prefix_blocks_text_concatenates_blocks_and_truncates_the_last():
    text = prefix_blocks_text([7, 8, 9], 16, 40)
    assert (
        words(text)
        == words(block_text(7, 16)) + words(block_text(8, 16)) + words(block_text(9, 16))[:8]
    )
    assert len(words(prefix_blocks_text([7, 8, 9], 16, 48))) == 48


def test_equal_leading_hash_ids_give_an_identical_text_prefix():
    a = words(prefix_blocks_text([1, 2, 3, 4], 512, 2000))
    b = words(prefix_blocks_text([1, 2, 5, 6], 512, 1900))
    assert a[:1024] == b[:1024] and a[1024:1100] != b[1024:1100]


def test_too_few_hash_ids_are_padded_deterministically():
    text = prefix_blocks_text([3], 16, 50)
    assert len(words(text)) == 50 and text == prefix_blocks_text([3], 16, 50)
    assert words(text)[:16] == words(block_text(3, 16))
    assert words(prefix_blocks_text([], 16, 20)) == words(prefix_blocks_text([], 16, 20))
    assert words(text)[16:32] != words(prefix_blocks_text([4], 16, 50))[16:32]


def test_a_salt_is_a_few_prompt_words_and_new_every_time():
    from loadgen.prompts import SALT_WORDS, new_salt

    salts = [new_salt() for _ in range(200)]
    assert all(len(s.split()) == SALT_WORDS and set(s.split()) <= set(WORDS) for s in salts)
    assert len(set(salts)) == len(salts)  # ~2.6e10 salts: 200 draws never repeat in practice
    assert len(new_salt(2).split()) == 2
    with pytest.raises(ValueError, match="at least 1 word"):
        new_salt(0)
