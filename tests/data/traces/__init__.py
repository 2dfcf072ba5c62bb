"""Where the tests find the public traces the repository carries (see README.md here)."""

from pathlib import Path

TRACES = Path(__file__).resolve().parent
AZURE_CONV = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv.gz"
AZURE_CODE = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv.gz"
MOONCAKE_CONV = TRACES / "mooncake_fast25" / "conversation_trace.jsonl.gz"
MOONCAKE_SYNTHETIC = TRACES / "mooncake_fast25" / "synthetic_trace.jsonl.gz"
