"""Exact prompt lengths: prompts are fitted to their target token count with the server's
own /tokenize (the simulator's here), a local tokenizer.json, or a fake counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchbench.config import make_config
from benchbench.exact import LengthFitter
from benchbench.exact_probe import measure_offsets
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimProcess
from benchbench.token_counters import HFTokenizerCounter, ServerTokenizeCounter, make_counter
from benchbench.traffic import build_traffic
from loadgen.spec import RequestSpec


class TheIsTwo:
    """A tokenizer where 'the' is two tokens: word counts are off, fitting must fix them."""

    name = "fake"

    def count(self, texts):
        return [sum(2 if w == "the" else 1 for w in t.split()) for t in texts]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    with SimProcess(SimConfig(fast=True)) as s:
        yield s


def _chat(index: int, words: int, target: int, system: str | None = None) -> RequestSpec:
    user = {"role": "user", "content": " ".join(["the", "river"] * (words // 2))}
    messages = ({"role": "system", "content": system}, user) if system else (user,)
    return RequestSpec(index=index, messages=messages, input_tokens_expected=target)


def test_fitting_adds_and_removes_words_until_the_count_is_exact() -> None:
    fitter = LengthFitter(TheIsTwo(), seed=1)
    specs = [_chat(0, 40, 30), _chat(1, 10, 50), _chat(2, 20, 20, system="the sun the sea")]
    fitted = fitter.fit(specs)
    counts = [sum(TheIsTwo().count([m["content"] for m in s.messages])) for s in fitted]
    assert counts == [30, 50, 20]
    assert fitter.stats["fitted"] == 3 and fitter.stats["unfit"] == 0
    assert fitted[2].messages[0]["content"] == "the sun the sea"  # only the last part changes


class LongWords:
    """Like a BPE vocabulary trained elsewhere: dictionary words cost 2-3 tokens, a one-letter
    word one. Adding or removing whole words alone would step over most targets."""

    name = "fake"

    def count(self, texts):
        return [sum(1 if len(w) == 1 else 2 + len(w) % 2 for w in t.split()) for t in texts]


def test_fitting_converges_when_words_are_several_tokens() -> None:
    fitter = LengthFitter(LongWords(), seed=3)
    targets = [7, 31, 64, 101, 250, 499]
    specs = [_chat(i, 30, t) for i, t in enumerate(targets)]
    fitted = fitter.fit(specs)
    counts = [LongWords().count([s.messages[-1]["content"]])[0] for s in fitted]
    assert counts == targets
    assert fitter.stats["unfit"] == 0


def test_template_offsets_are_taken_off_the_content() -> None:
    fitter = LengthFitter(TheIsTwo(), offsets={("user",): 7})
    (spec,) = fitter.fit([_chat(0, 10, 40)])
    assert TheIsTwo().count([spec.messages[0]["content"]]) == [33]


def test_later_requests_get_the_learned_correction_without_io() -> None:
    fitter = LengthFitter(TheIsTwo(), offsets={("user",): 3})
    fitted = fitter.fit([_chat(i, 20, 20) for i in range(5)])
    later = fitter.apply_learned(_chat(9, 20, 20))
    words = len(fitted[0].messages[0]["content"].split())
    assert words < 20  # 20 words were 30 tokens: words were removed
    assert len(later.messages[0]["content"].split()) == words


def test_server_tokenize_counts_as_the_simulator_does(sim: SimProcess) -> None:
    counter = ServerTokenizeCounter(sim.base_url.removesuffix("/v1"), "sim-llm")
    assert counter.probe()
    assert counter.count(["a b c", "one", "x " * 50]) == [3, 1, 50]
    counter.close()


def test_fitting_through_the_simulator_hits_targets_and_offsets_are_zero(
    sim: SimProcess,
) -> None:
    counter = make_counter("server", sim.base_url, "sim-llm", {}, None)
    assert counter is not None and counter.name.startswith("server:")
    specs = [_chat(0, 40, 25), _chat(1, 6, 31, system="be brief")]
    offsets = measure_offsets(specs, counter, sim.base_url, "sim-llm", {})
    assert offsets == {("user",): 0, ("system", "user"): 0}
    fitted = LengthFitter(counter, offsets=offsets).fit(specs)
    assert [sum(counter.count([m["content"] for m in s.messages])) for s in fitted] == [25, 31]


def test_a_run_with_server_exact_lengths_has_no_input_mismatch(
    sim: SimProcess, tmp_path: Path
) -> None:
    cfg = make_config(
        endpoint=sim.base_url,
        db=str(tmp_path / "x.duckdb"),
        requests=8,
        concurrency=4,
        input_len="uniform:min=20,max=60",
        output_len="4",
        system_prompt_tokens=8,
        exact_lengths="server",
    )
    desc = build_traffic(cfg).description
    assert desc["exact_lengths"]["method"].startswith("server:")
    result = run_benchmark(cfg)
    truth = result.summary.token_truth
    assert truth["requests"] == 8 and truth["input_mismatch"] == 0


def test_server_method_without_tokenize_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="/tokenize does not answer"):
        make_counter("server", "http://127.0.0.1:9/v1", "m", {}, None)


def test_a_local_tokenizer_json_counts_tokens(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1, "river": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = make_counter("tokenizer", None, None, None, str(path))
    assert isinstance(counter, HFTokenizerCounter)
    assert counter.count(["the river", "the, river"]) == [2, 3]  # punctuation is a token
    with pytest.raises(ValueError, match="needs --tokenizer"):
        make_counter("tokenizer", None, None, None, None)


@pytest.mark.parametrize("system", [None, "the sun the sea"])
def test_a_salted_prompt_is_fitted_with_its_salt_counted(system: str | None) -> None:
    from loadgen.workload import salt_spec

    salt = "the moon the river"  # 6 tokens for this counter, 4 words
    specs = [salt_spec(_chat(i, 30, 20 + i, system=system), salt) for i in range(5)]
    fitted = LengthFitter(TheIsTwo(), seed=1).fit(specs)
    for target, s in zip(range(20, 25), fitted, strict=True):
        assert s.messages[0]["content"].startswith(salt + " ")  # the fit left the salt alone
        assert sum(TheIsTwo().count([m["content"] for m in s.messages])) == target
        assert s.salt_words == 4


def test_a_salted_run_through_the_servers_tokenizer_has_no_input_mismatch(
    sim: SimProcess, tmp_path: Path
) -> None:
    cfg = make_config(
        endpoint=sim.base_url,
        db=str(tmp_path / "x.duckdb"),
        requests=8,
        concurrency=4,
        input_len="uniform:min=3,max=40",
        output_len="4",
        exact_lengths="server",
    )
    traffic = build_traffic(cfg)
    assert traffic.description["salted"] is True
    result = run_benchmark(cfg)
    truth = result.summary.token_truth
    assert truth["requests"] == 8 and truth["input_mismatch"] == 0
