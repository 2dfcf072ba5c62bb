"""Where a served endpoint can be reached: one definition for the simulator, the fault server
and the simulator's process wrapper, which all bind `host:port`."""

from __future__ import annotations


class ServedAt:
    """`root_url` and `base_url` of a server bound at `self.host:self.port`."""

    host: str
    port: int

    @property
    def root_url(self) -> str:
        """Server root (for /health, /metrics, /tokenize)."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. http://127.0.0.1:PORT/v1."""
        return self.root_url + "/v1"
