"""A small table's contest folds, fitted several at once in helper processes.

Below ``POOL_ROWS`` training rows every fit runs on one thread (thread start-up does not pay on a
short fit: ``core.models.tabular.SMALL_FOR_THREADS``), so a job holding two cores left one idle
through its whole contest. Threads of one process do not help: scikit-learn's Python and pandas
hold the GIL (two threads ran the Ames folds 0.84-1.12x as fast as one). Processes do: the same
folds in two processes ran 1.4-1.95x as fast (boosting 1.95x, the linear model 1.55x).

The helpers are loky's reusable executor (the process pool joblib itself runs on): started once per
job worker and kept while it is busy, each helper on one thread, dying with the worker that started
it (``PR_SET_PDEATHSIG``: a hard stop kills the worker, and its helpers with it). Stop reaches a
fold in a helper through a file (``FileStop``): the job's stop flag lives in the worker. Only
scikit-learn families go to the helpers; a network's fold runs in the worker itself (torch
there already, not in every helper). Scores are identical to fitting the folds one by one: the fits
are seeded, and on one thread either way.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.device import thread_share
from core.limits import FOLD_PROCESSES

#: From this many rows a fit uses every thread of the job (``SMALL_FOR_THREADS``): the folds run in
#: the worker one after another, as before.
POOL_ROWS = 20_000
#: A helper idle this long exits (the next contest starts it again: about 2 s of imports).
IDLE_S = 600
#: What each helper sets before its imports: one thread for every library, idle threads asleep.
HELPER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "OMP_WAIT_POLICY": "PASSIVE"}
STOP_FILE = "stop"


def processes_for(n_rows: int) -> int:
    """How many folds of a contest on ``n_rows`` rows run at once: the job's share of the cores
    (``TRAINBOARD_FOLD_PROCESSES`` overrides it; 1 fits them one by one), or 1 on a large table."""
    if n_rows >= POOL_ROWS:
        return 1
    return max(1, FOLD_PROCESSES.value() or thread_share())


class FileStop:
    """A stop flag a helper process can read: set once the file exists."""

    def __init__(self, path: str) -> None:
        self.path = path

    def is_set(self) -> bool:
        return os.path.exists(self.path)


class FoldPool:
    """``width`` helpers for one contest, and the file that tells their fits to stop."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._folder = Path(tempfile.mkdtemp(prefix="trainboard-folds-"))
        self.stop_path = str(self._folder / STOP_FILE)
        self._executor = executor(width)

    def submit(self, fn, *args) -> Any:
        return self._executor.submit(fn, *args)

    def stop(self) -> None:
        Path(self.stop_path).touch()

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


def executor(width: int):
    """The process's reusable helpers (loky keeps one executor a process and reuses it while its
    settings stay the same)."""
    from joblib.externals.loky import get_reusable_executor

    _allow_helpers()
    return get_reusable_executor(max_workers=width, timeout=IDLE_S, env=HELPER_ENV, initializer=_helper_started)


def warm(width: int) -> None:
    """Start the helpers and let them import what a fold needs, so the first contest does not pay it."""
    if width > 1:
        list(executor(width).map(_imported, range(width)))


def _allow_helpers() -> None:
    """A job worker is a daemonic process, which multiprocessing forbids to start children (it could
    not clean up after them). Its helpers die with it instead (``_helper_started``)."""
    process = mp.current_process()
    if process.daemon:
        process.daemon = False


def _helper_started() -> None:
    """In each helper: die with the process that started it, whatever ends that one."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() == 1:  # the parent died before prctl took hold
        os._exit(0)


def _imported(_: int) -> int:
    import core.compare  # noqa: F401  (the table families, scikit-learn, pandas)

    time.sleep(0.2)  # hold this helper so the next one is started too
    return os.getpid()
