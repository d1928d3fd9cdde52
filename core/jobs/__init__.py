"""Training jobs: one manager, and backends for where a job runs (ARCHITECTURE.md, "Job backends").

* ``manager`` — ``JobManager`` and ``Job``: queue, event log, owners, cancel and hard stop, time cap.
* ``backend`` — the ``Backend`` contract between the manager and where jobs run.
* ``process`` — ``ProcessBackend``: spawned worker processes (the app).
* ``inline`` — ``InlineBackend``: threads of this process, or synchronous (page tests).

``make_job_manager`` picks the backend, in this one place: pages only see the manager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from core.jobs.backend import Backend
from core.jobs.inline import InlineBackend
from core.jobs.manager import FINAL_STATES, Job, JobManager
from core.jobs.process import ProcessBackend

__all__ = ["FINAL_STATES", "Backend", "InlineBackend", "Job", "JobManager", "ProcessBackend", "make_job_manager"]


def make_job_manager(env: Mapping[str, str] = os.environ) -> JobManager:
    """The server's job manager, configured from the environment.

    ``TRAINBOARD_INLINE_JOBS=1`` runs each job to its end inside ``submit`` (page tests);
    otherwise jobs run in worker processes. A cluster backend would be chosen here as well.
    ``TRAINBOARD_STOP_GRACE_S``, ``TRAINBOARD_MAX_JOB_S`` and ``TRAINBOARD_IDLE_TTL_S`` set the
    grace period, the time cap and how long an owner may be away.
    """
    if env.get("TRAINBOARD_INLINE_JOBS") == "1":
        backend: Backend = InlineBackend(synchronous=True)
    else:
        backend = ProcessBackend()
    cap = env.get("TRAINBOARD_MAX_JOB_S")
    return JobManager(backend, grace_s=float(env.get("TRAINBOARD_STOP_GRACE_S", 20)),
                      max_seconds=float(cap) if cap else 3600.0,
                      idle_ttl_s=float(env.get("TRAINBOARD_IDLE_TTL_S", 1800)))
