"""Where torch computes, decided in one place (CUDA → Apple MPS → CPU, as Lightning does)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

from core.types import DeviceInfo


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def pick_device(prefer: str = "auto") -> DeviceInfo:
    """The best available device; ``prefer="cpu"`` forces the CPU.

    Imports torch lazily so table-only code paths never pay for it.
    """
    import torch

    threads = torch.get_num_threads()
    if prefer != "cpu" and torch.cuda.is_available():
        return DeviceInfo("cuda", torch.cuda.get_device_name(0), threads)
    mps = getattr(torch.backends, "mps", None)
    if prefer != "cpu" and mps is not None and mps.is_available():
        return DeviceInfo("mps", "Apple MPS", threads)
    return DeviceInfo("cpu", f"{platform.machine() or 'CPU'} CPU", threads)


def cpu_device() -> DeviceInfo:
    """The CPU as a device, for scikit-learn models (which never use a GPU)."""
    return DeviceInfo("cpu", f"{platform.machine() or 'CPU'} CPU", cpu_threads())
