"""Local GPU power, energy and state through NVML (nvidia-ml-py, module `pynvml`).

Energy comes from the cumulative counter (nvmlDeviceGetTotalEnergyConsumption, mJ, Volta+),
which the energy arithmetic reads at window edges. Power is recorded twice because the two
readings mean different things: `power_instant_w` (field NVML_FI_DEV_POWER_INSTANT) for timelines
and short windows, and `power_avg_w` (nvmlDeviceGetPowerUsage) which on H100 is a 1-second
average and must not be integrated over short windows.

The NVML module is injectable (`nvml=`) so tests run against a fake without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors.base import Clock, Sample
from collectors.nvml_select import GpuInfo, GpuSelector, as_text, parse_visible_devices
from collectors.threaded import PollingCollector

__all__ = [
    "FAST_METRICS",
    "DETAIL_METRICS",
    "GpuInfo",
    "NvmlCollector",
    "NvmlReader",
    "NvmlUnavailable",
]

FAST_METRICS = ("energy_mj", "power_instant_w", "power_avg_w")
DETAIL_METRICS = (
    "util_gpu_pct",
    "mem_used_bytes",
    "sm_clock_mhz",
    "temp_c",
    "power_limit_w",
    "throttle_reasons",
)

# c_nvmlValue_t member to read for each NVML_VALUE_TYPE_* (0..6).
_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; str() is one line the CLI prints before going on without it."""


def _load_nvml(nvml: Any | None) -> Any:
    if nvml is not None:
        return nvml
    try:
        import pynvml  # noqa: PLC0415 - optional at runtime: absent means "no energy"
    except ImportError as exc:
        raise NvmlUnavailable(f"nvidia-ml-py is not installed ({exc})") from exc
    return pynvml


# NVML answers that mean "never on this GPU": anything else may pass (retry, keep trying).
_NVML_NOT_SUPPORTED = 3
_NVML_NO_PERMISSION = 4
_NVML_FUNCTION_NOT_FOUND = 13
_DEFINITIVE = frozenset({_NVML_NOT_SUPPORTED, _NVML_NO_PERMISSION, _NVML_FUNCTION_NOT_FOUND})
PROBE_ATTEMPTS = 3


def _definitive(exc: Exception) -> bool:
    """Whether a failed reading means the metric is unsupported (not a passing failure)."""
    value = getattr(exc, "value", None)
    return not isinstance(value, int) or value in _DEFINITIVE


