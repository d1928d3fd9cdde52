"""The job manager: what every backend shares (ARCHITECTURE.md, "Job backends").

Ids and ``Job`` records; a FIFO queue beyond the backend's slots, with 1-based positions; per
job an append-only event log that always ends with ``RunFinished``; owners, who say they are
still there with ``touch`` and whose jobs are cancelled when they stop; graceful cancel (the
trainers' stop flag, the best model is saved) then a hard stop after a grace period; an
optional wall-clock cap per job. Where a job runs is the backend's (``core.jobs.backend``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from core.events import Event, Message, RunFinished
from core.jobs import journal
from core.jobs.backend import Backend, Emitted
from core.jobs.process import ProcessBackend

State = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
FORCED = "Stopped by force: training did not stop in time, so nothing was saved."
POLL_S = 0.05  # how often the monitor asks the backend what happened while a job is queued or running
IDLE_POLL_S = 1.0  # and with none (only worker housekeeping): an idle server costs next to nothing
LOG = logging.getLogger("trainboard.jobs")  # failed jobs, for the server log


@dataclass
class Job:
    """A job as the server sees it. ``events`` only ever grows (pages read it while it grows)."""

    job_id: str
    spec: Any  # core.pipeline.JobSpec, or a callable when kind == "call"
    owner: str = ""
    kind: str = "job"
    state: State = "queued"
    events: list[Event] = field(default_factory=list)
    run_dir: str | None = None
    error: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: float | None = None
    position: int = 0  # 1-based place in the queue while queued
    marker: Any = None  # its file in the runs folder until it ends (``core.jobs.journal``)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


class JobManager:
    """Runs jobs on a backend (default: worker processes, ``core.jobs.process.ProcessBackend``).

    Parameters
    ----------
    grace_s: after a cancel, how long the trainer may take to stop and save before a hard stop.
    max_seconds: wall-clock cap per job (graceful stop, then hard stop); None for no cap.
    idle_ttl_s: cancel an owner's unfinished jobs when the owner has not called ``touch`` for this
        long (a browser tab left behind without closing its session); None never does.
    """

    def __init__(self, backend: Backend | None = None, *, grace_s: float = 10.0, max_seconds: float | None = None,
                 idle_ttl_s: float | None = None) -> None:
        self.backend = backend if backend is not None else ProcessBackend()
        self.grace_s = grace_s
        self.max_seconds = max_seconds
        self.idle_ttl_s = idle_ttl_s
        self._seen: dict[str, float] = {}
        self._lock = threading.RLock()  # every backend call and state change holds it
        self._jobs: dict[str, Job] = {}
        self._pending: list[Job] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._wake = threading.Event()  # a submit wakes an idle monitor at once
        self._monitor = threading.Thread(target=self._run_monitor, daemon=True, name="trainboard-jobs")
        self._monitor.start()

    # ------------------------------------------------------------------ public

    def submit(self, spec: Any, owner: str = "", kind: str = "job") -> str:
        """Queue a job and start it if a slot is free; returns its id. ``kind="call"`` runs
        ``spec(emit, stop)`` instead (tests and benchmarks)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is shut down")
            job = Job(job_id=f"job-{next(self._ids)}", spec=spec, owner=owner, kind=kind)
            if getattr(spec, "runs_dir", None):  # a restarted server can say this job was lost
                job.marker = journal.job_started(spec.runs_dir, job.job_id, spec)
            self._seen[owner] = time.time()
            self._jobs[job.job_id] = job
            self._pending.append(job)
            self._renumber()
            self._step()
        self._wake.set()
        return job.job_id

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        return [j for j in list(self._jobs.values()) if owner is None or j.owner == owner]

    def touch(self, owner: str) -> None:
        """The owner is still there (a page of theirs ran or polled)."""
        self._seen[owner] = time.time()

    def cancel(self, job_id: str) -> None:
        """Queued: dropped at once. Running: asked to stop (its best model is saved), stopped by
        force after ``grace_s`` if it has not finished by then."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.done:
                return
            if job.state == "queued":
                self._pending.remove(job)
                self._finish(job, "cancelled", error=None)
                self._renumber()
            elif job.cancel_requested is None:
                job.cancel_requested = time.time()
                self.backend.request_stop(job_id)

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

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.set()
            for job in self._pending:
                self._finish(job, "cancelled", error=None, lost=True)
            self._pending.clear()
            for job in self._running():
                self._finish(job, "cancelled", error="The server shut down.", lost=True)
            self.backend.close()

    # ------------------------------------------------------------------ internals

    def _run_monitor(self) -> None:
        while not self._closed:
            busy = any(not job.done for job in list(self._jobs.values()))
            self._wake.wait(POLL_S if busy else IDLE_POLL_S)
            self._wake.clear()
            self._step()

    def _step(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._collect()
            self._cancel_idle()
            self._enforce_deadlines()
            self._dispatch()
            self._collect()  # a synchronous backend has run the whole job inside start

    def _running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state == "running"]

    def _renumber(self) -> None:
        for i, job in enumerate(self._pending, start=1):
            job.position = i

    def _finish(self, job: Job, state: State, error: str | None, run_dir: str | None = None,
                lost: bool = False) -> None:
        job.state, job.error, job.run_dir = state, error, run_dir
        job.finished = time.time()
        job.position = 0
        if not lost:  # a job the server's shutdown ends keeps its marker: the next server reports it
            journal.job_ended(job.marker)
        if state == "failed":
            LOG.warning("%s (%s) failed: %s", job.job_id, job.owner or "no owner", error)
        if not any(isinstance(e, RunFinished) for e in job.events[-1:]):
            job.events.append(RunFinished(run=run_dir, error=error, cancelled=state == "cancelled"))

    def _collect(self) -> None:
        """Move what the backend reported into the jobs' logs and states."""
        for report in self.backend.poll():
            job = self._jobs.get(report.job_id)
            if job is None or job.done:
                continue  # e.g. stopped by force, or the server shut down
            if isinstance(report, Emitted):
                job.events.append(report.event)
            elif report.error is not None:
                self._finish(job, "failed", report.error)
            else:
                self._finish(job, "cancelled" if job.cancel_requested else "done", None, run_dir=report.run_dir)

    def _cancel_idle(self) -> None:
        if self.idle_ttl_s is None:
            return
        now = time.time()
        for job in list(self._jobs.values()):
            if not job.done and job.cancel_requested is None and now - self._seen.get(job.owner, now) > self.idle_ttl_s:
                job.events.append(Message("warning", "Nobody has looked at this job for a long time: stopping it."))
                self.cancel(job.job_id)

    def _enforce_deadlines(self) -> None:
        """The time cap asks a job to stop; the grace period after any stop request ends it."""
        now = time.time()
        for job in self._running():
            if self.max_seconds is not None and job.cancel_requested is None and now - job.started > self.max_seconds:
                job.events.append(Message("warning", f"The time limit of {self.max_seconds:g} s was reached: stopping."))
                self.cancel(job.job_id)
            elif job.cancel_requested is not None and now - job.cancel_requested > self.grace_s:
                self.backend.hard_stop(job.job_id)
                self._finish(job, "cancelled", FORCED)

    def _dispatch(self) -> None:
        if self.backend.broken:  # nothing will ever start: say so rather than queue for ever
            for job in self._pending:
                self._finish(job, "failed", self.backend.broken)
            self._pending.clear()
            return
        while self._pending and self.backend.free() > 0:
            job = self._pending.pop(0)
            self._renumber()
            job.state, job.started, job.position = "running", time.time(), 0
            self.backend.start(job.job_id, job.spec, job.kind)
