"""A browser session's end (ui.state): a disconnect waits a grace for the browser to come back; then
the session's jobs are cancelled and its uploads deleted, unless it reconnected."""

from __future__ import annotations

import time

import pytest

from core.jobs import InlineBackend, JobManager
from tests.core import job_bodies as body
from ui import state


@pytest.fixture
def manager(monkeypatch):
    jobs = JobManager(InlineBackend(slots=1), grace_s=1.0)
    monkeypatch.setattr(state, "job_manager", lambda: jobs)
    yield jobs
    jobs.shutdown()


def a_session_with_a_job(manager) -> tuple[state.SessionInfo, str]:
    info = state.SessionInfo()
    (info.upload_dir / "abc").mkdir()
    (info.upload_dir / "abc" / "table.csv").write_text("a,b\n1,2\n")
    return info, manager.submit(body.counting, kind="call", owner=info.owner)


def test_a_browser_gone_for_the_grace_loses_its_jobs_and_uploads(manager):
    info, job_id = a_session_with_a_job(manager)
    state._end_if_gone(info, gone_at=time.time())
    assert manager.wait(job_id, timeout=10).state == "cancelled"
    assert not info.upload_dir.exists()


def test_a_browser_that_came_back_keeps_its_jobs_and_uploads(manager):
    info, job_id = a_session_with_a_job(manager)
    gone_at = time.time()
    info.connected_at = gone_at + 1.0  # it reconnected within the grace
    state._end_if_gone(info, gone_at)
    assert manager.get(job_id).state == "running" and (info.upload_dir / "abc" / "table.csv").is_file()
    state.release_session(info)  # its real end, later


def test_a_disconnect_ends_the_session_only_after_the_grace(manager, monkeypatch):
    monkeypatch.setattr(state, "DISCONNECT_GRACE_S", 0.3)
    info, job_id = a_session_with_a_job(manager)
    state._disconnected(info)  # what Streamlit's release of the session's connection calls
    assert manager.get(job_id).state == "running" and info.upload_dir.exists()
    assert manager.wait(job_id, timeout=10).state == "cancelled"
    deadline = time.time() + 5
    while info.upload_dir.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not info.upload_dir.exists()
