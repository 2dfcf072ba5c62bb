"""Presets: the seven named tables, each reproducing its own quantile table when sampled."""

import numpy as np
import pytest

from loadgen.lengths import QuantileTable
from loadgen.presets import PRESETS, QUANTILES_PCT, get_preset

NAMES = [
    "azure-conv",
    "azure-code",
    "longctx-chat",
    "sharegpt",
    "multiturn-8k",
    "summarize-4k",
    "reasoning",
]


def ks_distance(samples: np.ndarray, table: QuantileTable) -> float:
    """Max |ECDF - CDF| over the integers, where both step functions jump."""
    grid = np.arange(0, int(max(table.tokens)) + 2)
    ecdf = np.searchsorted(np.sort(samples), grid, side="right") / samples.size
    return float(np.max(np.abs(ecdf - table.cdf(grid))))


def test_the_seven_presets_exist_with_sources():
    assert sorted(PRESETS) == sorted(NAMES)
    for preset in PRESETS.values():
        assert preset.source and preset.description
        assert preset.input.quantiles_pct == QUANTILES_PCT
        assert preset.output.quantiles_pct == QUANTILES_PCT
        assert len(preset.input.tokens) == len(preset.output.tokens) == 16


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", ["input", "output"])
def test_10000_samples_are_within_ks_005_of_the_table(name, side):
    table = getattr(PRESETS[name], side)
    samples = table.sample(np.random.default_rng(1), 10_000)
    assert samples.dtype == np.int64 and samples.min() >= 1
    assert samples.max() <= max(table.tokens)
    assert ks_distance(samples, table) < 0.05


def test_a_wrong_table_is_detected_by_the_same_ks_check():
    conv, code = PRESETS["azure-conv"], PRESETS["azure-code"]
    samples = conv.output.sample(np.random.default_rng(1), 10_000)
    assert ks_distance(samples, code.output) > 0.5


def test_published_medians_come_out_of_the_tables():
    assert PRESETS["azure-conv"].input.quantile(50) == 1020
    assert PRESETS["azure-conv"].output.quantile(50) == 129
    assert PRESETS["azure-code"].output.quantile(50) == 13
    assert PRESETS["sharegpt"].input.quantile(99) == 919
    assert PRESETS["reasoning"].output.quantile(90) == 5423


def test_get_preset_names_the_valid_ones_on_a_typo():
    assert get_preset("Azure-Code").name == "azure-code"
    with pytest.raises(ValueError, match="valid presets: azure-conv, azure-code"):
        get_preset("azure-cod")
