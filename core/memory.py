"""Giving freed memory back to the operating system between the big steps of a job.

A job's peak memory decides how large a table a small machine can train on, and two allocators
keep memory that Python has already freed: Arrow's default pool (mimalloc) keeps what the CSV
parser used, and glibc keeps freed blocks below its self-raising mmap threshold in the heap.
On a 1M-row × 21-column CSV that was ~170 MB still held after loading alone. So Arrow allocates
with plain ``malloc`` here (measured as fast for parsing), and ``release_freed_memory`` asks the
allocator to return free pages (``malloc_trim`` on glibc; a no-op elsewhere). Setting the Python
default pool is not enough: Arrow's C++ kernels (pandas' ``astype`` of Arrow columns) take theirs
from ``ARROW_DEFAULT_MEMORY_POOL``, which ``core/__init__.py`` sets before pyarrow loads — without
it the 1M-row table's number columns sat in mimalloc, which kept their 146 MB after they were freed.
"""

from __future__ import annotations

import ctypes

import pyarrow as pa

# Before any Arrow allocation: this module is imported by everything that reads tables.
pa.set_memory_pool(pa.system_memory_pool())


def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Return freed heap pages to the operating system; costs milliseconds. Arrow's own release
    is not a full trim: at the contest's boosting fit on the 1M-row CSV, ``malloc_trim(0)`` gave
    back 100 MB more."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
