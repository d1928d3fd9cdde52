"""Training jobs in worker processes (DESIGN.md §5).

Why processes: OpenMP (scikit-learn's boosting, torch) throttles itself once several threads of
one process have run parallel regions — HGB on 100k rows went from 1.71 s to 6.79 s in a second
thread — and a Streamlit server runs every session in its own thread. Worker processes also
isolate crashes and memory and can be killed for a hard stop.

``JobManager``: N long-lived ``spawn``ed workers that import the heavy libraries once; a FIFO
queue beyond N; per job an append-only event log; graceful cancel (the trainers' stop flag, the
best model is saved) then a hard kill after a grace period; a crashed worker fails only its job
and is respawned; an optional wall-clock cap per job. ``InlineJobs`` runs the same job function
in the calling thread behind the same interface, for the CLI and fast tests.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from core.device import cpu_threads
from core.events import Event, RunFinished

#: After this many workers in a row die while starting, the manager stops respawning them.
MAX_FAILED_STARTS = 3
START_FAILED = ("The training workers cannot start on this server, so nothing can be trained. This is a problem "
                "with the installation, not with your data; the server log says why.")

State = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


@dataclass
class Job:
    """A job as the server sees it. ``events`` only ever grows (pages read it while it grows)."""

    job_id: str
    spec: Any  # core.pipeline.JobSpec
    owner: str = ""
    state: State = "queued"
    events: list[Event] = field(default_factory=list)
    run_dir: str | None = None
    error: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: float | None = None
    position: int = 0  # 1-based place in the queue while queued

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


def _limit_threads(threads: int) -> None:
    """Keep a worker to its share of the cores (OpenMP, BLAS and torch alike)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    import torch

    torch.set_num_threads(threads)


def _worker_main(inbox, outbox, stop, threads: int, preload: bool) -> None:
    """A worker process: import once, then run jobs from ``inbox`` until it gets ``None``."""
    if preload:  # pay the ~4 s of imports once per worker, not once per job
        import pandas  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        import torch  # noqa: F401

        import core.pipeline  # noqa: F401
    _limit_threads(threads)
    outbox.put(("ready", None, None))
    while True:
        item = inbox.get()
        if item is None:
            return
        job_id, spec, kind = item
        stop.clear()
        try:
            if kind == "call":  # a test hook: run an arbitrary picklable callable
                spec(lambda e, j=job_id: outbox.put(("event", j, e)), stop)
                outbox.put(("done", job_id, None))
                continue
            from core.errors import TrainboardError
            from core.pipeline import run_job

            run_dir = run_job(spec, lambda e, j=job_id: outbox.put(("event", j, e)), stop)
            outbox.put(("done", job_id, str(run_dir)))
        except TrainboardError as err:
            outbox.put(("failed", job_id, str(err)))
        except BaseException as err:  # a bug: keep the worker alive; words for the page, detail for the log
            traceback.print_exc()
            outbox.put(("failed", job_id, f"Training failed unexpectedly ({type(err).__name__}: {err}). "
                                          "This is a bug in Trainboard, not in your data; the server log has details."))
        finally:
            from core.memory import release_freed_memory

            release_freed_memory()  # an idle worker should not sit on its last job's peak


class _Worker:
    """One worker process with its own channels (a killed worker can only break its own queue)."""

    def __init__(self, ctx, threads: int, preload: bool) -> None:
        self.inbox = ctx.Queue()
        self.outbox = ctx.Queue()
        self.stop = ctx.Event()
        self.process = ctx.Process(target=_worker_main, args=(self.inbox, self.outbox, self.stop, threads, preload),
                                   daemon=True, name="trainboard-worker")
        self.process.start()
        self.job: Job | None = None
        self.ready = False

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


