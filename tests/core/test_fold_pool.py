"""core.fold_pool: a small table's comparison fits its folds in helper processes — the same scores
and events as fitting them one by one, Stop passed on, a helper's death survived, and helpers that
die with the job worker that started them."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import core.compare as cmp
from core.compare import compare
from core.events import CandidateSkipped, FoldEnded
from core.fold_pool import POOL_ROWS, executor, processes_for
from core.jobs import JobManager, ProcessBackend
from core.jobs.process import WORKER_ENV
from core.schema import prepare
from core.types import Candidate
from tests.core import job_bodies as body
from tests.core.helpers import churn_like, regression_table, table
from tests.core.test_jobs import wait_for

CANDIDATES = ("dummy", "linear", "hgb", "forest")  # under 1,000 rows the forest goes to the helpers too


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like(n=600)), target="churned")


def helper_pids() -> list[int]:
    return sorted(executor(2)._processes)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def scored(data, monkeypatch, processes: str, **kwargs):
    monkeypatch.setenv("TRAINBOARD_FOLD_PROCESSES", processes)
    events = []
    result = compare(data, candidates=CANDIDATES, n_folds=5, time_budget=300, on_event=events.append, keep=True,
                     **kwargs)
    return result, [(type(e).__name__, e.model, getattr(e, "fold", None)) for e in events
                    if isinstance(e, FoldEnded | CandidateSkipped)]


def test_how_many_folds_run_at_once(monkeypatch):
    monkeypatch.setenv("TRAINBOARD_FOLD_PROCESSES", "3")
    assert processes_for(500) == 3 and processes_for(POOL_ROWS) == 1  # a large table's fits use the threads
    monkeypatch.delenv("TRAINBOARD_FOLD_PROCESSES")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the job worker's share of the cores
    assert processes_for(500) == 2


def test_folds_in_helpers_score_and_report_exactly_as_one_by_one(churn, monkeypatch):
    alone, alone_events = scored(churn, monkeypatch, "1")
    here = []
    real = cmp._score_fold

    def spy(candidate, *rest):
        here.append(candidate.name)
        return real(candidate, *rest)

    monkeypatch.setattr(cmp, "_score_fold", spy)
    pooled, pooled_events = scored(churn, monkeypatch, "2")
    assert here == [] and len(helper_pids()) == 2  # every fold was fitted in a helper
    assert pooled_events == alone_events
    for one, other in zip(alone.entries, pooled.entries, strict=True):
        assert one.scores == other.scores and one.fold_settings == other.fold_settings
        np.testing.assert_array_equal(one.oof, other.oof)
        assert other.fitted.model is not None  # kept for the contest's delivery
    assert pooled.best == alone.best


def test_a_networks_folds_stay_in_the_job_worker():
    from core.models import get_family

    assert not get_family("mlp").folds_in_helpers(100)
    assert get_family("forest").folds_in_helpers(999) and not get_family("forest").folds_in_helpers(1_000)


def test_stop_reaches_a_fold_in_a_helper(monkeypatch):
    """A fold that would take minutes ends soon after Stop: the helper's fit reads the stop file."""
    monkeypatch.setenv("TRAINBOARD_FOLD_PROCESSES", "2")
    data = prepare(table(regression_table(n=4000)), target="y")
    slow = Candidate(name="hgb-slow", model="hgb", label="Slow boosting",
                     params={"max_iter": 100_000, "n_iter_no_change": 100_000, "learning_rate": 1e-4})
    stop, events, out = threading.Event(), [], {}

    def run():
        out["result"] = compare(data, candidates=("dummy", slow), n_folds=3, time_budget=600,
                                on_event=events.append, stop=stop)

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: any(isinstance(e, FoldEnded) and e.model == "dummy" and e.fold == 3 for e in events))
    time.sleep(1.0)  # the slow folds are growing in both helpers
    asked = time.perf_counter()
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and time.perf_counter() - asked < 10
    entry = next(e for e in out["result"].entries if e.model == "hgb-slow")
    assert entry.skipped == "stopped by you" and not entry.fit_s


def test_a_comparison_outlives_its_helpers(churn, monkeypatch):
    """Helpers killed mid-comparison: the folds they held are fitted in the job worker instead,
    with the same scores, and the next comparison starts new helpers."""
    alone, _ = scored(churn, monkeypatch, "1")
    killed = []

    def kill_helpers(event):
        if isinstance(event, FoldEnded) and event.model == "linear" and not killed:
            killed.extend(helper_pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    monkeypatch.setenv("TRAINBOARD_FOLD_PROCESSES", "2")
    survived = compare(churn, candidates=CANDIDATES, n_folds=5, time_budget=300, on_event=kill_helpers, keep=True)
    assert len(killed) == 2
    for one, other in zip(alone.entries, survived.entries, strict=True):
        assert one.scores == other.scores
    again, _ = scored(churn, monkeypatch, "2")
    assert set(helper_pids()).isdisjoint(killed)
    assert [e.scores for e in again.entries] == [e.scores for e in alone.entries]


def test_helpers_start_in_a_job_worker_and_die_with_it():
    """A job worker is daemonic (multiprocessing forbids it children) yet starts its helpers, and a
    hard stop that kills the worker kills them too: nothing keeps computing for a job that ended."""
    env = {**WORKER_ENV, "TRAINBOARD_FOLD_PROCESSES": "2"}
    manager = JobManager(ProcessBackend(workers=1, preload=False, env=env), grace_s=1.0)
    try:
        job_id = manager.submit(body.helpers_then_stubborn, kind="call")
        assert wait_for(lambda: any(getattr(e, "text", "") for e in manager.get(job_id).events), timeout=120)
        said = next(e.text for e in manager.get(job_id).events if getattr(e, "text", ""))
        folds, *helpers = (int(word) for word in said.split())
        assert folds == 9 and len(helpers) == 2 and all(alive(pid) for pid in helpers)
        manager.cancel(job_id)
        assert "force" in manager.wait(job_id, timeout=30).error
        assert wait_for(lambda: not any(alive(pid) for pid in helpers), timeout=10)
    finally:
        manager.shutdown()

