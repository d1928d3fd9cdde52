"""The server's limits on what users may load and run: one home, each set by an environment variable.

A limit is read when it is checked (so a test or an operator can change it without a restart
of anything but the checking code) and names itself and its setting when it is exceeded:
"… the limit is 500 MB (set TRAINBOARD_MAX_TABLE_MB to change it)". The README lists them.
The upload size the browser may send at all is Streamlit's ``server.maxUploadSize`` in
``.streamlit/config.toml``; these limits apply on top of it, on the server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One limit: what it bounds (in words), its environment variable and its default."""

    what: str
    env: str
    default: int

    def value(self, env: Mapping[str, str] | None = None) -> int:
        """The limit now: the environment variable if it is a positive whole number, else the default."""
        raw = (os.environ if env is None else env).get(self.env, "").strip().replace("_", "")
        try:
            number = int(raw)
        except ValueError:
            return self.default
        return number if number > 0 else self.default

    @property
    def setting(self) -> str:
        """The words a message ends with, so the operator knows which knob to turn."""
        return f"set {self.env} to change it"


TABLE_MB = Limit("table file size in MB", "TRAINBOARD_MAX_TABLE_MB", 500)
ROWS = Limit("rows in a table", "TRAINBOARD_MAX_ROWS", 5_000_000)
COLUMNS = Limit("columns in a table", "TRAINBOARD_MAX_COLUMNS", 20_000)
IMAGES = Limit("files in an image upload", "TRAINBOARD_MAX_IMAGES", 50_000)
IMAGES_MB = Limit("unpacked size of an image upload in MB", "TRAINBOARD_MAX_IMAGES_MB", 1024)
JOBS = Limit("training jobs running at once", "TRAINBOARD_MAX_JOBS", 0)  # 0: half the cores (the backend's own)
SESSION_DISK_MB = Limit("disk space per browser session in MB", "TRAINBOARD_SESSION_DISK_MB", 2048)
#: Past these a table is not refused but cut to a stratified sample (``core.sample_limit``).
SAMPLE_ROWS = Limit("rows a job trains on (more: a stratified sample)", "TRAINBOARD_SAMPLE_ROWS", 2_000_000)
#: 0: the job's share of the cores; 1 fits a contest's folds one after another (``core.fold_pool``).
FOLD_PROCESSES = Limit("contest folds of a small table fitted at once", "TRAINBOARD_FOLD_PROCESSES", 0)
JOB_MEMORY_MB = Limit("memory one job may plan for in MB", "TRAINBOARD_JOB_MEMORY_MB", 0)  # 0: a quarter of the machine's

ALL = (TABLE_MB, ROWS, COLUMNS, IMAGES, IMAGES_MB, JOBS, SESSION_DISK_MB, SAMPLE_ROWS, FOLD_PROCESSES, JOB_MEMORY_MB)


def max_jobs(env: Mapping[str, str] | None = None) -> int | None:
    """Concurrent jobs for the job manager's backend; None lets it choose (half the cores)."""
    return JOBS.value(env) or None
