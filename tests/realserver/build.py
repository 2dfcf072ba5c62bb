"""Build llama.cpp's `llama-server` from the sources vendored in the llama-cpp-python sdist.

PyPI is the only registry reachable on the CI machines, and PyPI ships llama.cpp only as
the sources inside `llama-cpp-python`'s sdist, so that sdist is the pinned source of truth.
The binary is cached per version under the benchbench cache dir: only the first run on a
machine pays the ~10 minute compile. A lock file makes concurrent callers wait for one build
instead of each starting their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = [
    "LLAMA_CPP_PYTHON_VERSION",
    "BuildError",
    "cache_root",
    "cached_server_binary",
    "ensure_llama_server",
    "exclusive_lock",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

# Without the two UI flags the build downloads a web UI (no network here) and fails;
# static libraries make the cached binary self-contained.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


class BuildError(RuntimeError):
    """llama-server could not be built here; the message says why and what to install."""


def cache_root() -> Path:
    """`$BENCHBENCH_CACHE`, else `~/.cache/benchbench`."""
    env = os.environ.get("BENCHBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "benchbench"


def _version_dir(version: str) -> Path:
    return cache_root() / "llama-server" / version


def cached_server_binary(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path | None:
    """The cached binary for `version`, or None when it has not been built yet."""
    path = _version_dir(version) / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def ensure_llama_server(
    version: str = LLAMA_CPP_PYTHON_VERSION,
    *,
    jobs: int = 2,
    niceness: int = 10,
    log: Callable[[str], None] = print,
) -> Path:
    """Return the path of a working `llama-server`, building and caching it if needed.

    Raises BuildError with the reason (missing tool, download or compile failure, with
    the tail of the build log) when it cannot be built.
    """
    found = cached_server_binary(version)
    if found is not None:
        return found
    out_dir = _version_dir(version)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / "build.lock", log):
        found = cached_server_binary(version)  # another process may have built it meanwhile
        if found is not None:
            return found
        _check_tools()
        started = time.monotonic()
        log_path = out_dir / "build.log"
        with tempfile.TemporaryDirectory(prefix="build-", dir=out_dir) as work:
            binary = _download_and_build(version, Path(work), log_path, jobs, niceness, log)
            target = out_dir / "llama-server"
            partial = out_dir / "llama-server.partial"
            shutil.copy2(binary, partial)
            partial.replace(target)  # atomic: a reader never sees a half-copied binary
        build_s = time.monotonic() - started
        info = {"version": version, "build_s": round(build_s, 1), "jobs": jobs}
        (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
        log(f"llama-server {version} built in {build_s:.0f} s -> {target}")
        return target


@contextmanager
def exclusive_lock(path: Path, log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold an flock on `path`; a second process waits (and says so) until it is released."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another process holds {path}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_tools() -> None:
    missing = [
        tool
        for tool, candidates in (
            ("cmake", ["cmake"]),
            ("a C++ compiler", ["c++", "g++", "clang++"]),
        )
        if not any(shutil.which(c) for c in candidates)
    ]
    if missing:
        raise BuildError(
            f"cannot build llama-server: {' and '.join(missing)} not found on PATH "
            "(install e.g. `apt-get install cmake g++`)"
        )


def _download_and_build(
    version: str,
    work: Path,
    log_path: Path,
    jobs: int,
    niceness: int,
    log: Callable[[str], None],
) -> Path:
    sdist_dir = work / "sdist"
    with log_path.open("w") as log_file:
        log(f"downloading llama-cpp-python=={version} sdist ...")
        _run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                f"llama-cpp-python=={version}", "-d", str(sdist_dir),
            ],
            log_file, log_path, "downloading the llama-cpp-python sdist", niceness=0,
        )  # fmt: skip
        archives = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
        if not archives:
            raise BuildError(f"pip download produced no sdist in {sdist_dir}; see {log_path}")
        log(f"unpacking {archives[0].name} ...")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(work / "src", filter="data")
        roots = list((work / "src").glob("*/vendor/llama.cpp"))
        if not roots:
            raise BuildError(f"no vendor/llama.cpp in {archives[0].name}")
        source, build = roots[0], work / "build"
        log(f"configuring llama.cpp (log: {log_path}) ...")
        _run(
            ["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS],
            log_file, log_path, "configuring llama.cpp with cmake", niceness=niceness,
        )  # fmt: skip
        log(f"compiling llama-server with {jobs} jobs (about 10 minutes on 2 cores) ...")
        env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=str(jobs))
        _run(
            ["cmake", "--build", str(build), "--config", "Release", "--target", "llama-server"],
            log_file, log_path, "compiling llama-server", niceness=niceness, env=env,
        )  # fmt: skip
    binary = build / "bin" / "llama-server"
    if not binary.is_file():
        raise BuildError(f"the build finished but {binary} is missing; see {log_path}")
    return binary


def _run(
    cmd: list[str],
    log_file: IO[str],
    log_path: Path,
    what: str,
    *,
    niceness: int,
    env: dict[str, str] | None = None,
) -> None:
    log_file.write(f"$ {' '.join(cmd)}\n")
    log_file.flush()
    # Niced so a build started by a test run does not starve the other users of a 2-core box.
    preexec = (lambda: os.nice(niceness)) if niceness else None
    code = subprocess.call(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec
    )
    if code != 0:
        raise BuildError(
            f"{what} failed (exit {code}); last lines of {log_path}:\n{_tail(log_path)}"
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
