"""How many rows of a table a job trains on: above the limit, a stratified sample, with a notice.

A job's peak memory grows with the rows (about ``PEAK_PER_TABLE`` times the loaded table, measured
on the 1M-row × 21-column CSV in ``bench/`` section 5), so a table too large for the server would
end its worker with an out-of-memory kill. Past the limit the table is cut instead to a sample
stratified by the target (every class keeps its share), and the Data page says so: the limit,
its setting, how many rows were kept. The limit is the smaller of

* ``TRAINBOARD_SAMPLE_ROWS`` rows (default ``DEFAULT_ROWS``), and
* the rows whose estimated peak fits in ``TRAINBOARD_JOB_MEMORY_MB`` (default: a quarter of
  the machine's memory, since a few jobs and the server share it).

Both are read when a table is prepared, so the Data page, the plan and the job agree; both are
``core.limits`` entries (the one home of the server's limits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.limits import JOB_MEMORY_MB, SAMPLE_ROWS

ROWS_ENV, MEMORY_ENV, DEFAULT_ROWS = SAMPLE_ROWS.env, JOB_MEMORY_MB.env, SAMPLE_ROWS.default
#: A job's peak memory over the loaded table's own size (bench section 5, the 1M-row CSV's 174 MB
#: table: 3.2× over the worker's imports after the fixes of issue #15; kept with headroom, since
#: wide text tables and the contest weigh more).
PEAK_PER_TABLE = 5.0


@dataclass(frozen=True)
class RowLimit:
    """The rows a job may train on, and the setting that decides it (for the notice)."""

    rows: int
    setting: str  # the environment variable that set it
    why: str  # "rows" or "memory"


def _machine_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20)
    except (ValueError, OSError, AttributeError):  # not on this system: no memory-based limit
        return 0


def row_limit(table_bytes: int, n_rows: int, env: Mapping[str, str] | None = None) -> RowLimit:
    """The limit for a table of ``n_rows`` rows taking ``table_bytes`` in memory."""
    env = os.environ if env is None else env
    by_rows = RowLimit(SAMPLE_ROWS.value(env), ROWS_ENV, "rows")
    memory_mb = JOB_MEMORY_MB.value(env) or _machine_memory_mb() // 4
    if not memory_mb or n_rows <= 0 or table_bytes <= 0:
        return by_rows
    per_row = PEAK_PER_TABLE * table_bytes / n_rows
    by_memory = RowLimit(max(int(memory_mb * 2**20 / per_row), 1), MEMORY_ENV, "memory")
    return by_memory if by_memory.rows < by_rows.rows else by_rows


def sample_notice(n_rows: int, kept: int, limit: RowLimit, target: str, task: str) -> str:
    """The Data page's words for a sampled table."""
    if limit.why == "memory":
        what = (f"more than a job can train on within its memory limit ({limit.setting}, "
                f"{limit.rows:,} rows of this table)")
    else:
        what = f"more than the limit of {limit.rows:,} rows a job trains on ({limit.setting})"
    how = f"stratified by '{target}', so each class keeps its share" if task != "regression" else "drawn at random"
    return (f"This table has {n_rows:,} rows, {what}: the model learns from a sample of {kept:,} rows, {how}. "
            f"Set {limit.setting} to change the limit.")
