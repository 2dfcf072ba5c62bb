"""SimConfig: validated knobs and the step-time formulas of the timing model."""

import pytest

from benchbench.sim import SimConfig, SimConfigError


def test_defaults_are_a_small_gpu_model() -> None:
    cfg = SimConfig()
    assert cfg.model == "sim-llm"
    assert cfg.max_batch == 64
    assert cfg.prefill_ns(1000) == 25_000_000  # 5 ms + 1000 * 0.02 ms
    assert cfg.decode_ns(64) == 14_400_000  # 8 ms + 64 * 0.1 ms


def test_fast_mode_makes_every_step_free() -> None:
    cfg = SimConfig(fast=True)
    assert cfg.prefill_ns(10_000) == 0
    assert cfg.decode_ns(1000) == 0


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_batch", 0, "max_batch must be >= 1"),
        ("eos_prob", 1.5, "eos_prob must be in [0, 1]"),
        ("error_rate", -0.1, "error_rate must be in [0, 1]"),
        ("error_status", 200, "error_status must be an HTTP error status"),
        ("tokens_per_chunk", 0, "tokens_per_chunk must be >= 1"),
        ("decode_base_ms", -1.0, "decode_base_ms must be >= 0"),
        ("model", "", "model must be a non-empty string"),
        ("api_key", "", "api_key must be non-empty"),
    ],
)
def test_bad_values_raise_one_line_that_names_the_field(field: str, value: object, words: str):
    with pytest.raises(SimConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SimConfig().seed = 3  # type: ignore[misc]
