"""Cost arithmetic against hand-computed figures, and the dated price table."""

from __future__ import annotations

import pytest

from benchbench.cost import CostInputs, compute_cost
from benchbench.prices import PRICE_TABLE_DATE, match_gpu_price


def test_gpu_price_times_count_over_the_window() -> None:
    inputs = CostInputs(gpu_price_usd_per_hour=3.00, gpu_count=8, kwh_price_usd=0.15, pue=1.3)
    r = compute_cost(
        inputs,
        window_s=1800,
        output_tokens=2_000_000,
        input_tokens=6_000_000,
        requests=4000,
        energy_kwh=10.0,
    )
    assert r.source == "user"
    assert r.usd_per_hour == pytest.approx(24.0)
    assert r.usd_per_gpu_hour == pytest.approx(3.0)
    assert r.window_usd == pytest.approx(12.0)  # $24/h x 0.5 h
    assert r.usd_per_1m_output_tokens == pytest.approx(6.0)  # $12 / 2M x 1e6
    assert r.usd_per_1m_tokens == pytest.approx(1.5)  # $12 / 8M x 1e6
    assert r.usd_per_request == pytest.approx(0.003)
    # Energy: 10 kWh x 1.3 PUE x $0.15, shown apart and never added to the rental cost.
    assert r.energy_cost_usd == pytest.approx(1.95)
    assert r.energy_usd_per_1m_output_tokens == pytest.approx(0.975)
    assert any("shown separately" in n for n in r.notes)


def test_instance_price_is_for_the_whole_deployment() -> None:
    inputs = CostInputs(instance_price_usd_per_hour=98.32, gpu_count=8)
    r = compute_cost(inputs, 600, 1_200_000, 0, 100, None)
    assert r.window_usd == pytest.approx(98.32 / 6)
    assert r.usd_per_1m_output_tokens == pytest.approx(98.32 / 6 / 1.2)
    assert r.usd_per_gpu_hour == pytest.approx(12.29)
    assert r.energy_cost_usd is None and r.energy_kwh is None


def test_built_in_table_by_detected_gpu_name() -> None:
    inputs = CostInputs(gpu_name="NVIDIA H100 80GB HBM3", gpu_count=2)
    r = compute_cost(inputs, 3600, 1_000_000, 0, 10, 1.0)
    assert r.source == f"table:H100 ({PRICE_TABLE_DATE})"
    assert r.usd_per_1m_output_tokens == pytest.approx(2 * 3.50)
    assert any("indicative" in n for n in r.notes)
    off = compute_cost(
        CostInputs(gpu_name="NVIDIA H100", gpu_count=2, use_table=False), 60, 1, 0, 1, None
    )
    assert off.source is None and off.usd_per_1m_output_tokens is None


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H100 PCIe", "H100"),
        ("nvidia h200", "H200"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA B200", "B200"),
        ("NVIDIA GH200 480GB", None),  # not an H200
        ("NVIDIA L40", None),  # not an L4
        ("Tesla T4", None),
    ],
)
def test_gpu_name_matching(name: str, key: str | None) -> None:
    entry = match_gpu_price(name)
    assert (entry.key if entry else None) == key


def test_hosted_api_is_priced_per_token() -> None:
    inputs = CostInputs(input_price_usd_per_1m=0.50, output_price_usd_per_1m=1.50)
    r = compute_cost(inputs, 1200, 1_000_000, 3_000_000, 500, None)
    assert r.source == "api-token-prices"
    assert r.window_usd == pytest.approx(3.0)  # 3M x $0.50 + 1M x $1.50, per 1M
    assert r.usd_per_hour == pytest.approx(9.0)  # spend rate at the measured load
    assert r.usd_per_1m_output_tokens == pytest.approx(3.0)
    assert r.usd_per_1m_tokens == pytest.approx(0.75)
    assert r.usd_per_request == pytest.approx(0.006)


def test_no_price_known_gives_no_figures_and_says_why() -> None:
    r = compute_cost(CostInputs(), 60, 1000, 1000, 10, None)
    assert r.source is None and r.window_usd is None and r.usd_per_request is None
    assert r.notes == ("no price: give --gpu-price or --instance-price (GPU model unknown)",)
    r = compute_cost(CostInputs(gpu_name="Tesla T4", gpu_count=1), 60, 1000, 0, 1, None)
    assert "no built-in price for 'Tesla T4'" in r.notes[0]


def test_zero_tokens_leave_per_token_figures_empty() -> None:
    r = compute_cost(CostInputs(gpu_price_usd_per_hour=2.0, gpu_count=1), 3600, 0, 0, 0, None)
    assert r.window_usd == pytest.approx(2.0)
    assert r.usd_per_1m_output_tokens is None and r.usd_per_request is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpu_price_usd_per_hour": -1.0, "gpu_count": 1}, "--gpu-price must be a price >= 0"),
        ({"gpu_price_usd_per_hour": 2.0}, "also give --gpu-count"),
        ({"gpu_price_usd_per_hour": 2.0, "instance_price_usd_per_hour": 9.0}, "not both"),
        ({"instance_price_usd_per_hour": 9.0, "output_price_usd_per_1m": 1.0}, "not both"),
        ({"gpu_count": 0}, "--gpu-count must be >= 1"),
        ({"pue": 0.8}, "--pue must be between 1.0 and 3.0"),
    ],
)
def test_bad_inputs_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CostInputs(**kwargs)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window > 0 s"):
        compute_cost(CostInputs(), 0, 1, 1, 1, None)
