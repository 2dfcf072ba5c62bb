"""The built-in simulated OpenAI-compatible endpoint (`bench sim`, the default target).

Tokenizer: one token per whitespace-separated word; generated tokens are " word".
Every streamed event carries `"bb_send_ns"`: the server's time.monotonic_ns() just
before the write. See config.py for the timing model and its defaults.
"""

from benchbench.sim.config import DEFAULT_MODEL, SimConfig, SimConfigError
from benchbench.sim.process import SimProcess, SimProcessError, config_args
from benchbench.sim.server import SimServer, start_sim
from benchbench.sim.tokenizer import VOCABULARY, count_message_tokens, count_tokens, token_ids

__all__ = [
    "DEFAULT_MODEL",
    "VOCABULARY",
    "SimConfig",
    "SimConfigError",
    "SimProcess",
    "SimProcessError",
    "SimServer",
    "config_args",
    "count_message_tokens",
    "count_tokens",
    "start_sim",
    "token_ids",
]
