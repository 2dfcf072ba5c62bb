"""The spine's error tree. Every error a user can fix is a BenchError whose str() is one line
that says how; the faces (benchbench/cli_guard.py) print that line and exit 2. Anything else is
a bug and keeps its traceback.

    BenchError
     ├── ConfigError      a flag, config file, workload, dataset or trace that cannot be used
     ├── EndpointError    the endpoint cannot be reached or does not answer as an API should
     ├── RunError         the run itself cannot go on (interrupted twice, a missing event loop)
     └── gate.rules.GateError   a gate rule file or comparison that cannot be evaluated

Errors with roots of their own (benchbench.store.StoreError, gate.compare.InvalidComparison,
sim.process.SimProcessError, collectors.nvml.NvmlUnavailable, and the ValueError subclasses of
the parsers: loadgen.traces.TraceFormatError, sim.config.SimConfigError, sim.faults.
FaultSpecError, exact.TokenizeError) are translated at the boundary by `as_user_error`.
"""

from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix; str(exc) is one line that says how."""


class ConfigError(BenchError):
    """A setting (flag, config file, workload, dataset or trace) that cannot be used."""


class EndpointError(BenchError):
    """The endpoint cannot be reached, refuses us, or does not answer as its API should."""


class RunError(BenchError):
    """The run cannot go on as asked (and says why)."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_user_error(exc: BaseException) -> BenchError | None:
    """`exc` as the BenchError a user sees, or None when it is a bug (keep its traceback)."""
    if isinstance(exc, BenchError):
        return exc
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}
    if names & _FOREIGN_USER_ERRORS:
        return BenchError(first_line(exc))
    return None


# By name, so this module imports nothing: the roots live in modules that import errors.py.
_FOREIGN_USER_ERRORS = frozenset(
    {
        "benchbench.store.db.StoreError",
        "benchbench.gate.compare.InvalidComparison",
        "benchbench.sim.process.SimProcessError",
        "collectors.nvml.NvmlUnavailable",
        "loadgen.traces.record.TraceFormatError",
        "benchbench.sim.config.SimConfigError",
        "benchbench.sim.faults.FaultSpecError",
        "benchbench.exact.TokenizeError",
    }
)
