"""Jobs in this process: no spawn, no pickling (scripts, page tests, fast contract tests).

Threaded (the default): each job in a daemon thread, ``slots`` at once. Python cannot kill a
thread, so a hard stop *abandons* the job: its stop flag is set, nothing it sends afterwards is
kept and its slot is free at once, while the thread runs on until its function returns. That is
why the app runs jobs in processes, where a stuck job really ends.

Synchronous: ``start`` runs the job to its end in the caller's thread, so
``JobManager.submit`` returns a finished job. Page tests need this: an AppTest run executes a
page once and cannot wait for a thread. The caller's thread *is* the job then, so no cancel,
time cap or hard stop reaches it while it runs.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from core.jobs.backend import Emitted, Ended, Report, run_one


class InlineBackend:
    """Jobs in threads of this process, or run to their end in ``start`` (``synchronous``)."""

    def __init__(self, slots: int = 1, *, synchronous: bool = False) -> None:
        self.slots = slots
        self._synchronous = synchronous
        self._reports: queue.SimpleQueue[Report] = queue.SimpleQueue()  # job threads put, poll takes
        self._stops: dict[str, threading.Event] = {}  # the jobs that hold a slot

    @property
    def broken(self) -> str | None:
        return None

    def free(self) -> int:
        return self.slots - len(self._stops)

    def start(self, job_id: str, spec: Any, kind: str) -> None:
        stop = self._stops[job_id] = threading.Event()
        if self._synchronous:
            self._run(job_id, spec, kind, stop)
        else:
            threading.Thread(target=self._run, args=(job_id, spec, kind, stop), daemon=True,
                             name=f"trainboard-{job_id}").start()

    def poll(self) -> list[Report]:
        reports: list[Report] = []
        while True:
            try:
                report = self._reports.get_nowait()
            except queue.Empty:
                return reports
            if report.job_id not in self._stops:
                continue  # abandoned by a hard stop
            if isinstance(report, Ended):
                del self._stops[report.job_id]
            reports.append(report)

    def request_stop(self, job_id: str) -> None:
        if job_id in self._stops:
            self._stops[job_id].set()

    def hard_stop(self, job_id: str) -> None:
        stop = self._stops.pop(job_id, None)
        if stop is not None:
            stop.set()  # a job that looks late still ends sooner

    def close(self) -> None:
        for stop in self._stops.values():
            stop.set()
        self._stops.clear()

    def _run(self, job_id: str, spec: Any, kind: str, stop: threading.Event) -> None:
        self._reports.put(run_one(job_id, spec, kind, lambda e: self._reports.put(Emitted(job_id, e)), stop))
