"""Faults in the middle of work: a bug inside training, a worker killed, a disk that will not take
the run, a server that stops with jobs running. Each ends only what it hit, in words."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.errors import StorageError
from core.jobs import InlineBackend, JobManager, ProcessBackend, journal
from core.jobs.process import CRASHED
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.runs import list_runs
from tests.core import job_bodies as body
from tests.core.helpers import churn_like
from tests.core.test_jobs import wait_for  # one polling helper for the job tests

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def churn_csv(tmp_path):
    path = tmp_path / "churn.csv"
    churn_like(n=300).to_csv(path, index=False)
    return path


def linear(csv: Path, runs: Path) -> JobSpec:
    return JobSpec(source=str(csv), name="churn.csv", target="churned", runs_dir=str(runs),
                   overrides=Overrides(model="linear"))


def test_an_exception_inside_training_fails_that_job_in_words_and_in_the_log(churn_csv, tmp_path, monkeypatch,
                                                                              caplog):
    def broken_fit(*args, **kwargs):
        raise KeyError("a bug deep inside a model")

    manager = JobManager(InlineBackend(slots=1))
    try:
        monkeypatch.setattr("core.pipeline.fit_split", broken_fit)
        with caplog.at_level(logging.WARNING, logger="trainboard.jobs"):
            job = manager.wait(manager.submit(linear(churn_csv, tmp_path / "runs"), owner="ann"), timeout=60)
        assert job.state == "failed"
        assert "failed unexpectedly (KeyError: 'a bug deep inside a model')" in job.error
        assert "Traceback" not in job.error and "server log" in job.error
        assert any(job.job_id in r.getMessage() and "KeyError" in r.getMessage() for r in caplog.records)
        monkeypatch.undo()  # the server is still there: the next job trains
        assert manager.wait(manager.submit(linear(churn_csv, tmp_path / "runs")), timeout=60).state == "done"
    finally:
        manager.shutdown()


def test_a_worker_killed_mid_job_fails_only_that_job_and_the_next_one_runs():
    manager = JobManager(ProcessBackend(workers=1, preload=False), grace_s=1.0)
    try:
        doomed = manager.submit(body.counting, kind="call", owner="a")
        waiting = manager.submit(body.quick, kind="call", owner="b")  # queued behind it
        assert wait_for(lambda: len(manager.get(doomed).events) >= 3, timeout=60)
        os.kill(manager.backend.pids()[0], signal.SIGKILL)
        job = manager.wait(doomed, timeout=30)
        assert job.state == "failed" and job.error == CRASHED
        assert manager.wait(waiting, timeout=60).state == "done"
        assert manager.get(waiting).events[0].text == "ran"
    finally:
        manager.shutdown()


def _disk_fills_up(path, *args, **kwargs):
    Path(path).write_bytes(b"half a file")  # what a full disk leaves: a torn file
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["model", "predictions"])
def test_a_full_disk_while_saving_says_so_and_leaves_no_partial_run(churn_csv, tmp_path, monkeypatch, where):
    if where == "model":
        monkeypatch.setattr("joblib.dump", lambda model, path, **kw: _disk_fills_up(path))
    else:
        monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda frame, path, **kw: _disk_fills_up(path))
    runs = tmp_path / "runs"
    with pytest.raises(StorageError) as err:
        run_job(linear(churn_csv, runs))
    assert "No space left on device" in str(err.value) and str(runs) in str(err.value)
    assert "Nothing was saved" in str(err.value)
    assert [p.name for p in runs.iterdir()] == []  # no run, no half-written hidden folder


def test_an_unwritable_runs_folder_fails_the_job_with_the_folder_named(churn_csv, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # root ignores permissions; a file in the way stops anyone
    manager = JobManager(InlineBackend(slots=1))
    try:
        job = manager.wait(manager.submit(linear(churn_csv, blocked / "runs")), timeout=60)
    finally:
        manager.shutdown()
    assert job.state == "failed"
    assert "could not be saved in the runs folder" in job.error and str(blocked / "runs") in job.error
    assert "bug" not in job.error


def test_a_marker_lives_exactly_as_long_as_its_job(tmp_path):
    runs = tmp_path / "runs"
    manager = JobManager(InlineBackend(slots=1))
    try:
        first = manager.submit(body.Marked(str(runs)), kind="call")
        queued = manager.submit(body.Marked(str(runs), "second.csv"), kind="call")
        markers = sorted((runs / journal.FOLDER).iterdir())
        assert [json.loads(p.read_text())["name"] for p in markers] == ["marked.csv", "second.csv"]
        manager.cancel(queued)
        manager.cancel(first)
        manager.wait(first, timeout=10)
        assert list((runs / journal.FOLDER).iterdir()) == []
        assert journal.recover(runs) == []
    finally:
        manager.shutdown()


SERVER = """
import sys, time
from core.jobs import InlineBackend, JobManager
from tests.core.job_bodies import Marked

manager = JobManager(InlineBackend(slots=1))
manager.submit(Marked(sys.argv[1], "running.csv"), kind="call")
manager.submit(Marked(sys.argv[1], "queued.csv"), kind="call")
print("started", flush=True)
time.sleep(60)
"""


def test_after_a_server_dies_the_next_one_lists_finished_runs_and_says_what_was_lost(churn_csv, tmp_path):
    runs = tmp_path / "runs"
    finished = run_job(linear(churn_csv, runs))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(runs)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "started"
        assert journal.recover(runs) == []  # that server is alive: its jobs are not lost (yet)
        half = runs / f".tmp-churn-{server.pid}"  # a run it was writing when it died
        half.mkdir()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    lost = journal.recover(runs)
    assert [job.name for job in lost] == ["running.csv", "queued.csv"]
    assert not half.exists() and not list((runs / journal.FOLDER).iterdir())
    assert [r.path for r in list_runs(runs)] == [finished]  # the finished run, intact
    assert journal.recover(runs) == []  # said once
