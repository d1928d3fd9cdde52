"""core.jobs: the manager's contract on every backend, then what only worker processes do."""

import functools
import os
import time

import pytest

import core.jobs.process as process
from core.events import Message, RunFinished, RunStarted
from core.jobs import InlineBackend, JobManager, ProcessBackend, make_job_manager
from core.pipeline import JobSpec
from core.planner import Overrides
from tests.core import job_bodies as body
from tests.core.helpers import churn_like

GRACE_S = 1.0
# A stop request to a Ray actor crosses the driver's command thread, the actor's stop call and its
# report drain: on a loaded 2-core CI machine that took over a second (CI, 2026-12-01), so the
# Ray manager's grace is longer; the tests read each manager's own grace_s.
RAY_GRACE_S = 5.0


def wait_for(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def texts(job) -> list[str]:
    return [e.text for e in job.events if isinstance(e, Message)]


def ends_once_with_run_finished(job) -> bool:
    return isinstance(job.events[-1], RunFinished) and sum(isinstance(e, RunFinished) for e in job.events) == 1


@pytest.fixture(scope="module")
def process_manager():
    m = JobManager(ProcessBackend(workers=1, preload=False), grace_s=GRACE_S)
    yield m
    m.shutdown()


@pytest.fixture(scope="module")
def inline_manager():
    m = JobManager(InlineBackend(slots=1), grace_s=GRACE_S)
    yield m
    m.shutdown()


@pytest.fixture(scope="module")
def ray_manager(ray_cluster):
    from core.jobs.ray_backend import RayBackend

    backend = RayBackend(ray_cluster.address, max_jobs=1, preload=False, init_kwargs={"log_to_driver": False})
    m = JobManager(backend, grace_s=RAY_GRACE_S)
    assert wait_for(lambda: backend.warm or backend.broken, timeout=120), backend.status
    yield m
    m.shutdown()


@pytest.fixture(params=["process", "inline", pytest.param("ray", marks=pytest.mark.ray)])
def manager(request):
    """One shared manager per backend (a spawned worker costs seconds), idle again after each test."""
    m = request.getfixturevalue(f"{request.param}_manager")
    yield m
    for job in m.jobs():
        m.cancel(job.job_id)
    for job in m.jobs():
        m.wait(job.job_id, timeout=m.grace_s + 30)
    # Ray: the next test's job starts on a warm actor, as a worker process is warm (a loaded
    # machine takes seconds to start one, which the tests' 1 s grace period would count).
    assert wait_for(lambda: getattr(m.backend, "warm", True), timeout=60)


@pytest.fixture
def churn_csv(tmp_path):
    path = tmp_path / "churn.csv"
    churn_like(n=300).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- the contract, on every backend


def test_a_training_job_saves_its_run_and_logs_in_order(manager, churn_csv, tmp_path):
    spec = JobSpec(source=str(churn_csv), target="churned", runs_dir=str(tmp_path / "runs"),
                   overrides=Overrides(model="linear"))
    job = manager.wait(manager.submit(spec, owner="a"), timeout=120)
    assert job.state == "done", job.error
    assert os.path.isfile(os.path.join(job.run_dir, "manifest.json"))
    assert isinstance(job.events[0], RunStarted) and ends_once_with_run_finished(job)
    assert job.events[-1].run == job.run_dir


def test_a_user_error_fails_the_job_with_its_message(manager, churn_csv, tmp_path):
    job = manager.wait(manager.submit(JobSpec(source=str(churn_csv), target="nope", runs_dir=str(tmp_path))), 120)
    assert job.state == "failed" and "nope" in job.error
    assert "Traceback" not in job.error
    assert ends_once_with_run_finished(job) and job.events[-1].error == job.error


def test_a_bug_fails_the_job_in_words(manager):
    job = manager.wait(manager.submit(body.raising, kind="call"), timeout=60)
    assert job.state == "failed"
    assert "failed unexpectedly (ValueError: broken on purpose)" in job.error and "bug" in job.error
    assert ends_once_with_run_finished(job)


def test_cancel_stops_a_running_job_gracefully_and_the_log_only_grows(manager):
    job_id = manager.submit(body.counting, kind="call")
    job = manager.get(job_id)
    assert wait_for(lambda: len(job.events) >= 5)
    seen = list(job.events)
    for _ in range(5):  # a page polling (a rerun, a click elsewhere) changes nothing
        assert manager.get(job_id).state == "running"
        assert job.events[: len(seen)] == seen
        time.sleep(0.05)
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=10)
    assert job.state == "cancelled" and job.error is None
    assert texts(job)[-1] == "stopped"  # it stopped itself
    assert job.events[: len(seen)] == seen and ends_once_with_run_finished(job)


