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

from core import limits
from core.jobs.backend import Backend
from core.jobs.inline import InlineBackend
from core.jobs.manager import FINAL_STATES, Job, JobManager
from core.jobs.process import ProcessBackend

__all__ = ["FINAL_STATES", "Backend", "InlineBackend", "Job", "JobManager", "ProcessBackend", "make_job_manager"]


def make_job_manager(env: Mapping[str, str] = os.environ) -> JobManager:
    """The server's job manager, configured from the environment.

    ``TRAINBOARD_INLINE_JOBS=1`` runs each job to its end inside ``submit`` (page tests);
    ``TRAINBOARD_RAY_ADDRESS`` runs them on that Ray cluster (``core.jobs.ray_backend``; Ray is
    imported only then), with ``TRAINBOARD_RAY_CPUS_PER_JOB``, ``TRAINBOARD_RAY_MAX_JOBS``, ``TRAINBOARD_SHARED_DIR`` and
    ``TRAINBOARD_RAY_SHIP_CODE=1`` (send this code to the nodes); otherwise jobs run in worker processes.
    ``TRAINBOARD_STOP_GRACE_S``, ``TRAINBOARD_MAX_JOB_S`` and ``TRAINBOARD_IDLE_TTL_S`` set the
    grace period, the time cap and how long an owner may be away.
    """
    if env.get("TRAINBOARD_INLINE_JOBS") == "1":
        backend: Backend = InlineBackend(synchronous=True)
    elif env.get("TRAINBOARD_RAY_ADDRESS"):
        backend = ray_backend_from(env)
    else:
        backend = ProcessBackend(workers=limits.max_jobs(env))  # TRAINBOARD_MAX_JOBS, else half the cores
    cap = env.get("TRAINBOARD_MAX_JOB_S")
    return JobManager(backend, grace_s=float(env.get("TRAINBOARD_STOP_GRACE_S", 20)),
                      max_seconds=float(cap) if cap else 3600.0,
                      idle_ttl_s=float(env.get("TRAINBOARD_IDLE_TTL_S", 1800)))


def ray_backend_from(env: Mapping[str, str]) -> Backend:
    """The Ray backend as the environment configures it (imported here only: no Ray otherwise)."""
    from core.jobs.ray_backend import RayBackend, ship_code

    most = env.get("TRAINBOARD_RAY_MAX_JOBS")
    return RayBackend(env["TRAINBOARD_RAY_ADDRESS"], cpus_per_job=int(env.get("TRAINBOARD_RAY_CPUS_PER_JOB", 1)),
                      max_jobs=int(most) if most else None,
                      shared_dir=env.get("TRAINBOARD_SHARED_DIR") or None,
                      runtime_env=ship_code() if env.get("TRAINBOARD_RAY_SHIP_CODE") == "1" else None)
