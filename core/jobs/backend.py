"""The seam between the job manager and where a job runs.

A backend runs jobs and reports what they do; the manager (``core.jobs.manager``) owns
everything else (queue, log, owners, cancel and grace, time cap). Backends see job ids and
specs, never ``Job`` records, so a backend on another machine needs nothing but this module.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.events import Event, StopFlag


@dataclass(frozen=True)
class Emitted:
    """An event a job sent, for its log."""

    job_id: str
    event: Event


@dataclass(frozen=True)
class Ended:
    """A job's function returned: its saved folder, or why it failed (words for the page)."""

    job_id: str
    run_dir: str | None = None
    error: str | None = None


Report = Emitted | Ended


class Backend(Protocol):
    """Where jobs run. The manager calls it from one thread at a time (under its lock).

    * ``slots``: how many jobs run at once; ``free()``: how many could start now.
    * ``start(job_id, spec, kind)``: run ``core.jobs.backend.run_one`` on it.
    * ``poll()``: the reports since the last poll, each job's in the order sent and its
      ``Ended`` last. Housekeeping (replacing a crashed worker) happens here too; a job lost
      that way ends with an ``Ended`` that says so.
    * ``request_stop(job_id)``: set the job's stop flag (the trainer stops and saves its best model).
    * ``hard_stop(job_id)``: end it now, whatever it is doing; nothing more is reported for it
      and its slot is free.
    * ``broken``: None, or why no job can start any more (words for the page).
    * ``close()``: stop everything; nothing is called after it.
    """

    slots: int

    @property
    def broken(self) -> str | None: ...

    def free(self) -> int: ...

    def start(self, job_id: str, spec: Any, kind: str) -> None: ...

    def poll(self) -> list[Report]: ...

    def request_stop(self, job_id: str) -> None: ...

    def hard_stop(self, job_id: str) -> None: ...

    def close(self) -> None: ...


def run_one(job_id: str, spec: Any, kind: str, emit: Callable[[Event], None], stop: StopFlag,
            catch: type[BaseException] = Exception) -> Ended:
    """Run one job and say how it ended, the same wherever it runs. ``kind="call"`` runs
    ``spec(emit, stop)``, an arbitrary callable (tests and benchmarks); otherwise ``spec`` is a
    ``core.pipeline.JobSpec``. What ``catch`` covers ends the job, not its runner."""
    from core.errors import TrainboardError

    try:
        if kind == "call":
            spec(emit, stop)
            return Ended(job_id)
        from core.pipeline import run_job

        return Ended(job_id, run_dir=str(run_job(spec, emit, stop)))
    except TrainboardError as err:
        return Ended(job_id, error=str(err))
    except catch as err:  # a bug: words for the page, detail for the log
        traceback.print_exc()
        return Ended(job_id, error=f"Training failed unexpectedly ({type(err).__name__}: {err}). "
                                   "This is a bug in Trainboard, not in your data; the server log has details.")