def test_a_job_that_ignores_stop_is_ended_after_the_grace_period(manager):
    job_id = manager.submit(body.stubborn, kind="call")
    assert wait_for(lambda: len(manager.get(job_id).events) >= 1)
    asked = time.time()
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=15)
    assert time.time() - asked >= manager.grace_s
    assert job.state == "cancelled" and "force" in job.error
    logged = len(job.events)
    time.sleep(0.3)  # it went on talking for seconds (inline: its thread does): none of it is kept
    assert len(job.events) == logged and ends_once_with_run_finished(job)
    assert manager.wait(manager.submit(body.quick, kind="call"), timeout=20).state == "done"  # its slot is free


def test_the_queue_is_fifo_with_positions_and_owners(manager):
    first = manager.submit(body.counting, kind="call", owner="a")
    second = manager.submit(body.quick, kind="call", owner="b")
    third = manager.submit(body.quick, kind="call", owner="b")
    assert manager.get(first).state == "running"  # a free slot takes a job at submit
    assert [manager.get(j).position for j in (first, second, third)] == [0, 1, 2]
    assert [j.job_id for j in manager.jobs("b")] == [second, third]
    manager.cancel(second)  # a queued job is dropped at once, and the queue moves up
    assert manager.get(second).state == "cancelled" and ends_once_with_run_finished(manager.get(second))
    assert manager.get(third).position == 1
    manager.cancel_owner("a")
    assert manager.wait(third, timeout=30).state == "done"
    assert manager.get(third).started >= manager.get(first).finished


def test_an_owner_who_stops_looking_loses_their_jobs(manager, monkeypatch):
    monkeypatch.setattr(manager, "idle_ttl_s", 0.5)
    here = manager.submit(body.counting, kind="call", owner="here")
    gone = manager.submit(body.quick, kind="call", owner="gone")  # queued behind it
    for _ in range(12):  # 1.2 s of a page polling for "here"
        manager.touch("here")
        time.sleep(0.1)
    assert manager.get(gone).state == "cancelled"
    assert "Nobody has looked at this job for a long time: stopping it." in texts(manager.get(gone))
    assert manager.get(here).state == "running"
    job = manager.wait(here, timeout=10)  # no more touches
    assert job.state == "cancelled" and "stopped" in texts(job)


def test_a_job_over_the_time_cap_is_stopped_gracefully(manager, monkeypatch):
    monkeypatch.setattr(manager, "max_seconds", 0.3)
    job = manager.wait(manager.submit(body.counting, kind="call"), timeout=10)
    assert job.state == "cancelled" and job.error is None
    assert texts(job)[-2:] == ["The time limit of 0.3 s was reached: stopping.", "stopped"]
    assert job.elapsed < 0.3 + manager.grace_s


# ---------------------------------------------------------------- what the app and page tests get


def test_inline_jobs_are_finished_when_submit_returns(churn_csv, tmp_path):
    jobs = make_job_manager({"TRAINBOARD_INLINE_JOBS": "1"})
    try:
        assert isinstance(jobs.backend, InlineBackend)
        job = jobs.get(jobs.submit(JobSpec(source=str(churn_csv), target="churned", runs_dir=str(tmp_path),
                                           overrides=Overrides(model="linear"))))
        assert job.state == "done" and job.run_dir and ends_once_with_run_finished(job)
        bad = jobs.get(jobs.submit(JobSpec(source=str(churn_csv), target="missing", runs_dir=str(tmp_path))))
        assert bad.state == "failed" and "missing" in bad.error
    finally:
        jobs.shutdown()


