"""Prompt datasets: ShareGPT JSON, JSONL, plain text, and the spec stream built from them."""

import itertools
import json

import pytest

from loadgen.datasets import DatasetItem, dataset_specs, load_dataset
from loadgen.lengths import parse_length

SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "human", "value": "What is a GPU?"},
            {"from": "gpt", "value": "A graphics processor that also does matrix maths."},
            {"from": "human", "value": "And a TPU?"},
            {"from": "gpt", "value": "Google's accelerator."},
        ],
    },
    {
        "id": "b",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
        ],
    },
    {"id": "c", "conversations": [{"from": "robot", "value": "beep"}]},  # unknown speaker
]


@pytest.fixture
def sharegpt(tmp_path):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(SHAREGPT))
    return path


def test_sharegpt_first_turn_takes_output_length_from_the_reply(sharegpt):
    items = load_dataset(sharegpt)
    assert items == [
        DatasetItem("What is a GPU?", None, 8),
        DatasetItem(
            None,
            ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}),
            None,
        ),
    ]


def test_sharegpt_all_turns_become_chat_histories(sharegpt):
    items = load_dataset(sharegpt, turns="all")
    assert len(items) == 3
    second = items[1]
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    assert second.messages[-1]["content"] == "And a TPU?"
    assert second.max_tokens == 2


def test_jsonl_with_prompt_or_messages(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "Tell me a story", "max_tokens": 64}\n'
        "\n"
        '{"messages": [{"role": "user", "content": "Hello"}]}\n'
    )
    assert load_dataset(path) == [
        DatasetItem("Tell me a story", None, 64),
        DatasetItem(None, ({"role": "user", "content": "Hello"},), None),
    ]


def test_text_file_one_prompt_per_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"first prompt\r\n\r\nsecond prompt")
    assert [i.prompt for i in load_dataset(path)] == ["first prompt", "second prompt"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "x"}\n{"prompt": 3}\n', r"d\.jsonl:2: expected \"prompt\""),
        ('{"prompt": "x", "max_tokens": 0}\n', r"d\.jsonl:1: expected max_tokens >= 1"),
        ('{"messages": [{"role": "user"}]}\n', r"d\.jsonl:1: expected messages like"),
        ('[{"nope": 1}]', r"d\.jsonl:item 0: expected an object with a \"conversations\""),
        ("[1, 2", r"d\.jsonl:1: expected a ShareGPT JSON array"),
        ("\n\n", r"no prompts found"),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as info:
        load_dataset(path)
    assert "\n" not in str(info.value)


def test_specs_cycle_deterministically_and_fill_missing_lengths():
    items = [DatasetItem("a b c", None, 7), DatasetItem("d e", None, None)]
    dist = parse_length("uniform:min=10,max=20")
    first = list(
        itertools.islice(dataset_specs(items, api="completions", output_len=dist, seed=5), 6)
    )
    again = list(
        itertools.islice(dataset_specs(items, api="completions", output_len=dist, seed=5), 6)
    )
    assert first == again
    assert [s.index for s in first] == list(range(6))
    assert [s.prompt for s in first] == ["a b c", "d e"] * 3
    assert [s.max_tokens for s in first[0::2]] == [7, 7, 7]
    assert all(10 <= s.max_tokens <= 20 for s in first[1::2])
    assert first[1].extra_body == {"ignore_eos": True, "min_tokens": first[1].max_tokens}


def test_specs_shape_prompts_for_the_api():
    items = [
        DatasetItem("plain", None, 3),
        DatasetItem(
            None, ({"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}), 3
        ),
    ]
    chat = list(itertools.islice(dataset_specs(items, api="chat", output_len=None, seed=0), 2))
    assert chat[0].messages == ({"role": "user", "content": "plain"},) and chat[0].prompt is None
    assert chat[1].messages == items[1].messages
    comp = list(
        itertools.islice(
            dataset_specs(items, api="completions", output_len=None, seed=0, ignore_eos=False), 2
        )
    )
    assert comp[1].prompt == "q1\n\na1" and comp[1].extra_body is None


def test_specs_need_an_output_length_when_the_file_gives_none():
    with pytest.raises(ValueError, match="set an output length"):
        dataset_specs([DatasetItem("x", None, None)], api="chat", output_len=None, seed=0)
