"""The spine's error root. The CLI catches BenchError in one place and prints its one line."""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix; str(exc) is one line that says how."""
