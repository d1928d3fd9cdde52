"""core.memory: Arrow allocates with malloc, so freed memory can go back to the system."""

import pyarrow as pa

import core.datasets  # noqa: F401  (reading tables is what switches the pool)
from core.memory import release_freed_memory


def test_arrow_uses_the_system_allocator_and_releases():
    assert pa.default_memory_pool().backend_name == "system"
    before = pa.total_allocated_bytes()
    table = pa.table({"x": pa.array(range(1_000_000))})
    assert pa.total_allocated_bytes() >= before + 8_000_000
    del table
    release_freed_memory()
    assert pa.total_allocated_bytes() <= before + 1_000
