"""The GPU-day check: what benchbench's energy figures rest on, measured on a real NVIDIA GPU.

    python benchmarks/gpu_check.py [--gpu 0] [--out gpu_check.json] [--quick]

Needs only the standard library and nvidia-ml-py; it uses PyTorch for load when installed,
else the driver's own libcuda (memset loops: memory-bound load), else measures idle only. No
network. About 3 minutes (under 7 in any case; --quick about 1). It only reads: it never
changes power limits, clocks, persistence or MIG.

Measured, per the questions the energy code answers with assumptions until then:
  - update periods of the energy counter, instant power and averaged power (idle and load);
  - the lag of averaged power (nvmlDeviceGetPowerUsage) behind instant power at a load step;
  - counter vs integrated instant power under idle, steady and bursty load, over 1, 5 and
    20 s windows (the error a short window carries);
  - how long power takes to settle after load (what the idle baseline must wait);
  - benchbench's NVML collector cost: CPU per second and event-loop lag at 10 and 100 Hz;
  - GPU selection by index, GPU-UUID and (where MIG is on) MIG-UUID.
Writes one JSON file and prints a table. Where there is no GPU it says so in one line and
exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchbench's collectors

Reading = tuple[float, float, float, float]  # (t_s, counter_mJ, instant_W, averaged_W)


class NoGpu(Exception):
    """No usable NVIDIA GPU: str() is the one line printed."""


def open_nvml(index: int) -> tuple[Any, Any]:
    try:
        import pynvml  # noqa: PLC0415
    except ImportError as exc:
        raise NoGpu(f"nvidia-ml-py is not installed ({exc})") from exc
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception as exc:  # noqa: BLE001 - NVMLError or a missing libnvidia-ml
        raise NoGpu(f"no NVIDIA GPU/driver found (NVML: {exc})") from exc
    if count == 0:
        raise NoGpu("NVML found no GPUs on this host")
    if not 0 <= index < count:
        raise NoGpu(f"GPU index {index} not found: this host has {count} GPU(s)")
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)


class Probe:
    """The three readings the energy code uses, read together."""

    def __init__(self, nv: Any, handle: Any) -> None:
        self.nv, self.handle = nv, handle
        self.fi = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None)

    def instant_w(self) -> float:
        if self.fi is None:
            return float("nan")
        v = self.nv.nvmlDeviceGetFieldValues(self.handle, [self.fi])[0]
        if v.nvmlReturn != 0:
            return float("nan")
        members = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")
        return getattr(v.value, members[v.valueType]) / 1000.0

    def read(self) -> Reading:
        t = time.monotonic()
        counter = float(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        return t, counter, self.instant_w(), self.nv.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def record(self, seconds: float, hz: float = 100.0) -> list[Reading]:
        out, period = [], 1.0 / hz
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(self.read())
            time.sleep(period)
        return out


# -- load: PyTorch, else libcuda memsets, else none ------------------------------------------


class Load:
    """Drives the GPU from a thread: `duty` of each `period_s` busy (1.0 = steady)."""

    def __init__(self, index: int) -> None:
        self.kind, self._work = "none", None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._work, self.kind = _torch_work(index), "pytorch matmul"
        except Exception:  # noqa: BLE001 - not installed or no CUDA build: try the driver
            try:
                self._work, self.kind = _libcuda_work(index), "libcuda memset"
            except Exception:  # noqa: BLE001 - no load generator: idle figures only
                self._work = None

    def run(self, seconds: float, duty: float = 1.0, period_s: float = 1.0) -> None:
        if self._work is None:
            time.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            busy_until = time.monotonic() + duty * period_s
            while time.monotonic() < busy_until:
                self._work()
            rest = period_s * (1 - duty)
            if rest > 0:
                time.sleep(min(rest, max(0.0, end - time.monotonic())))


def _torch_work(index: int) -> Callable[[], None]:
    import torch  # noqa: PLC0415

    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch without CUDA")
    dev = torch.device(f"cuda:{index}")
    a = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.float16)

    def work() -> None:
        for _ in range(4):
            torch.matmul(a, b)
        torch.cuda.synchronize(dev)

    return work


def _libcuda_work(index: int) -> Callable[[], None]:
    cuda = ctypes.CDLL("libcuda.so.1")

    def ok(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"{what} failed ({code})")

    ok(cuda.cuInit(0), "cuInit")
    device, ctx, ptr = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
    ok(cuda.cuDeviceGet(ctypes.byref(device), index), "cuDeviceGet")
    ok(cuda.cuCtxCreate_v2(ctypes.byref(ctx), 0, device), "cuCtxCreate")
    words = 256 * 2**20  # 1 GiB of 32-bit words
    ok(cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(words * 4)), "cuMemAlloc")

    def work() -> None:
        for v in range(8):
            cuda.cuMemsetD32_v2(ptr, ctypes.c_uint(v), ctypes.c_size_t(words))
        cuda.cuCtxSynchronize()

    return work


# -- analysis ------------------------------------------------------------------------------


def update_period_s(times: list[float], values: list[float]) -> float | None:
    """Median time between changes of a reading."""
    changes = [times[i] for i in range(1, len(values)) if values[i] != values[i - 1]]
    if len(changes) < 3:
        return None
    return statistics.median(b - a for a, b in zip(changes, changes[1:], strict=False))


def integral_j(rs: list[Reading], col: int, t0: float, t1: float) -> float:
    pts = [(r[0], r[col]) for r in rs if t0 <= r[0] <= t1 and r[col] == r[col]]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts, pts[1:], strict=False))


def counter_j(rs: list[Reading], t0: float, t1: float) -> float:
    inside = [r for r in rs if t0 <= r[0] <= t1]
    return (inside[-1][1] - inside[0][1]) / 1000.0 if len(inside) >= 2 else float("nan")


def agreement(rs: list[Reading], window_s: float) -> dict[str, float | None]:
    """Counter vs integrated instant power over consecutive windows: worst and median gap."""
    if not rs:
        return {"windows": 0, "median_gap": None, "worst_gap": None}
    gaps, t = [], rs[0][0]
    while t + window_s <= rs[-1][0]:
        c, p = counter_j(rs, t, t + window_s), integral_j(rs, 2, t, t + window_s)
        if c == c and p > 0:
            gaps.append(abs(c - p) / p)
        t += window_s
    return {
        "windows": len(gaps),
        "median_gap": statistics.median(gaps) if gaps else None,
        "worst_gap": max(gaps) if gaps else None,
    }


def phase(rs: list[Reading]) -> dict[str, Any]:
    times = [r[0] for r in rs]
    return {
        "seconds": times[-1] - times[0] if rs else 0.0,
        "mean_instant_w": statistics.fmean(r[2] for r in rs) if rs else None,
        "counter_period_s": update_period_s(times, [r[1] for r in rs]),
        "instant_period_s": update_period_s(times, [r[2] for r in rs]),
        "averaged_period_s": update_period_s(times, [r[3] for r in rs]),
        "agreement": {f"{w:g}s": agreement(rs, w) for w in (1.0, 5.0, 20.0)},
    }


def step_lag_s(rs: list[Reading], t_step: float) -> dict[str, float | None]:
    """Time from the load step until instant and averaged power reach 90% of the rise."""
    before = [r for r in rs if r[0] < t_step]
    after = [r for r in rs if r[0] >= t_step]
    if len(before) < 5 or len(after) < 20:
        return {"instant_s": None, "averaged_s": None}
    out: dict[str, float | None] = {}
    for name, col in (("instant_s", 2), ("averaged_s", 3)):
        lo = statistics.fmean(r[col] for r in before[-20:])
        hi = statistics.fmean(r[col] for r in after[-20:])
        target = lo + 0.9 * (hi - lo)
        hit = next((r[0] for r in after if (r[col] >= target if hi > lo else r[col] <= target)),
                   None)  # fmt: skip
        out[name] = None if hit is None else hit - t_step
    return out


def settle_s(rs: list[Reading], t_stop: float, smooth_s: float = 0.5) -> float | None:
    """After load: when instant power (a `smooth_s` mean, against its noise) last differed
    from the final 5 s by more than 5% (or 5 W)."""
    after = [(r[0], r[2]) for r in rs if r[0] >= t_stop and r[2] == r[2]]
    if not after:
        return None
    final = statistics.fmean(w for t, w in after if t >= after[-1][0] - 5.0)
    sums = [0.0]
    for _, w in after:
        sums.append(sums[-1] + w)
    last_off, j = 0.0, 0
    for i, (t, _) in enumerate(after):
        j = max(j, i)
        while j < len(after) and after[j][0] < t + smooth_s:
            j += 1
        mean = (sums[j] - sums[i]) / (j - i)
        if abs(mean - final) > max(0.05 * final, 5.0):
            last_off = t - t_stop
    return last_off


# -- benchbench's own collector ------------------------------------------------------------


def collector_cost(index: int, seconds: float) -> dict[str, Any]:
    try:
        from collectors.nvml import NvmlCollector  # noqa: PLC0415
    except ImportError as exc:
        return {"skipped": f"benchbench's collectors not importable ({exc})"}

    async def lag_loop(duration: float) -> list[float]:
        lags = []
        end = time.monotonic() + duration
        while time.monotonic() < end:
            due = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - due) * 1000)
        return lags

    def p(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    out: dict[str, Any] = {}
    for hz in (0, 10, 100):
        c = NvmlCollector(gpus=[index], interval_s=1.0 / hz) if hz else None
        if c is not None:
            c.start(time.monotonic_ns)
        cpu0 = time.process_time()
        lags = asyncio.run(lag_loop(seconds))
        cpu = time.process_time() - cpu0
        if c is not None:
            c.stop()
        out[f"{hz}hz" if hz else "none"] = {
            "process_cpu_pct": 100 * cpu / seconds,
            "collector_cpu_pct": 100 * c.cpu_s / seconds if c else 0.0,
            "lag_p50_ms": p(lags, 0.5),
            "lag_p99_ms": p(lags, 0.99),
            "degraded": c.degraded if c else None,
        }
    return out


def selection(nv: Any, index: int) -> dict[str, Any]:
    """Select the GPU by index, GPU-UUID and MIG-UUID (read-only)."""
    try:
        from collectors.nvml import NvmlCollector  # noqa: PLC0415
    except ImportError as exc:
        return {"skipped": f"benchbench's collectors not importable ({exc})"}
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    uuid = nv.nvmlDeviceGetUUID(handle)
    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
    out: dict[str, Any] = {"uuid": uuid}
    for label, kw in (
        ("by_index", {"gpus": [index]}),
        ("by_uuid", {"gpus": [uuid]}),
        ("by_uuid_prefix", {"gpus": [uuid[:12]]}),
        ("cuda_visible_devices_uuid", {"env": {"CUDA_VISIBLE_DEVICES": uuid}}),
    ):
        try:
            c = NvmlCollector(**kw)
            out[label] = {"indices": [g.index for g in c.gpus], "notes": c.reader.notes}
            c.stop()
        except Exception as exc:  # noqa: BLE001 - recorded, the check goes on
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        mig_on = nv.nvmlDeviceGetMigMode(handle)[0]
    except Exception:  # noqa: BLE001 - no MIG on this GPU
        mig_on = 0
    out["mig_mode"] = bool(mig_on)
    if mig_on:
        try:
            mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, 0)
            mig_uuid = nv.nvmlDeviceGetUUID(mig)
            mig_uuid = mig_uuid.decode() if isinstance(mig_uuid, bytes) else mig_uuid
            c = NvmlCollector(env={"CUDA_VISIBLE_DEVICES": mig_uuid})
            out["by_mig_uuid"] = {"indices": [g.index for g in c.gpus], "notes": c.reader.notes}
            c.stop()
        except Exception as exc:  # noqa: BLE001 - recorded
            out["by_mig_uuid"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# -- the run -------------------------------------------------------------------------------


def check(index: int, quick: bool) -> dict[str, Any]:
    nv, handle = open_nvml(index)
    scale = 0.4 if quick else 1.0
    name = nv.nvmlDeviceGetName(handle)
    result: dict[str, Any] = {
        "gpu": {
            "index": index,
            "name": name.decode() if isinstance(name, bytes) else name,
            "driver": str(nv.nvmlSystemGetDriverVersion()),
            "power_limit_w": nv.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    probe, load = Probe(nv, handle), Load(index)
    result["load"] = load.kind
    result["idle"] = phase(probe.record(10 * scale))

    # Steady load with a step at its start (lag of averaged power), then settling after it.
    rs: list[Reading] = []
    rec = threading.Thread(target=lambda: rs.extend(probe.record(2 + 20 * scale + 60 * scale)))
    rec.start()
    time.sleep(2.0)
    t_step = time.monotonic()
    load.run(20 * scale)
    t_stop = time.monotonic()
    rec.join()
    result["steady"] = phase([r for r in rs if t_step + 2 <= r[0] <= t_stop])
    result["step_lag"] = step_lag_s([r for r in rs if r[0] <= t_stop], t_step)
    result["settle_after_load_s"] = settle_s(rs, t_stop)

    bursty: list[Reading] = []
    rec = threading.Thread(target=lambda: bursty.extend(probe.record(20 * scale)))
    rec.start()
    load.run(20 * scale, duty=0.5, period_s=1.0)
    rec.join()
    result["bursty"] = phase(bursty)

    result["collector_cost"] = collector_cost(index, 10 * scale)
    result["selection"] = selection(nv, index)
    nv.nvmlShutdown()
    return result


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}{unit}"
    return f"{v}{unit}"


def table(r: dict[str, Any]) -> str:
    rows = [("GPU", f"{r['gpu']['name']} (driver {r['gpu']['driver']}), load: {r['load']}")]
    for ph in ("idle", "steady", "bursty"):
        x = r[ph]
        rows.append((f"{ph}: mean instant power", fmt(x["mean_instant_w"], " W")))
        periods = ("counter_period_s", "instant_period_s", "averaged_period_s")
        rows.append((f"{ph}: update periods counter/instant/avg",
                     " / ".join(fmt(x[k], " s") for k in periods)))  # fmt: skip
        for w, a in x["agreement"].items():
            rows.append((f"{ph}: counter vs instant integral, {w} windows",
                         f"median {fmt(a['median_gap'])}, worst {fmt(a['worst_gap'])} "
                         f"(n={a['windows']})"))  # fmt: skip
    lag = r["step_lag"]
    rows.append(("step: 90% rise instant / averaged",
                 f"{fmt(lag['instant_s'], ' s')} / {fmt(lag['averaged_s'], ' s')}"))  # fmt: skip
    rows.append(("settle after load", fmt(r["settle_after_load_s"], " s")))
    for hz, c in (r["collector_cost"] or {}).items():
        if isinstance(c, dict):
            rows.append((f"collector {hz}: CPU % / loop lag p50, p99",
                         f"{fmt(c['collector_cpu_pct'])} / {fmt(c['lag_p50_ms'], ' ms')}, "
                         f"{fmt(c['lag_p99_ms'], ' ms')}"))  # fmt: skip
    sel = r["selection"]
    rows.append(("selection", ", ".join(f"{k}: {v}" for k, v in sel.items() if k != "uuid")))
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU to check")
    ap.add_argument("--out", default="gpu_check.json", help="where to write the JSON")
    ap.add_argument("--quick", action="store_true", help="shorter phases (~1 minute)")
    args = ap.parse_args(argv)
    try:
        result = check(args.gpu, args.quick)
    except NoGpu as exc:
        print(f"gpu_check: nothing measured: {exc}")
        return 0
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
