"""Jobs in worker processes: the app's backend.

Why processes: OpenMP (scikit-learn's boosting, torch) throttles itself once several threads of
one process have run parallel regions — HGB on 100k rows went from 1.71 s to 6.79 s in a second
thread — and a Streamlit server runs every session in its own thread. Worker processes also
isolate crashes and memory and can be killed for a hard stop.

N long-lived workers, started with ``spawn`` (never ``fork`` from the threaded server), import
the heavy libraries once and keep to their share of the cores. A worker that dies fails only its
job and is replaced, unless workers keep dying while they start.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
from collections.abc import Mapping
from typing import Any

from core.device import cpu_threads
from core.jobs.backend import Emitted, Ended, Report, run_one

#: After this many workers in a row die while starting, the backend stops replacing them.
MAX_FAILED_STARTS = 3
START_FAILED = ("The training workers cannot start on this server, so nothing can be trained. This is a problem "
                "with the installation, not with your data; the server log says why.")
CRASHED = ("The training process stopped unexpectedly (it may have run out of memory). "
           "Try a smaller file or a simpler model.")
READY = "ready"  # what a worker sends once its imports are done
#: Set in each worker before it imports scikit-learn or torch (OpenMP reads them once, when it
#: loads): threads that wait for work sleep instead of spinning. Spinning threads of a busy
#: machine hold on to a core someone else needs (bench section 12 measures the policies).
WORKER_ENV: Mapping[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def limit_threads(threads: int) -> None:
    """Keep a worker to its share of the cores (OpenMP, BLAS and torch alike). torch is not loaded
    yet in a worker (a job that trains a network loads it: ``core.models.ready``); its OpenMP pool
    takes its size from the environment when it loads, so that is set too."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def preload_libraries() -> None:
    """What a worker loads before its first job (seconds on 2 cores, paid once per worker, not per
    job): the table libraries. Not torch: its ~0.25 GB (with its lazily imported optimiser
    machinery) would sit in every worker, and under a million-row table's job it made the peak
    6.7× the file instead of 5×. A job that trains a network loads it (``core.models.ready``),
    once per worker, outside the contest's budget."""
    import pandas  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import core.pipeline  # noqa: F401


def _worker_main(inbox, outbox, stop, threads: int, preload: bool, env: Mapping[str, str]) -> None:
    """A worker process: import once, then run jobs from ``inbox`` until it gets ``None``."""
    os.environ.update(env)  # first: before anything loads OpenMP
    if preload:
        preload_libraries()
    limit_threads(threads)
    if preload:
        from core.fold_pool import processes_for, warm

        warm(processes_for(0))  # the helpers a small table's contest fits its folds in, started now
    from core.memory import release_freed_memory

    outbox.put(READY)
    while (item := inbox.get()) is not None:
        job_id, spec, kind = item
        # BaseException too: the worker outlives whatever its job raises.
        outbox.put(run_one(job_id, spec, kind, lambda e, j=job_id: outbox.put(Emitted(j, e)), stop,
                           catch=BaseException))
        release_freed_memory()  # an idle worker should not sit on its last job's peak


class _Worker:
    """One worker process with its own channels (a killed worker can only break its own queue)."""

    def __init__(self, ctx, threads: int, preload: bool, env: Mapping[str, str]) -> None:
        self.inbox = ctx.Queue()
        self.outbox = ctx.Queue()
        self.stop = ctx.Event()
        self.process = ctx.Process(target=_worker_main,
                                   args=(self.inbox, self.outbox, self.stop, threads, preload, dict(env)),
                                   daemon=True, name="trainboard-worker")
        self.process.start()
        self.job: str | None = None  # the id of the job it runs
        self.ready = False

    @property
    def free(self) -> bool:
        return self.job is None and self.process.is_alive()

    def drain(self) -> list[Report]:
        """What the worker sent so far; its job is off it once it has ended."""
        reports: list[Report] = []
        while True:
            try:
                item = self.outbox.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return reports
            if item == READY:
                self.ready = True
                continue
            if isinstance(item, Ended) and item.job_id == self.job:
                self.job = None
            reports.append(item)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(3)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(3)
        for q in (self.inbox, self.outbox):
            q.cancel_join_thread()
            q.close()


class ProcessBackend:
    """Jobs on a pool of worker processes.

    workers: how many jobs run at once (default: one per two cores).
    preload: import the heavy libraries when a worker starts (off in tests, for speed).
    env: environment variables each worker sets before its imports (default ``WORKER_ENV``).
    threads: each worker's threads (default: its share of the cores).
    """

    def __init__(self, workers: int | None = None, *, preload: bool = True, start_method: str = "spawn",
                 env: Mapping[str, str] | None = None, threads: int | None = None) -> None:
        cores = cpu_threads()
        self.slots = workers or max(1, cores // 2)
        self.threads = threads or max(1, cores // self.slots)
        self._env = WORKER_ENV if env is None else env
        self._preload = preload
        self._ctx = mp.get_context(start_method)
        self._failed_starts = 0  # workers in a row that died before they were ready
        self._workers = [self._spawn() for _ in range(self.slots)]

    @property
    def broken(self) -> str | None:
        return START_FAILED if self._failed_starts >= MAX_FAILED_STARTS else None

    def free(self) -> int:
        return sum(w.free for w in self._workers)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def start(self, job_id: str, spec: Any, kind: str) -> None:
        worker = next(w for w in self._workers if w.free)
        worker.job = job_id
        # The parent clears the flag, not the worker: a stop asked before the worker has taken
        # the job up still holds.
        worker.stop.clear()
        worker.inbox.put((job_id, spec, kind))

    def poll(self) -> list[Report]:
        reports: list[Report] = []
        for index, worker in enumerate(self._workers):
            alive = worker.process.is_alive()  # first: once it is dead, all it sent can be read
            if not alive and self.broken:
                continue  # given up on it already
            reports += worker.drain()
            if not alive:
                reports += self._replace(index)
        return reports

    def request_stop(self, job_id: str) -> None:
        for worker in self._workers:
            if worker.job == job_id:
                worker.stop.set()

    def hard_stop(self, job_id: str) -> None:
        for index, worker in enumerate(self._workers):
            if worker.job == job_id:
                worker.kill()
                self._workers[index] = self._spawn()

    def close(self) -> None:
        for w in self._workers:
            try:
                w.inbox.put(None)
            except (OSError, ValueError):
                pass
        for w in self._workers:
            w.process.join(2)
            w.kill()

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.threads, self._preload, self._env)

    def _replace(self, index: int) -> list[Report]:
        """A worker died: fail its job; start a new one unless they keep dying while starting."""
        worker = self._workers[index]
        self._failed_starts = 0 if worker.ready else self._failed_starts + 1
        lost = [] if worker.job is None else [Ended(worker.job, error=CRASHED if worker.ready else START_FAILED)]
        worker.kill()
        if not self.broken:
            self._workers[index] = self._spawn()
        return lost