class NvmlReader:
    """Initialises NVML, selects GPUs, probes what each supports, and reads values.

    gpus: NVML indices, GPU-UUIDs (or prefixes) or MIG-UUIDs; None means
    CUDA_VISIBLE_DEVICES when set in `env`, else every GPU. Only the selected GPUs are
    opened; one whose handle NVML refuses (permission, GPU lost) is left out with a line in
    `warnings`, and the others are measured. A MIG instance is measured through its parent
    GPU: NVML reports power and energy per physical GPU only, which `notes` says. NVML numbers
    GPUs in PCI bus order, which is CUDA's order only with CUDA_DEVICE_ORDER=PCI_BUS_ID.
    """

    def __init__(
        self,
        gpus: Sequence[int | str] | None = None,
        nvml: Any | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.nvml = _load_nvml(nvml)
        nv = self.nvml
        selector = GpuSelector(nv)
        self.warnings = selector.warnings  # GPUs lost at selection
        self.notes = selector.notes  # what the selection means (MIG: whole-GPU energy)
        try:
            nv.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError or a missing shared library
            raise NvmlUnavailable(f"no NVIDIA GPU/driver found (NVML: {exc})") from exc
        self._open = True
        try:
            self.driver_version = as_text(nv.nvmlSystemGetDriverVersion())
            count = int(nv.nvmlDeviceGetCount())
        except nv.NVMLError as exc:
            self.close()
            raise NvmlUnavailable(f"NVML initialised but cannot list GPUs ({exc})") from exc
        if count == 0:
            self.close()
            raise NvmlUnavailable("NVML found no GPUs on this host")
        env = os.environ if env is None else env
        try:
            if gpus is None and env.get("CUDA_VISIBLE_DEVICES") is not None:
                gpus = parse_visible_devices(env["CUDA_VISIBLE_DEVICES"])
                if not gpus:
                    raise NvmlUnavailable("CUDA_VISIBLE_DEVICES selects no GPU")
            self.gpus = selector.select(count, gpus)
            if not self.gpus:
                raise NvmlUnavailable(
                    "no selected GPU could be opened: " + "; ".join(self.warnings)
                )
        except Exception:
            self.close()
            raise
        self._fi_power_instant = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None)
        self._throttle_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        for gpu in self.gpus:
            self._probe(gpu)

    def readers(self) -> dict[str, Callable[[GpuInfo], float]]:
        return {
            "energy_mj": self.energy_mj,
            "power_instant_w": self.power_instant_w,
            "power_avg_w": self.power_avg_w,
            "util_gpu_pct": self.util_gpu_pct,
            "mem_used_bytes": self.mem_used_bytes,
            "sm_clock_mhz": self.sm_clock_mhz,
            "temp_c": self.temp_c,
            "power_limit_w": self.power_limit_w,
            "throttle_reasons": self.throttle_reasons,
        }

    def _probe(self, gpu: GpuInfo) -> None:
        """Which readings this GPU supports. Only NVML's "not supported", "no permission" and
        "function not found" mark a metric unsupported; another failure is retried, and if it
        persists the metric stays `pending` (the collector tries it again later) instead of
        being lost for the whole run."""
        for metric, read in self.readers().items():
            for _ in range(PROBE_ATTEMPTS):
                try:
                    read(gpu)
                except Exception as exc:  # noqa: BLE001 - decide below what it means
                    if _definitive(exc):
                        gpu.supported[metric] = False
                        gpu.unsupported_reason[metric] = str(exc) or type(exc).__name__
                        break
                    gpu.unsupported_reason[metric] = str(exc) or type(exc).__name__
                    continue
                gpu.supported[metric] = True
                gpu.unsupported_reason.pop(metric, None)
                break
            else:
                gpu.supported[metric] = False
                gpu.pending.add(metric)

    def retry_pending(self, gpu: GpuInfo) -> bool:
        """Try the GPU's pending metrics once more; True when any was settled either way."""
        changed = False
        for metric in sorted(gpu.pending):
            try:
                self.readers()[metric](gpu)
            except Exception as exc:  # noqa: BLE001 - decide below what it means
                if _definitive(exc):
                    gpu.pending.discard(metric)
                    gpu.unsupported_reason[metric] = str(exc) or type(exc).__name__
                    changed = True
                continue
            gpu.pending.discard(metric)
            gpu.supported[metric] = True
            gpu.unsupported_reason.pop(metric, None)
            changed = True
        return changed

    # -- single readings (raise NVMLError on failure) ------------------------------------

    def energy_mj(self, gpu: GpuInfo) -> float:
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))

    def power_instant_w(self, gpu: GpuInfo) -> float:
        if self._fi_power_instant is None:
            raise RuntimeError("this nvidia-ml-py has no NVML_FI_DEV_POWER_INSTANT")
        value = self.nvml.nvmlDeviceGetFieldValues(gpu.handle, [self._fi_power_instant])[0]
        if value.nvmlReturn != 0:
            raise self.nvml.NVMLError(value.nvmlReturn)
        return getattr(value.value, _VALUE_MEMBERS[value.valueType]) / 1000.0  # mW -> W

    def power_avg_w(self, gpu: GpuInfo) -> float:
        return self.nvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0  # mW -> W

    def util_gpu_pct(self, gpu: GpuInfo) -> float:
        return float(self.nvml.nvmlDeviceGetUtilizationRates(gpu.handle).gpu)

    def mem_used_bytes(self, gpu: GpuInfo) -> float:
        return float(self.nvml.nvmlDeviceGetMemoryInfo(gpu.handle).used)

    def sm_clock_mhz(self, gpu: GpuInfo) -> float:
        return float(self.nvml.nvmlDeviceGetClockInfo(gpu.handle, self.nvml.NVML_CLOCK_SM))

    def temp_c(self, gpu: GpuInfo) -> float:
        nv = self.nvml
        return float(nv.nvmlDeviceGetTemperature(gpu.handle, nv.NVML_TEMPERATURE_GPU))

    def power_limit_w(self, gpu: GpuInfo) -> float:
        return self.nvml.nvmlDeviceGetEnforcedPowerLimit(gpu.handle) / 1000.0  # mW -> W

    def throttle_reasons(self, gpu: GpuInfo) -> float:
        if self._throttle_fn is None:
            raise RuntimeError("this nvidia-ml-py cannot read clock event reasons")
        return float(self._throttle_fn(gpu.handle))  # bitmask, exact below 2**53

    def snapshot_gpu(self, gpu: GpuInfo) -> dict[str, object]:
        """The agent's per-GPU record: counters and power; None where unsupported."""
        return {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "name": gpu.name,
            "energy_mj": self.energy_mj(gpu) if gpu.supported["energy_mj"] else None,
            "power_instant_w": (
                self.power_instant_w(gpu) if gpu.supported["power_instant_w"] else None
            ),
            "power_avg_w": self.power_avg_w(gpu) if gpu.supported["power_avg_w"] else None,
            "power_limit_w": self.power_limit_w(gpu) if gpu.supported["power_limit_w"] else None,
        }

    def info(self) -> dict[str, object]:
        return {
            "driver_version": self.driver_version,
            "gpus": [g.as_dict() for g in self.gpus],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110 - shutting down; nothing useful to do
                pass


class NvmlCollector(PollingCollector):
    """Samples every selected GPU: power/energy every `interval_s` (~10 Hz), the slower-moving
    state (utilisation, memory, SM clock, temperature, power limit, throttle reasons) every
    `detail_interval_s`. Device = NVML GPU index as str.

    Raises NvmlUnavailable (one line) at construction when NVML cannot be used, and ValueError
    for a bad GPU selection.
    """

    name = "nvml"

    def __init__(
        self,
        gpus: Sequence[int | str] | None = None,
        interval_s: float = 0.1,
        detail_interval_s: float = 0.5,
        nvml: Any | None = None,
        env: Mapping[str, str] | None = None,
        max_failures: int = 3,
    ) -> None:
        super().__init__(interval_s=interval_s, max_failures=max_failures)
        if detail_interval_s < interval_s:
            raise ValueError("detail_interval_s must be >= interval_s")
        self.reader = NvmlReader(gpus=gpus, nvml=nvml, env=env)
        self.detail_interval_s = detail_interval_s
        self._detail_every = max(1, round(detail_interval_s / interval_s))
        self._tick = 0
        self._plan = [self._plan_for(g) for g in self.reader.gpus]

    def _plan_for(
        self, g: GpuInfo
    ) -> tuple[GpuInfo, str, tuple[tuple[str, Callable[[GpuInfo], float]], ...], ...]:
        """The bound readers a GPU supports, resolved once so a tick allocates nothing but
        the Samples themselves."""
        readers = self.reader.readers()
        return (
            g,
            str(g.index),
            tuple((m, readers[m]) for m in FAST_METRICS if g.supported.get(m)),
            tuple((m, readers[m]) for m in DETAIL_METRICS if g.supported.get(m)),
        )

    @property
    def gpus(self) -> list[GpuInfo]:
        return self.reader.gpus

    def _read(self, clock: Clock, out: list[Sample]) -> None:
        with_detail = self._tick % self._detail_every == 0
        self._tick += 1
        name = self.name
        if with_detail:
            for i, entry in enumerate(self._plan):
                if entry[0].pending and self.reader.retry_pending(entry[0]):
                    self._plan[i] = self._plan_for(entry[0])
        for gpu, device, fast, detail in self._plan:
            # One stamp per GPU, taken just before its energy counter is read.
            t_ns = clock()
            for metric, read in fast:
                out.append(Sample(name, device, t_ns, metric, read(gpu)))
            if with_detail:
                for metric, read in detail:
                    out.append(Sample(name, device, t_ns, metric, read(gpu)))

    def info(self) -> dict[str, object]:
        facts = self.reader.info()
        facts["interval_s"] = self.interval_s
        facts["detail_interval_s"] = self.detail_interval_s
        return facts

    def _close(self) -> None:
        self.reader.close()
