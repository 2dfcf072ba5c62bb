"""The generated GGUF models: llama.cpp metadata, sizes, and end-of-generation suppression."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from tests.realserver.model import (
    MODEL_SPECS,
    SPECIAL_TOKENS,
    GeneratedModel,
    ensure_model,
)


def test_tiny_model_is_about_a_million_parameters(llama_tiny_model: GeneratedModel):
    assert 1_000_000 < llama_tiny_model.param_count < 1_500_000
    assert llama_tiny_model.file_size_bytes > 4 * llama_tiny_model.param_count  # F32


def test_gguf_declares_a_gpt2_byte_level_tokenizer(llama_tiny_model: GeneratedModel):
    reader = gguf.GGUFReader(llama_tiny_model.gguf_path)
    fields = {name: reader.fields[name].contents() for name in reader.fields}
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.add_bos_token"] is False
    tokenizer = Tokenizer.from_file(str(llama_tiny_model.tokenizer_path))
    assert len(fields["tokenizer.ggml.tokens"]) == tokenizer.get_vocab_size()
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.token_to_id("<|endoftext|>")


def test_special_tokens_can_never_win_the_output_layer(llama_tiny_model: GeneratedModel):
    reader = gguf.GGUFReader(llama_tiny_model.gguf_path)
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    tokenizer = Tokenizer.from_file(str(llama_tiny_model.tokenizer_path))
    special = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
    output = tensors["output.weight"]
    assert (output[special, 0] < -1000).all()
    assert (output[:, 0][np.setdiff1d(np.arange(len(output)), special)] == 0).all()
    # Dimension 0 of the residual stream stays the positive constant from the embedding.
    assert (tensors["token_embd.weight"][:, 0] > 0).all()
    assert not tensors["blk.0.attn_output.weight"][0].any()
    assert not tensors["blk.0.ffn_down.weight"][0].any()


def test_models_are_cached_by_size_and_seed(llama_tiny_model: GeneratedModel):
    again = ensure_model("tiny", seed=0)
    assert again.gguf_path == llama_tiny_model.gguf_path
    assert again.param_count == llama_tiny_model.param_count


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        ensure_model("huge")


def test_small_spec_is_over_a_hundred_million_parameters():
    spec = MODEL_SPECS["small"]
    per_layer = 4 * spec.dim**2 + 3 * spec.dim * spec.ffn
    assert 2 * spec.vocab * spec.dim + spec.layers * per_layer > 100_000_000
