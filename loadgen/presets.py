"""Built-in length presets: production-shaped input/output marginals as inverse-CDF tables.

Real traffic is not "ShareGPT + Poisson": production prompts are long and answers short, and
lengths are heavy-tailed and multi-modal. Each preset is a 16-point quantile table per side
(linear in log tokens between points), figures only, taken from the team's analysis of
public traces (WORKLOADS.md §6(a), computed there with numpy); the original trace is cited
beside each. Input and output
are sampled independently: |rho(log in, log out)| <= 0.16 on the request-level traces.
Token counts are targets in the benchmarked model's tokens (the source tokenizers differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loadgen.lengths import QuantileTable

__all__ = ["PRESETS", "QUANTILES_PCT", "Preset", "get_preset"]

# The quantile grid every preset table is given at (percent).
QUANTILES_PCT: tuple[float, ...] = (0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.9, 100)


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    input: QuantileTable
    output: QuantileTable
    source: str
    description: str
    api: Literal["chat", "completions"] = "chat"  # the API the source traffic used


def _table(*tokens: int) -> QuantileTable:
    return QuantileTable.of(QUANTILES_PCT, tokens)


_PRESET_LIST = (
    Preset(
        name="azure-conv",
        # Azure LLM inference trace 2023, conversation (AzurePublicDataset
        # AzureLLMInferenceTrace_conv; Patel et al., "Splitwise", ISCA 2024). 19,366 requests,
        # computed; the paper's medians 1,020 in / 129 out match.
        input=_table(
            2, 29, 181, 207, 387, 403, 703, 1020, 1071, 1130, 1315, 2735, 4083, 4142, 6212, 14050
        ),
        output=_table(7, 16, 41, 54, 77, 91, 103, 129, 177, 384, 400, 424, 451, 601, 954, 1000),
        source="Azure LLM inference trace 2023, conversation (Splitwise, ISCA'24)",
        description="production chat: ~1k-token prompts, short answers (p50 1,020 in / 129 out)",
    ),
    Preset(
        name="azure-code",
        # Azure LLM inference trace 2023, code (AzureLLMInferenceTrace_code; Splitwise).
        # 8,819 requests, computed; ~7% of prompts sit at the 7,437-token context cap.
        input=_table(
            3, 17, 75, 147, 385, 770, 1075, 1469, 1909, 2433, 3193, 5194, 7315, 7436, 7437, 7437
        ),
        output=_table(6, 6, 6, 7, 8, 9, 11, 13, 16, 20, 29, 55, 90, 252, 831, 1899),
        source="Azure LLM inference trace 2023, code (Splitwise, ISCA'24)",
        description="code completion: long prompts, very short outputs (p50 1,469 in / 13 out)",
        api="completions",
    ),
    Preset(
        name="longctx-chat",
        # Mooncake conversation trace (Qin et al., "Mooncake", FAST 2025; kvcache-ai/Mooncake
        # traces, Kimi tokenizer). 12,031 requests, computed.
        input=_table(
            891,
            894,
            901,
            964,
            1662,
            3263,
            4993,
            6909,
            9570,
            13196,
            17869,
            27367,
            39552,
            85401,
            121301,
            126195,
        ),
        output=_table(1, 3, 10, 24, 100, 213, 291, 350, 399, 447, 504, 597, 698, 1120, 2000, 2000),
        source="Mooncake conversation trace (Mooncake, FAST'25)",
        description="long-context chat: p50 6,909 in / 350 out, p99 85k-token prompts",
    ),
    Preset(
        name="sharegpt",
        # ShareGPT_V3 first turns as vLLM's benchmark samples them (vllm/benchmarks/datasets/
        # sharegpt.py filter: in, out >= 4, in <= 1024, in + out <= 2048), OPT tokenizer,
        # 74,704 pairs, computed. Not production-shaped: kept for comparability with vLLM runs.
        input=_table(4, 5, 8, 10, 13, 18, 24, 34, 51, 84, 162, 382, 596, 919, 1015, 1024),
        output=_table(4, 11, 32, 59, 112, 170, 226, 280, 338, 412, 534, 764, 919, 1292, 1711, 2009),
        source="ShareGPT_V3 first turns with the vLLM bench filter, OPT tokenizer",
        description="vLLM-bench ShareGPT, for comparability only (p50 34 in / 280 out)",
    ),
    Preset(
        name="multiturn-8k",
        # ShareGPT multi-turn conversations up to 8k tokens, as used by Sarathi-Serve
        # (Agrawal et al., OSDI 2024). 30,731 requests, computed.
        input=_table(
            1, 12, 29, 74, 382, 777, 1203, 1730, 2401, 3235, 4278, 5696, 6563, 7434, 7855, 8141
        ),
        output=_table(2, 6, 44, 84, 181, 271, 346, 415, 493, 581, 683, 834, 920, 998, 1021, 1024),
        source="ShareGPT multi-turn conversations <= 8k tokens (Sarathi-Serve, OSDI'24)",
        description="multi-turn chat with history, capped at 8k (p50 1,730 in / 415 out)",
    ),
    Preset(
        name="summarize-4k",
        # arXiv summarization up to 4k tokens, as used by Vidur (Agrawal et al., MLSys 2024).
        # 28,257 requests, computed.
        input=_table(
            1, 73, 747, 1242, 1802, 2150, 2453, 2730, 2996, 3249, 3490, 3702, 3813, 3934, 4012, 4054
        ),
        output=_table(5, 36, 60, 78, 104, 125, 145, 167, 192, 222, 268, 372, 737, 3273, 3845, 4056),
        source="arXiv summarization <= 4k tokens (Vidur, MLSys'24)",
        description="summarization: ~2.7k-token documents (p50 2,730 in / 167 out)",
    ),
    Preset(
        name="reasoning",
        # Alibaba ServeGen, DeepSeek-R1 one-day language workload (Xiang et al., "ServeGen",
        # 2025; alibaba/ServeGen), rate-weighted mixture of client pmfs, computed.
        input=_table(
            4, 9, 13, 17, 36, 61, 97, 180, 341, 541, 1182, 3473, 9163, 26836, 34219, 57284
        ),
        output=_table(
            9, 141, 227, 294, 409, 527, 720, 1014, 1357, 1931, 3275, 5423, 7858, 15063, 22343, 32768
        ),
        source="Alibaba ServeGen DeepSeek-R1 language workload, 1 day (ServeGen, 2025)",
        description="reasoning model: short prompts, long outputs (p50 180 in / 1,014 out)",
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _PRESET_LIST}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown workload preset {name!r}; valid presets: {', '.join(PRESETS)}"
        ) from None
