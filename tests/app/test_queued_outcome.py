"""A session whose job waits behind another's (the server's one slot taken) sees its place, then its
outcome; and the page's run that draws the outcome registers no fragment at all, so a browser's
late timer request has nothing to revive (ui.widgets._live_status says why: Streamlit then starts a
new script runner and drops that run's unsent messages, and the five-browser soak lost an outcome so)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from core.device import cpu_device
from core.jobs import InlineBackend, JobManager
from ui import state, widgets

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def manager(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINBOARD_RUNS", str(tmp_path / "runs"))
    jobs = JobManager(InlineBackend(slots=1), grace_s=1.0)
    monkeypatch.setattr(state, "job_manager", lambda: jobs)
    monkeypatch.setattr(widgets, "_device_probe", lambda: {"device": cpu_device()})  # answered: nothing pending
    yield jobs
    jobs.shutdown()


@pytest.fixture
def fragments(monkeypatch) -> list[tuple[str, float | None]]:
    """Every fragment the app registers: (function name, its timer)."""
    made: list[tuple[str, float | None]] = []
    real = streamlit.fragment

    def recording(func=None, *, run_every=None, **kwargs):
        def wrap(f):
            made.append((f.__name__, run_every))
            return real(f, run_every=run_every, **kwargs)
        return wrap if func is None else wrap(func)

    monkeypatch.setattr(streamlit, "fragment", recording)
    return made


def test_a_job_queued_behind_another_shows_its_place_then_its_outcome_with_no_fragment_left(manager, fragments):
    release = threading.Event()
    other = manager.submit(lambda emit, stop: release.wait(60), kind="call", owner="another-session")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.button(key="sample-iris.csv").click().run()
    at.switch_page("app_pages/train.py").run()
    at.selectbox[0].select("linear").run()
    fragments.clear()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state[state.JOB]
    assert manager.get(job_id).state == "queued"
    assert any("position 1 in the queue" in i.value for i in at.info)
    assert len([name for name, every in fragments if every]) == 2, fragments  # the sidebar's and the live panel's

    release.set()
    assert manager.wait(other, timeout=60).state == "done"
    assert manager.wait(job_id, timeout=120).state == "done"
    fragments.clear()
    at.run()  # the run a poll causes once the job has ended
    assert not at.exception, at.exception
    assert any(s.value.startswith("Finished. Model: LogisticRegression") for s in at.success)
    assert "**Job:** finished" in [m.value for m in at.sidebar.markdown]
    assert fragments == []  # nothing left for a late timer request to find
