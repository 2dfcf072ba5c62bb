#!/usr/bin/env python3
"""Build (once) and cache llama.cpp's llama-server for the real-server tests and benchmarks.

    python scripts/build_llama_server.py            # prints the binary's path
    python scripts/build_llama_server.py --jobs 4

The logic lives in tests/realserver/build.py so the pytest fixtures share it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.realserver.build import (  # noqa: E402
    LLAMA_CPP_PYTHON_VERSION,
    BuildError,
    ensure_llama_server,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        default=LLAMA_CPP_PYTHON_VERSION,
        help="llama-cpp-python sdist version whose vendored llama.cpp is built",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    parser.add_argument(
        "--nice", type=int, default=10, help="niceness of the compiler (default 10)"
    )
    args = parser.parse_args()
    try:
        path = ensure_llama_server(
            args.version,
            jobs=args.jobs,
            niceness=args.nice,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
