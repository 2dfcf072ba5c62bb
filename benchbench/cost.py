"""Dollars per token from a price and a measured window.

    $ per 1M output tokens = (instance $/h x window hours) / output tokens x 1e6

The price is the user's (--gpu-price per GPU x --gpu-count, or --instance-price for the whole
deployment), else the dated built-in table by detected GPU name, or per-token API prices
(--input-price/--output-price per 1M tokens) for hosted endpoints. Energy cost
(kWh x PUE x $/kWh) is reported separately and never added to a rental price, which already
includes power.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbench.prices import PRICE_TABLE_DATE, match_gpu_price

__all__ = ["CostInputs", "CostResult", "compute_cost"]


@dataclass(frozen=True, slots=True)
class CostInputs:
    gpu_price_usd_per_hour: float | None = None  # per GPU (--gpu-price)
    instance_price_usd_per_hour: float | None = None  # whole deployment (--instance-price)
    gpu_count: int | None = None  # --gpu-count, else the detected count
    gpu_name: str | None = None  # detected, for the built-in table
    use_table: bool = True
    input_price_usd_per_1m: float | None = None  # hosted API (--input-price)
    output_price_usd_per_1m: float | None = None  # hosted API (--output-price)
    kwh_price_usd: float | None = None  # --kwh-price
    pue: float = 1.0  # --pue: facility energy / IT energy

    def __post_init__(self) -> None:
        for flag, value in (
            ("--gpu-price", self.gpu_price_usd_per_hour),
            ("--instance-price", self.instance_price_usd_per_hour),
            ("--input-price", self.input_price_usd_per_1m),
            ("--output-price", self.output_price_usd_per_1m),
            ("--kwh-price", self.kwh_price_usd),
        ):
            if value is not None and not value >= 0:
                raise ValueError(f"{flag} must be a price >= 0, got {value}")
        if self.gpu_count is not None and self.gpu_count < 1:
            raise ValueError(f"--gpu-count must be >= 1, got {self.gpu_count}")
        if not 1.0 <= self.pue <= 3.0:
            raise ValueError(f"--pue must be between 1.0 and 3.0 (typical 1.1-1.6), got {self.pue}")
        if self.gpu_price_usd_per_hour is not None and self.instance_price_usd_per_hour is not None:
            raise ValueError("give --gpu-price or --instance-price, not both")
        api = self.input_price_usd_per_1m is not None or self.output_price_usd_per_1m is not None
        rental = (
            self.gpu_price_usd_per_hour is not None or self.instance_price_usd_per_hour is not None
        )
        if api and rental:
            raise ValueError(
                "give per-token API prices (--input-price/--output-price) or a rental price "
                "(--gpu-price/--instance-price), not both"
            )
        if self.gpu_price_usd_per_hour is not None and self.gpu_count is None:
            raise ValueError("--gpu-price is per GPU: also give --gpu-count (no GPUs detected)")


@dataclass(frozen=True, slots=True)
class CostResult:
    """Cost of the measured window. Token/request figures are None when their count is zero;
    every price figure is None when no price was known (source None)."""

    source: str | None  # "user", "table:H100 (2026-Q3)", "api-token-prices", or None
    usd_per_hour: float | None  # rental price, or an API's spend rate at the measured load
    usd_per_gpu_hour: float | None
    window_usd: float | None  # what the window cost
    usd_per_1m_output_tokens: float | None
    usd_per_1m_tokens: float | None  # input + output
    usd_per_request: float | None
    energy_kwh: float | None  # measured GPU energy (IT load, before PUE)
    energy_cost_usd: float | None  # kWh x PUE x $/kWh; separate, never added to rental cost
    energy_usd_per_1m_output_tokens: float | None
    notes: tuple[str, ...]


def _per(amount: float | None, count: int, scale: float = 1.0) -> float | None:
    if amount is None or count <= 0:
        return None
    return amount / count * scale


def _rental_price(inputs: CostInputs, notes: list[str]) -> tuple[float, float | None, str] | None:
    """(instance $/h, $/GPU-h, source) for a rented deployment, or None."""
    if inputs.instance_price_usd_per_hour is not None:
        per_gpu = _per(inputs.instance_price_usd_per_hour, inputs.gpu_count or 0)
        return inputs.instance_price_usd_per_hour, per_gpu, "user"
    if inputs.gpu_price_usd_per_hour is not None:
        count = inputs.gpu_count or 1  # __post_init__ guarantees a count
        return inputs.gpu_price_usd_per_hour * count, inputs.gpu_price_usd_per_hour, "user"
    if not inputs.use_table:
        return None
    if not inputs.gpu_name:
        notes.append("no price: give --gpu-price or --instance-price (GPU model unknown)")
        return None
    entry = match_gpu_price(inputs.gpu_name)
    if entry is None:
        notes.append(f"no built-in price for {inputs.gpu_name!r}: give --gpu-price")
        return None
    if inputs.gpu_count is None:
        notes.append("no price: GPU count unknown; give --gpu-count")
        return None
    notes.append(
        f"price from the built-in table ({entry.key} ${entry.usd_per_gpu_hour:.2f}/GPU-h, "
        f"{PRICE_TABLE_DATE}, indicative): pass --gpu-price for your own"
    )
    return (
        entry.usd_per_gpu_hour * inputs.gpu_count,
        entry.usd_per_gpu_hour,
        f"table:{entry.key} ({PRICE_TABLE_DATE})",
    )


def compute_cost(
    inputs: CostInputs,
    window_s: float,
    output_tokens: int,
    input_tokens: int,
    requests: int,
    energy_kwh: float | None,
) -> CostResult:
    """Price the measured window. window_s: the measurement window (warm-up excluded);
    requests: requests completed in it; energy_kwh: measured GPU energy or None."""
    if not window_s > 0:
        raise ValueError(f"cost needs a measured window > 0 s, got {window_s}")
    notes: list[str] = []
    hours = window_s / 3600.0
    total_tokens = output_tokens + input_tokens

    source: str | None = None
    usd_per_hour = usd_per_gpu_hour = window_usd = None
    if inputs.input_price_usd_per_1m is not None or inputs.output_price_usd_per_1m is not None:
        window_usd = (
            input_tokens * (inputs.input_price_usd_per_1m or 0.0)
            + output_tokens * (inputs.output_price_usd_per_1m or 0.0)
        ) / 1e6
        usd_per_hour = window_usd / hours
        source = "api-token-prices"
    else:
        rental = _rental_price(inputs, notes)
        if rental is not None:
            usd_per_hour, usd_per_gpu_hour, source = rental
            window_usd = usd_per_hour * hours

    energy_cost = None
    if energy_kwh is not None and inputs.kwh_price_usd is not None:
        energy_cost = energy_kwh * inputs.pue * inputs.kwh_price_usd
        if source not in (None, "api-token-prices"):
            notes.append("energy cost shown separately: a rental price already includes power")

    return CostResult(
        source=source,
        usd_per_hour=usd_per_hour,
        usd_per_gpu_hour=usd_per_gpu_hour,
        window_usd=window_usd,
        usd_per_1m_output_tokens=_per(window_usd, output_tokens, 1e6),
        usd_per_1m_tokens=_per(window_usd, total_tokens, 1e6),
        usd_per_request=_per(window_usd, requests),
        energy_kwh=energy_kwh,
        energy_cost_usd=energy_cost,
        energy_usd_per_1m_output_tokens=_per(energy_cost, output_tokens, 1e6),
        notes=tuple(notes),
    )
