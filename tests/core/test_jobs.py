"""core.jobs: worker processes, queue, graceful and hard stop, crash isolation, the event log."""

import os
import time

import pytest

from core.events import EpochEnded, Message, RunFinished, RunStarted
from core.jobs import JobManager, ProcessBackend, make_job_manager
from core.pipeline import JobSpec
from core.planner import Overrides
from tests.core.helpers import churn_like


# Job bodies run in the worker: module-level so they pickle into a spawned process.
def counting(emit, stop):
    """A well-behaved trainer: one epoch every 50 ms until stopped (at most 10 s)."""
    for epoch in range(1, 200):
        if stop.is_set():
            emit(Message("info", "stopped"))
            return
        emit(EpochEnded(epoch=epoch, train_loss=1.0 / epoch, valid_loss=1.0 / epoch))
        time.sleep(0.05)


def stubborn(emit, stop):
    """A trainer that never looks at its stop flag."""
    emit(Message("info", "started"))
    time.sleep(60)


def crashing(emit, stop):
    emit(Message("info", "about to crash"))
    os._exit(3)


def quick(emit, stop):
    emit(Message("info", f"ran in {os.getpid()}"))


def wait_for(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def manager():
    m = JobManager(ProcessBackend(workers=1, preload=False), grace_s=1.0)
    yield m
    m.shutdown()


def test_real_training_job_saves_a_run(manager, tmp_path):
    path = tmp_path / "churn.csv"
    churn_like(n=300).to_csv(path, index=False)
    spec = JobSpec(source=str(path), target="churned", runs_dir=str(tmp_path / "runs"),
                   overrides=Overrides(model="linear"))
    job = manager.wait(manager.submit(spec, owner="a"), timeout=120)
    assert job.state == "done", job.error
    assert (tmp_path / "runs").is_dir() and os.path.isfile(os.path.join(job.run_dir, "manifest.json"))
    assert isinstance(job.events[0], RunStarted) and isinstance(job.events[-1], RunFinished)
    assert job.events[-1].run == job.run_dir


def test_user_error_fails_only_that_job_with_its_message(manager, tmp_path):
    path = tmp_path / "t.csv"
    churn_like(n=100).to_csv(path, index=False)
    job = manager.wait(manager.submit(JobSpec(source=str(path), target="nope", runs_dir=str(tmp_path))), 120)
    assert job.state == "failed" and "nope" in job.error
    assert "Traceback" not in job.error


def test_graceful_stop_and_log_is_append_only(manager):
    job_id = manager.submit(counting, kind="call")
    job = manager.get(job_id)
    assert wait_for(lambda: len(job.events) >= 5)
    seen = list(job.events)
    for _ in range(5):  # a page polling (a rerun, a click elsewhere) changes nothing
        assert manager.get(job_id).state == "running"
        assert job.events[: len(seen)] == seen
        time.sleep(0.05)
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=10)
    assert job.state == "cancelled"
    assert any(isinstance(e, Message) and e.text == "stopped" for e in job.events)  # it stopped itself


def test_hard_kill_after_grace_and_respawn(manager):
    before = manager.backend.pids()
    job_id = manager.submit(stubborn, kind="call")
    assert wait_for(lambda: len(manager.get(job_id).events) >= 1)
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=15)
    assert job.state == "cancelled" and "force" in job.error
    assert manager.backend.pids() != before
    after = manager.wait(manager.submit(quick, kind="call"), timeout=60)  # the new worker takes work
    assert after.state == "done"


def test_crash_fails_only_its_job(manager):
    job = manager.wait(manager.submit(crashing, kind="call"), timeout=30)
    assert job.state == "failed" and "stopped unexpectedly" in job.error
    nxt = manager.wait(manager.submit(quick, kind="call"), timeout=60)
    assert nxt.state == "done"


def test_queue_is_fifo_with_positions(manager):
    first = manager.submit(counting, kind="call", owner="a")
    second = manager.submit(quick, kind="call", owner="b")
    third = manager.submit(quick, kind="call", owner="b")
    assert wait_for(lambda: manager.get(first).state == "running")
    assert manager.get(second).position == 1 and manager.get(third).position == 2
    manager.cancel(third)  # a queued job is dropped at once
    assert manager.get(third).state == "cancelled"
    manager.cancel_owner("a")
    assert manager.wait(second, timeout=30).state == "done"
    assert manager.get(second).started >= manager.get(first).finished - 0.5


def test_inline_jobs_same_interface(tmp_path):
    path = tmp_path / "c.csv"
    churn_like(n=200).to_csv(path, index=False)
    jobs = make_job_manager({"TRAINBOARD_INLINE_JOBS": "1"})
    job = jobs.get(jobs.submit(JobSpec(source=str(path), target="churned", runs_dir=str(tmp_path),
                                       overrides=Overrides(model="linear"))))
    assert job.state == "done" and job.run_dir
    bad = jobs.get(jobs.submit(JobSpec(source=str(path), target="missing", runs_dir=str(tmp_path))))
    assert bad.state == "failed" and "missing" in bad.error


def test_jobs_of_an_idle_owner_are_cancelled():
    manager = JobManager(ProcessBackend(workers=1, preload=False), grace_s=1.0, idle_ttl_s=0.5)
    try:
        job_id = manager.submit(counting, kind="call", owner="gone")
        job = manager.wait(job_id, timeout=60)
        assert job.state == "cancelled"
        assert any(isinstance(e, Message) and "Nobody has looked" in e.text for e in job.events)
    finally:
        manager.shutdown()


def test_workers_that_cannot_start_fail_jobs_in_words(monkeypatch):
    import core.jobs.process as jobs

    monkeypatch.setattr(jobs, "_worker_main", _dies_at_start)
    manager = JobManager(ProcessBackend(workers=1, preload=False))
    try:
        job = manager.wait(manager.submit(quick, kind="call"), timeout=120)
        assert job.state == "failed" and "cannot start" in job.error
        assert wait_for(lambda: manager.backend._failed_starts == jobs.MAX_FAILED_STARTS, timeout=120)
        time.sleep(1.0)
        assert manager.backend._failed_starts == jobs.MAX_FAILED_STARTS  # it gave up instead of respawning forever
        late = manager.wait(manager.submit(quick, kind="call"), timeout=10)
        assert late.state == "failed" and "cannot start" in late.error
    finally:
        manager.shutdown()


def _dies_at_start(*args):
    os._exit(1)