def test_the_environment_sets_the_limits():
    jobs = make_job_manager({"TRAINBOARD_INLINE_JOBS": "1", "TRAINBOARD_STOP_GRACE_S": "3",
                             "TRAINBOARD_MAX_JOB_S": "5", "TRAINBOARD_IDLE_TTL_S": "7"})
    defaults = make_job_manager({"TRAINBOARD_INLINE_JOBS": "1"})
    try:
        assert (jobs.grace_s, jobs.max_seconds, jobs.idle_ttl_s) == (3, 5, 7)
        assert (defaults.grace_s, defaults.max_seconds, defaults.idle_ttl_s) == (20, 3600, 1800)
    finally:
        jobs.shutdown()
        defaults.shutdown()


# ---------------------------------------------------------------- worker processes only


def test_a_hard_stop_replaces_the_worker_and_the_new_one_honours_an_early_stop(process_manager, monkeypatch):
    before = process_manager.backend.pids()
    stuck = process_manager.submit(body.stubborn, kind="call")
    assert wait_for(lambda: len(process_manager.get(stuck).events) >= 1)
    process_manager.cancel(stuck)
    assert "force" in process_manager.wait(stuck, timeout=15).error
    assert process_manager.backend.pids() != before
    # The new worker is still importing: a stop asked now must hold once it takes the job up.
    monkeypatch.setattr(process_manager, "grace_s", 60.0)
    early = process_manager.submit(body.counting, kind="call")
    process_manager.cancel(early)
    job = process_manager.wait(early, timeout=60)
    assert job.state == "cancelled" and job.error is None and texts(job) == ["stopped"]


def test_a_crash_fails_only_its_job(process_manager):
    job = process_manager.wait(process_manager.submit(body.crashing, kind="call"), timeout=30)
    assert job.state == "failed" and "stopped unexpectedly" in job.error
    assert ends_once_with_run_finished(job)
    assert process_manager.wait(process_manager.submit(body.quick, kind="call"), timeout=60).state == "done"


def test_workers_that_cannot_start_fail_jobs_in_words(monkeypatch):
    monkeypatch.setattr(process, "_worker_main", body.dies_at_start)
    manager = JobManager(ProcessBackend(workers=1, preload=False))
    try:
        job = manager.wait(manager.submit(body.quick, kind="call"), timeout=120)
        assert job.state == "failed" and "cannot start" in job.error
        assert wait_for(lambda: manager.backend.broken is not None, timeout=120)
        pids = manager.backend.pids()
        time.sleep(1.0)
        assert manager.backend.pids() == pids  # it gave up instead of respawning for ever
        late = manager.wait(manager.submit(body.quick, kind="call"), timeout=10)
        assert late.state == "failed" and "cannot start" in late.error
    finally:
        manager.shutdown()


def test_workers_run_with_sleeping_openmp_threads_and_arrow_on_malloc(process_manager):
    """Set before a worker's imports (OpenMP and Arrow read them once): spinning OpenMP threads
    collapsed a CNN beside a busy process (bench section 12); Arrow's mimalloc kept freed tables."""
    wanted = {**process.WORKER_ENV, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    job = process_manager.wait(process_manager.submit(functools.partial(body.settings, list(wanted)), kind="call"),
                               timeout=60)
    assert texts(job) == [" ".join(f"{k}={v}" for k, v in wanted.items())]


def test_a_worker_loads_torch_only_for_a_network_and_keeps_it_to_its_threads():
    """A preloaded worker holds the table libraries only: torch (~0.25 GB) in every worker made a
    million-row table's job peak at 6.7× the file. A job that trains a network loads it, saying so
    once, and torch keeps to the worker's share of the cores."""
    from core.models import LOADING

    manager = JobManager(ProcessBackend(workers=1, preload=True))
    try:
        job = manager.wait(manager.submit(body.torch_on_demand, kind="call"), timeout=180)
        assert job.state == "done", job.error
        assert texts(job) == ["torch at the start: False", "torch after boosting's needs: False", LOADING,
                              f"torch threads: {manager.backend.threads}"]
    finally:
        manager.shutdown()
