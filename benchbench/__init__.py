"""benchbench: benchmark and cost observability for LLM inference endpoints."""

__version__ = "0.1.0"
