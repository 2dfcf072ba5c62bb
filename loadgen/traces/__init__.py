"""Trace replay input: parsers for public LLM serving traces into one ``TraceRecord``."""

from loadgen.traces.azure import parse_azure, parse_azure_lmm
from loadgen.traces.bailian import parse_bailian
from loadgen.traces.burstgpt import parse_burstgpt
from loadgen.traces.length_table import parse_length_table
from loadgen.traces.load import FORMATS, load_trace, sniff_format
from loadgen.traces.mooncake import parse_mooncake
from loadgen.traces.record import Trace, TraceFormatError, TraceRecord

__all__ = [
    "FORMATS",
    "Trace",
    "TraceFormatError",
    "TraceRecord",
    "load_trace",
    "parse_azure",
    "parse_azure_lmm",
    "parse_bailian",
    "parse_burstgpt",
    "parse_length_table",
    "parse_mooncake",
    "sniff_format",
]
