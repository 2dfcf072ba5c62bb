"""A scripted stand-in for the `pynvml` module: GPUs whose power follows a script over a test
clock, and the behaviours of real ones: an energy counter that is the integral of that power
but steps only every `counter_step_s` (~100 ms on real GPUs), can freeze, or restarts from 0
on a driver reload; `nvmlDeviceGetPowerUsage` as a 1-second average (H100) next to instant
power; MIG mode with MIG device handles (which have no energy counter); GPUs whose handle
NVML refuses; readings that fail a few times then work; and errors from a given time on.

Pass an instance wherever the code accepts `nvml=` (it has the module's attribute names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {
            NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
            NVML_ERROR_NOT_SUPPORTED: "Not Supported",
            NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
            NVML_ERROR_NOT_FOUND: "Not Found",
            NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
            NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        }.get(self.value, "Unknown Error")


class FakeClock:
    """Integer-ns clock the test advances by hand."""

    def __init__(self, t_ns: int = 0) -> None:
        self.t_ns = t_ns

    def __call__(self) -> int:
        return self.t_ns

    def advance_s(self, seconds: float) -> None:
        self.t_ns += round(seconds * 1e9)


@dataclass
class FakeGpu:
    """Power is piecewise constant: `steps` = [(from_s, watts), ...] sorted by time."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    steps: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 100.0)])
    has_energy_counter: bool = True
    has_power_instant: bool = True
    counter_offset_mj: float = 5_000_000.0  # counters count since driver load, not from 0
    reset_at_s: float | None = None  # counter restarts from 0 at this time (driver reload)
    power_limit_w: float = 700.0
    counter_step_s: float = 0.0  # the counter only updates every this many s (real: ~0.1)
    frozen_from_s: float | None = None  # the counter stops moving from this time on
    avg_window_s: float = 0.0  # nvmlDeviceGetPowerUsage averages over this many s (H100: 1)
    mig_uuids: list[str] = field(default_factory=list)  # MIG mode on with these instances
    handle_error: int | None = None  # nvmlDeviceGetHandleByIndex refuses this GPU
    flaky_reads: int = 0  # the first this-many energy/power reads fail with Unknown Error

    def power_w(self, t_s: float) -> float:
        watts = self.steps[0][1]
        for start_s, w in self.steps:
            if t_s >= start_s:
                watts = w
        return watts

    def energy_j(self, t_s: float, from_s: float = 0.0) -> float:
        """Exact integral of the scripted power over [from_s, t_s]."""
        total = 0.0
        bounds = [s for s, _ in self.steps] + [float("inf")]
        for (start_s, w), end_s in zip(self.steps, bounds[1:], strict=True):
            lo, hi = max(start_s, from_s), min(end_s, t_s)
            if hi > lo:
                total += w * (hi - lo)
        return total

    def avg_power_w(self, t_s: float) -> float:
        """Mean power over the last `avg_window_s` (instant power when 0)."""
        if self.avg_window_s <= 0:
            return self.power_w(t_s)
        lo = t_s - self.avg_window_s
        return (
            (self.energy_j(t_s) - self.energy_j(lo)) / self.avg_window_s
            if lo >= 0
            else (self.energy_j(t_s) / t_s if t_s > 0 else self.power_w(0.0))
        )

    def counter_mj(self, t_s: float) -> int:
        if self.frozen_from_s is not None:
            t_s = min(t_s, self.frozen_from_s)
        if self.counter_step_s > 0:
            t_s = (t_s // self.counter_step_s) * self.counter_step_s
        if self.reset_at_s is not None and t_s >= self.reset_at_s:
            return round(self.energy_j(t_s, from_s=self.reset_at_s) * 1000)
        return round(self.counter_offset_mj + self.energy_j(t_s) * 1000)


class FakeNvml:
    NVMLError = NVMLError
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        clock: Callable[[], int] | None = None,
        fail_from_s: float | None = None,
        init_error: int | None = None,
    ) -> None:
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.clock = clock or FakeClock()
        self.fail_from_s = fail_from_s
        self.init_error = init_error
        self.initialised = 0
        self.calls = 0
        self.opened: set[int] = set()  # GPU indices whose handle was asked for

    # -- helpers ----------------------------------------------------------------------

    def _now_s(self) -> float:
        return self.clock() / 1e9

    def _gpu(self, handle: int | tuple[str, int, int]) -> FakeGpu:
        self.calls += 1
        if self.fail_from_s is not None and self._now_s() >= self.fail_from_s:
            raise NVMLError(NVML_ERROR_UNKNOWN)
        if isinstance(handle, tuple):  # a MIG device: no power or energy of its own
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        self.opened.add(handle)
        gpu = self.gpus[handle]
        if gpu.flaky_reads > 0:
            gpu.flaky_reads -= 1
            raise NVMLError(NVML_ERROR_UNKNOWN)
        return gpu

    # -- the pynvml surface the collectors use --------------------------------------------

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "555.42.06"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        self.opened.add(index)
        if self.gpus[index].handle_error is not None:
            raise NVMLError(self.gpus[index].handle_error)
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> int | tuple[str, int, int]:
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == text:
                return self.nvmlDeviceGetHandleByIndex(i)
            if text in gpu.mig_uuids:
                return ("mig", i, gpu.mig_uuids.index(text))
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: int) -> int:
        return handle

    def nvmlDeviceGetName(self, handle: int | tuple[str, int, int]) -> str:
        if isinstance(handle, tuple):
            return f"{self.gpus[handle[1]].name} MIG 1g.10gb"
        return self.gpus[handle].name

    def nvmlDeviceGetUUID(self, handle: int | tuple[str, int, int]) -> str:
        if isinstance(handle, tuple):
            return self.gpus[handle[1]].mig_uuids[handle[2]]
        return self.gpus[handle].uuid

    def nvmlDeviceGetMigMode(self, handle: int) -> tuple[int, int]:
        on = int(bool(self.gpus[handle].mig_uuids))
        return on, on

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: int) -> int:
        return 7 if self.gpus[handle].mig_uuids else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: int, index: int) -> tuple[str, int, int]:
        if not 0 <= index < len(self.gpus[handle].mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return ("mig", handle, index)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: tuple[str, int, int]) -> int:
        return handle[1]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.counter_mj(self._now_s())

    def nvmlDeviceGetFieldValues(self, handle: int, field_ids: list[int]) -> list[SimpleNamespace]:
        gpu = self._gpu(handle)
        out = []
        for fid in field_ids:
            ok = fid == self.NVML_FI_DEV_POWER_INSTANT and gpu.has_power_instant
            mw = round(gpu.power_w(self._now_s()) * 1000) if ok else 0
            out.append(
                SimpleNamespace(
                    fieldId=fid,
                    nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED,
                    valueType=1,  # NVML_VALUE_TYPE_UNSIGNED_INT
                    value=SimpleNamespace(uiVal=mw),
                )
            )
        return out

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return round(self._gpu(handle).avg_power_w(self._now_s()) * 1000)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        gpu = self._gpu(handle)
        busy = gpu.power_w(self._now_s()) > gpu.steps[0][1]
        return SimpleNamespace(gpu=97 if busy else 0, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        self._gpu(handle)
        return SimpleNamespace(total=80 * 2**30, used=60 * 2**30, free=20 * 2**30)

    def nvmlDeviceGetClockInfo(self, handle: int, clock_type: int) -> int:
        self._gpu(handle)
        return 1980

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        self._gpu(handle)
        return 45

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return round(self._gpu(handle).power_limit_w * 1000)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        self._gpu(handle)
        return 0x1  # GPU idle