class JobManager:
    """Runs ``JobSpec`` jobs on a bounded pool of worker processes.

    Parameters
    ----------
    workers: how many jobs run at once (default: one per two cores).
    grace_s: after a cancel, how long the trainer may take to stop and save before a hard kill.
    max_seconds: wall-clock cap per job (graceful stop, then hard kill); None for no cap.
    idle_ttl_s: cancel an owner's unfinished jobs when the owner has not called ``touch`` for this
        long (a browser tab left behind without closing its session); None never does.
    """

    def __init__(self, workers: int | None = None, *, grace_s: float = 10.0, max_seconds: float | None = None,
                 idle_ttl_s: float | None = None, preload: bool = True, start_method: str = "spawn") -> None:
        cores = cpu_threads()
        self.n_workers = workers or max(1, cores // 2)
        self.threads = max(1, cores // self.n_workers)
        self.grace_s = grace_s
        self.max_seconds = max_seconds
        self.idle_ttl_s = idle_ttl_s
        self._seen: dict[str, float] = {}
        self._preload = preload
        self._ctx = mp.get_context(start_method)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._pending: list[Job] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._failed_starts = 0  # workers in a row that died before they were ready
        self._workers = [self._spawn() for _ in range(self.n_workers)]
        self._wake = threading.Event()
        self._monitor = threading.Thread(target=self._run_monitor, daemon=True, name="trainboard-jobs")
        self._monitor.start()

    # ------------------------------------------------------------------ public

    def submit(self, spec: Any, owner: str = "", kind: str = "job") -> str:
        """Queue a job; returns its id. ``kind="call"`` runs ``spec(emit, stop)`` instead (tests)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            job = Job(job_id=f"job-{next(self._ids)}", spec=spec, owner=owner)
            self._seen[owner] = time.time()
            job.kind = kind  # type: ignore[attr-defined]
            self._jobs[job.job_id] = job
            self._pending.append(job)
            self._renumber()
        self._wake.set()
        return job.job_id

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def touch(self, owner: str) -> None:
        """The owner is still there (a page of theirs ran or polled)."""
        self._seen[owner] = time.time()

    def cancel(self, job_id: str) -> None:
        """Queued: dropped at once. Running: asked to stop (its best model is saved), killed after
        ``grace_s`` if it has not finished by then."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.done:
                return
            if job.state == "queued":
                self._pending.remove(job)
                self._finish(job, "cancelled", error=None)
                self._renumber()
                return
            job.cancel_requested = job.cancel_requested or time.time()
            worker = self._worker_of(job)
            if worker is not None:
                worker.stop.set()
        self._wake.set()

    def cancel_owner(self, owner: str) -> None:
        """Cancel every unfinished job of one session (when the session ends)."""
        for job in self.jobs(owner):
            if not job.done:
                self.cancel(job.job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job ends (tests and scripts; pages poll instead)."""
        deadline = None if timeout is None else time.time() + timeout
        job = self._jobs[job_id]
        while not job.done:
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"{job_id} still {job.state} after {timeout} s")
            time.sleep(0.05)
        return job

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            for job in list(self._pending):
                self._finish(job, "cancelled", error=None)
            self._pending.clear()
            for w in self._workers:
                if w.job is not None:
                    self._finish(w.job, "cancelled", error="The server shut down.")
                try:
                    w.inbox.put(None)
                except (OSError, ValueError):
                    pass
        self._wake.set()
        for w in self._workers:
            w.process.join(2)
            w.kill()

    # ------------------------------------------------------------------ internals

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.threads, self._preload)

    def _worker_of(self, job: Job) -> _Worker | None:
        return next((w for w in self._workers if w.job is job), None)

    def _renumber(self) -> None:
        for i, job in enumerate(self._pending, start=1):
            job.position = i

    def _finish(self, job: Job, state: State, error: str | None, run_dir: str | None = None) -> None:
        job.state, job.error, job.run_dir = state, error, run_dir
        job.finished = time.time()
        job.position = 0
        if not any(isinstance(e, RunFinished) for e in job.events[-1:]):
            job.events.append(RunFinished(run=run_dir, error=error, cancelled=state == "cancelled"))

    def _run_monitor(self) -> None:
        while not self._closed:
            self._wake.wait(0.05)
            self._wake.clear()
            self._cancel_idle()
            for i, worker in enumerate(list(self._workers)):
                self._drain(worker)
                with self._lock:
                    if self._closed:
                        return
                    self._check_health(i, worker)
                    self._dispatch(self._workers[i])

    def _cancel_idle(self) -> None:
        if self.idle_ttl_s is None:
            return
        now = time.time()
        for job in list(self._jobs.values()):
            if not job.done and job.cancel_requested is None and now - self._seen.get(job.owner, now) > self.idle_ttl_s:
                job.events.append(_message("Nobody has looked at this job for a long time: stopping it."))
                self.cancel(job.job_id)

    def _drain(self, worker: _Worker) -> None:
        """Move everything the worker sent into the jobs' logs."""
        while True:
            try:
                kind, job_id, payload = worker.outbox.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return
            if kind == "ready":
                worker.ready = True
                continue
            job = self._jobs.get(job_id)
            if job is None or job.done:
                continue
            if kind == "event":
                job.events.append(payload)
                continue
            with self._lock:
                worker.job = None
                if kind == "done":
                    state = "cancelled" if job.cancel_requested else "done"
                    self._finish(job, state, None, run_dir=payload)
                else:
                    self._finish(job, "failed", payload)
            self._wake.set()

    def _check_health(self, index: int, worker: _Worker) -> None:
        job = worker.job
        if not worker.process.is_alive():
            if self._failed_starts >= MAX_FAILED_STARTS:
                return  # given up on this worker already
            if job is not None:
                self._drain(worker)
            self._failed_starts = 0 if worker.ready else self._failed_starts + 1
            if worker.job is not None:
                self._finish(worker.job, "failed",
                             "The training process stopped unexpectedly (it may have run out of memory). "
                             "Try a smaller file or a simpler model." if worker.ready else START_FAILED)
                worker.job = None
            worker.kill()
            if self._failed_starts >= MAX_FAILED_STARTS:  # it would only die again: stop, and say so
                for queued in list(self._pending):
                    self._finish(queued, "failed", START_FAILED)
                self._pending.clear()
                return
            self._workers[index] = self._spawn()
            return
        if job is None:
            return
        now = time.time()
        if self.max_seconds is not None and job.started and now - job.started > self.max_seconds \
                and job.cancel_requested is None:
            job.cancel_requested = now
            worker.stop.set()
            job.events.append(_message(f"The time limit of {self.max_seconds:g} s was reached: stopping."))
        if job.cancel_requested is not None and now - job.cancel_requested > self.grace_s:
            worker.job = None
            worker.kill()
            self._finish(job, "cancelled", "Stopped by force: training did not stop in time, so nothing was saved.")
            self._workers[index] = self._spawn()

    def _dispatch(self, worker: _Worker) -> None:
        if self._failed_starts >= MAX_FAILED_STARTS:
            for queued in list(self._pending):
                self._finish(queued, "failed", START_FAILED)
            self._pending.clear()
            return
        if worker.job is not None or not self._pending or not worker.process.is_alive():
            return
        job = self._pending.pop(0)
        self._renumber()
        job.state, job.started = "running", time.time()
        worker.job = job
        worker.inbox.put((job.job_id, job.spec, getattr(job, "kind", "job")))


def _message(text: str) -> Event:
    from core.events import Message

    return Message("warning", text)


class InlineJobs:
    """The same interface as ``JobManager``, running each job in the calling thread at submit.

    For the CLI and fast tests: no processes, no queue; ``submit`` returns when the job is done.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._stops: dict[str, threading.Event] = {}

    def submit(self, spec: Any, owner: str = "", kind: str = "job") -> str:
        from core.errors import TrainboardError
        from core.pipeline import run_job

        job = Job(job_id=f"inline-{next(self._ids)}", spec=spec, owner=owner, state="running", started=time.time())
        self._jobs[job.job_id] = job
        stop = self._stops.setdefault(job.job_id, threading.Event())
        try:
            if kind == "call":
                spec(job.events.append, stop)
                job.state = "done"
            else:
                job.run_dir = str(run_job(spec, job.events.append, stop))
                job.state = "cancelled" if stop.is_set() else "done"
        except TrainboardError as err:
            job.state, job.error = "failed", str(err)
        job.finished = time.time()
        return job.job_id

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def cancel(self, job_id: str) -> None:
        if job_id in self._stops:
            self._stops[job_id].set()

    def cancel_owner(self, owner: str) -> None:
        for job in self.jobs(owner):
            self.cancel(job.job_id)

    def touch(self, owner: str) -> None:
        pass

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        return self._jobs[job_id]

    def shutdown(self) -> None:
        pass
