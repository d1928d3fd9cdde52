"""A simulated class: many sessions at once on one job manager (worker processes), through ``core``
as the pages call it — each session loads its own table, trains, evaluates its run and predicts
with it; every fifth cancels.

Checked all along: running jobs never exceed the workers; queued jobs hold the places 1, 2, … in
the order they were submitted. At the end: every job finished or was cancelled, no session saw
another's data, events, runs or predictions, and the manager's process is back near its thread
count and memory from before.

``tests/core/test_soak.py`` runs a few sessions in this process. The soak
(``tests/e2e/test_class_browser.py``) runs 30 in a child process of their own while five browsers
use the app's server: ``python -m tests.core.simulated_class SESSIONS FOLDER`` warms up, prints
``ready``, waits for a line on its stdin, then runs the sessions and prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from core.checks import apply_checks
from core.datasets import load_table
from core.events import RunStarted
from core.jobs import JobManager, ProcessBackend
from core.pipeline import JobSpec, make_plan, prepare_data
from core.planner import Overrides
from core.run_record import report_from_run
from tests.core.helpers import churn_like

WORKERS = 2
JOB_TIMEOUT_S = 600
#: How far the manager's process may stay above its baseline once every session has ended.
THREADS_SLACK, MEMORY_SLACK_MB = 2, 150
READY = "ready"  # what the child prints once warmed up, before it waits for the start


def _status(key: str, pid: int | str = "self") -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(key))
    return int(line.split()[1])


def footprint(pid: int | str = "self") -> tuple[int, float]:
    """(threads, resident MB) of a process (this one by default: the server's stand-in)."""
    if pid == "self":
        gc.collect()
    return _status("Threads:", pid), _status("VmRSS:", pid) / 1024


def peak_mb(pid: int | str = "self") -> float:
    """The most resident memory the process has held since it started (``VmHWM``)."""
    return _status("VmHWM:", pid) / 1024


class Watcher:
    """Samples the manager's jobs under its lock (a consistent view) every few milliseconds and
    keeps whatever breaks the cap or the queue's order."""

    def __init__(self, manager: JobManager) -> None:
        self.manager, self.problems, self.most_running, self.samples = manager, [], 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with self.manager._lock:  # the manager changes state under it: a view without tearing
                jobs = self.manager.jobs()
                running = [j for j in jobs if j.state == "running"]
                queued = sorted((j for j in jobs if j.state == "queued"), key=lambda j: int(j.job_id.split("-")[1]))
            self.samples += 1
            self.most_running = max(self.most_running, len(running))
            if len(running) > self.manager.backend.slots:
                self.problems.append(f"{len(running)} running at once: {[j.job_id for j in running]}")
            if [j.position for j in queued] != list(range(1, len(queued) + 1)):
                self.problems.append(f"queue places {[(j.job_id, j.position) for j in queued]}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def most_at_once(jobs) -> int:
    """The most jobs whose [started, finished] overlapped, from their own timestamps."""
    edges = sorted([(j.started, 1) for j in jobs if j.started] + [(j.finished, -1) for j in jobs if j.started])
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def session(i: int, manager: JobManager, root: Path, cancel: bool) -> dict:
    """One simulated browser session: its own folder, table (its own size and column), jobs."""
    owner, folder = f"session-{i}", root / f"session-{i}"
    folder.mkdir()
    rows = 120 + i
    frame = churn_like(n=rows, seed=i).assign(**{f"only_in_{i}": range(rows)})
    csv = folder / f"table-{i}.csv"
    frame.to_csv(csv, index=False)
    prepared = apply_checks(prepare_data(load_table(csv), "churned", {}), {}, ())
    overrides = Overrides(model="linear")
    spec = JobSpec(source=str(csv), name=csv.name, target="churned", overrides=overrides,
                   plan=make_plan(prepared, overrides), runs_dir=str(root / "runs"))
    job_id = manager.submit(spec, owner=owner)
    if cancel:
        manager.cancel(job_id)
    job = manager.wait(job_id, timeout=JOB_TIMEOUT_S)
    seen = {"owner": owner, "i": i, "rows": rows, "train": job, "predict": None, "report": None}
    if job.state != "done":
        return seen
    seen["report"] = report_from_run(job.run_dir)  # Evaluate
    out = folder / "predictions" / "p.csv"
    predict = JobSpec(source=str(csv), name=csv.name, mode="predict", run_dir=job.run_dir, out=str(out),
                      runs_dir=str(root / "runs"))
    seen["predict"] = manager.wait(manager.submit(predict, owner=owner), timeout=JOB_TIMEOUT_S)
    seen["predictions"] = pd.read_csv(out) if out.is_file() else None
    seen["mine"] = manager.jobs(owner)
    return seen


def check_session(seen: dict, root: Path) -> None:
    """Everything a session got is its own."""
    i, rows, train = seen["i"], seen["rows"], seen["train"]
    assert train.state in ("done", "cancelled"), (train.job_id, train.state, train.error)
    started = [e for e in train.events if isinstance(e, RunStarted)]
    if train.state == "cancelled" and not started:
        return  # cancelled while queued: it never ran
    assert started and started[0].n_train + started[0].n_valid == rows  # its own rows, no one else's
    if train.state != "done":
        return
    run = seen["report"].run
    assert run.data.source == f"table-{i}.csv" and run.data.n_rows == rows
    assert f"only_in_{i}" in {c.name for c in run.data.columns}
    predict = seen["predict"]
    assert predict.state == "done", predict.error
    assert Path(predict.run_dir).is_relative_to(root / f"session-{i}")  # written in its own folder only
    assert len(seen["predictions"]) == rows
    assert {j.owner for j in seen["mine"]} == {seen["owner"]} and len(seen["mine"]) == 2


def soak(n_sessions: int, root: Path, wait_for_start=None) -> dict:
    """Warm up (one session, so the workers' and this process's imports are paid), take the
    baseline, call ``wait_for_start`` (if any), then run ``n_sessions`` at once and check them."""
    manager = JobManager(ProcessBackend(workers=WORKERS, preload=False), grace_s=5.0)
    try:
        warm = session(99, manager, root, cancel=False)
        check_session(warm, root)
        threads_before, rss_before = footprint()
        if wait_for_start is not None:
            wait_for_start()
        watcher = Watcher(manager)
        started, began = time.perf_counter(), time.time()
        with ThreadPoolExecutor(max_workers=n_sessions) as pool:
            seen = list(pool.map(lambda i: session(i, manager, root, cancel=i % 5 == 4), range(n_sessions)))
        wall, ended = time.perf_counter() - started, time.time()
        watcher.stop()
        for one in seen:
            check_session(one, root)
        jobs = manager.jobs()
        threads_after, rss_after = footprint()
        return {"problems": watcher.problems, "samples": watcher.samples, "most_running": watcher.most_running,
                "overlap": most_at_once(jobs), "jobs": len(jobs), "wall_s": wall, "window": (began, ended),
                "states": sorted({j.state for j in jobs}), "threads": (threads_before, threads_after),
                "rss_mb": (rss_before, rss_after), "peak_mb": peak_mb(),
                "cancelled": sum(j.state == "cancelled" for j in jobs)}
    finally:
        manager.shutdown()


def assert_soak(result: dict, n_sessions: int) -> None:
    print(f"\nsimulated: {n_sessions} sessions, {result['jobs']} jobs in {result['wall_s']:.0f} s, at most "
          f"{result['most_running']} running, threads {tuple(result['threads'])}, RSS MB "
          f"{result['rss_mb'][0]:.0f} → {result['rss_mb'][1]:.0f} (peak {result['peak_mb']:.0f}), "
          f"{result['samples']} samples")
    assert result["problems"] == [], result["problems"][:5]
    assert result["samples"] > 10
    assert result["overlap"] <= WORKERS and result["most_running"] <= WORKERS
    assert result["most_running"] == WORKERS  # the cap was reached, so it was really tested
    assert set(result["states"]) <= {"done", "cancelled"} and result["cancelled"] >= n_sessions // 5
    threads_before, threads_after = result["threads"]
    assert threads_after <= threads_before + THREADS_SLACK
    rss_before, rss_after = result["rss_mb"]
    assert rss_after <= rss_before + MEMORY_SLACK_MB


def main(argv: list[str]) -> int:
    """The child process of the soak: warm up, say ``ready``, wait for a line on stdin, run, print JSON."""
    n_sessions, root = int(argv[0]), Path(argv[1])

    def wait_for_start() -> None:
        print(READY, flush=True)
        sys.stdin.readline()

    result = soak(n_sessions, root, wait_for_start)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
