"""Which GPUs NVML measures: a selection by index, GPU-UUID (or prefix), MIG-UUID or
CUDA_VISIBLE_DEVICES, opening only the GPUs asked for (collectors.nvml reads them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GpuInfo", "GpuSelector", "as_text", "mig_on", "parse_visible_devices"]


@dataclass(slots=True)
class GpuInfo:
    """One selected GPU: static facts plus which readings it supports (probed once)."""

    index: int
    handle: Any
    name: str
    uuid: str
    supported: dict[str, bool] = field(default_factory=dict)
    unsupported_reason: dict[str, str] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # failed at probe; tried again later

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "supported": dict(self.supported),
            "unsupported_reason": dict(self.unsupported_reason),
            "pending": sorted(self.pending),
        }


def as_text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def parse_visible_devices(spec: str) -> list[int | str]:
    """CUDA_VISIBLE_DEVICES items as NVML indices (int) or UUIDs / UUID prefixes (str:
    "GPU-..." for a GPU, "MIG-..." for a MIG instance)."""
    items: list[int | str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lstrip("-").isdigit():
            if int(item) < 0:  # CUDA stops at the first invalid index
                break
            items.append(int(item))
        elif item.startswith(("GPU-", "MIG-")):
            items.append(item)
        else:
            raise ValueError(
                f"CUDA_VISIBLE_DEVICES item {item!r} is not a GPU index, GPU-UUID or MIG-UUID; "
                "pass the GPUs explicitly (e.g. --gpus 0,1)"
            )
    return items


def mig_on(nv: Any, gpu: GpuInfo) -> bool:
    """Whether the GPU is in MIG mode (False where NVML cannot tell)."""
    get_mode = getattr(nv, "nvmlDeviceGetMigMode", None)
    if get_mode is None:
        return False
    try:
        current, _pending = get_mode(gpu.handle)
    except Exception:  # noqa: BLE001 - not supported on this GPU: no MIG
        return False
    return bool(current)


class GpuSelector:
    """Opens the GPUs asked for; `warnings` lists those NVML refused, `notes` what the
    selection means (a MIG instance or MIG mode: energy is the whole GPU's)."""

    def __init__(self, nv: Any) -> None:
        self.nvml = nv
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def open_index(self, index: int) -> GpuInfo | None:
        nv = self.nvml
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            name = as_text(nv.nvmlDeviceGetName(handle))
            uuid = as_text(nv.nvmlDeviceGetUUID(handle))
        except nv.NVMLError as exc:
            self.warnings.append(f"GPU {index} left out: NVML refused its handle ({exc})")
            return None
        return GpuInfo(index=index, handle=handle, name=name, uuid=uuid)

    def by_uuid(self, count: int, want: str) -> GpuInfo | None:
        """A GPU by its UUID or unique UUID prefix; a MIG-UUID resolves to its parent GPU."""
        nv = self.nvml
        by_uuid = getattr(nv, "nvmlDeviceGetHandleByUUID", None)
        if by_uuid is not None:
            try:
                handle = by_uuid(want)
            except nv.NVMLError:
                handle = None  # a prefix, or a MIG instance NVML cannot look up: search
            if handle is not None:
                if want.startswith("MIG-"):
                    handle = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
                return self.open_index(int(nv.nvmlDeviceGetIndex(handle)))
        matches: list[GpuInfo] = []
        for i in range(count):
            gpu = self.open_index(i)
            if gpu is None:
                continue
            if want.startswith("MIG-"):
                if any(u.startswith(want) for u in self.mig_uuids(gpu)):
                    matches.append(gpu)
            elif gpu.uuid.startswith(want):
                matches.append(gpu)
        if len(matches) != 1:
            raise ValueError(f"GPU UUID {want!r} matches {len(matches)} GPUs, need one")
        return matches[0]

    def mig_uuids(self, gpu: GpuInfo) -> list[str]:
        nv = self.nvml
        if not mig_on(self.nvml, gpu):
            return []
        out = []
        for i in range(int(nv.nvmlDeviceGetMaxMigDeviceCount(gpu.handle))):
            try:
                out.append(
                    as_text(
                        nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetMigDeviceHandleByIndex(gpu.handle, i))
                    )
                )
            except nv.NVMLError:
                continue  # an empty slot
        return out

    def select(self, count: int, wanted: Sequence[int | str] | None) -> list[GpuInfo]:
        if wanted is None:
            every = [self.open_index(i) for i in range(count)]
            chosen = [g for g in every if g is not None]
            by_index = dict.fromkeys(range(count), "")
        else:
            chosen = []
            by_index = {}
            for want in wanted:
                if isinstance(want, int):
                    if not 0 <= want < count:
                        raise ValueError(
                            f"GPU index {want} not found: this host has {count} GPU(s) "
                            f"(0-{count - 1})"
                        )
                    if any(g.index == want for g in chosen):
                        continue
                    gpu = self.open_index(want)
                else:
                    gpu = self.by_uuid(count, want)
                if gpu is None:
                    continue
                by_index.setdefault(gpu.index, want if isinstance(want, str) else "")
                if all(g.index != gpu.index for g in chosen):
                    chosen.append(gpu)
        for gpu in chosen:
            asked = by_index.get(gpu.index, "")
            if asked.startswith("MIG-"):
                self.notes.append(
                    f"{asked} is a MIG instance of GPU {gpu.index}: NVML measures the whole "
                    "GPU's power and energy, shared by all its instances"
                )
            elif mig_on(self.nvml, gpu):
                self.notes.append(
                    f"GPU {gpu.index} is in MIG mode: its energy is the whole GPU's, shared by "
                    "all its MIG instances"
                )
        return chosen
