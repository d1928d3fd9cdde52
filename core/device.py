"""Where torch computes, decided in one place (CUDA → Apple MPS → CPU, as Lightning does)."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from pathlib import Path

from core.types import DeviceInfo


def cpu_threads() -> int:
    """Cores this process may use (respects CPU affinity, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_share() -> int:
    """Threads this job may use: its worker's share of the cores (``limit_threads`` sets
    ``OMP_NUM_THREADS``), else every core this process may use."""
    try:
        share = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        share = 0
    return share if share > 0 else cpu_threads()


@lru_cache(maxsize=2)
def pick_device(prefer: str = "auto") -> DeviceInfo:
    """The best available device; ``prefer="cpu"`` forces the CPU.

    torch is imported only where an accelerator may exist (or is imported already): planning a
    table on a machine without one must not pay its ~0.2 GB and seconds of import.
    """
    if "torch" not in sys.modules and (prefer == "cpu" or not _may_have_accelerator()):
        return DeviceInfo("cpu", f"{platform.machine() or 'CPU'} CPU", cpu_threads())
    import torch

    threads = torch.get_num_threads()
    if prefer != "cpu" and torch.cuda.is_available():
        return DeviceInfo("cuda", torch.cuda.get_device_name(0), threads)
    mps = getattr(torch.backends, "mps", None)
    if prefer != "cpu" and mps is not None and mps.is_available():
        return DeviceInfo("mps", "Apple MPS", threads)
    return DeviceInfo("cpu", f"{platform.machine() or 'CPU'} CPU", threads)


def _may_have_accelerator() -> bool:
    """A cheap look for a GPU torch could use: an NVIDIA or AMD (ROCm) driver's device files, Apple
    silicon, or a system where no such look is possible (then torch is asked)."""
    system = platform.system()
    if system == "Darwin":
        return platform.machine() == "arm64"
    if system != "Linux":
        return True
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()


def cpu_device() -> DeviceInfo:
    """The CPU as a device, for scikit-learn models (which never use a GPU)."""
    return DeviceInfo("cpu", f"{platform.machine() or 'CPU'} CPU", cpu_threads())
