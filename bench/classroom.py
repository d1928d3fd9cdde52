"""Section 10: a simulated classroom — 30 sessions submitting small jobs at once, against (a) one
local server (worker processes, as ``make run`` starts it) and (b) a local Ray cluster with more
worker slots (``core.jobs.ray_local``: a head and two worker nodes).

Each session submits one real job — a linear model on a bundled table (``iris.csv``, the size of
a class exercise) — through ``JobManager.submit`` within the first 3 s (seeded offsets), as a
class told "go" does. Per job: the queue wait (submitted → started), the run (started → ended);
for the class: the wall time until the last job ended. The Ray side also states its own cost:
seconds until the cluster is up and the first job could start, and the memory of every Ray
process (proportional set size, so shared pages count once).

Honest limits: this is one 2-core machine shared with other work. The cluster's "nodes" are
processes on the same two cores, so more slots cannot mean more compute: what the comparison
shows is the queueing (how long a student waits before anything happens) and Ray's overhead,
not the speed-up of real extra machines. ``python -m bench.classroom [--sessions N]`` runs it alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Config, Section, Table, log

SESSIONS = 30
QUICK_SESSIONS = 8
SPREAD_S = 3.0  # the sessions' submissions fall within this many seconds
RAY_NODE_CPUS = 2  # logical CPUs per cluster node: 3 nodes → 6 jobs at once


def classroom(manager: Any, sessions: int, runs_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Submit ``sessions`` jobs over ``SPREAD_S`` seconds, wait for all; waits, runs and wall time."""
    from core.pipeline import JobSpec
    from core.planner import Overrides

    offsets = sorted(random.Random(seed).uniform(0, SPREAD_S) for _ in range(sessions))
    spec = JobSpec(source=str(ROOT / "sample_data" / "iris.csv"), target="species", runs_dir=str(runs_dir),
                   overrides=Overrides(model="linear"))
    t0 = time.time()
    ids = []
    for i, offset in enumerate(offsets):
        time.sleep(max(0.0, t0 + offset - time.time()))
        ids.append(manager.submit(spec, owner=f"student-{i}"))
    jobs = [manager.wait(job_id, timeout=1800) for job_id in ids]
    failed = [j.error for j in jobs if j.state != "done"]
    return {"waits": [j.started - j.submitted for j in jobs], "runs": [j.finished - j.started for j in jobs],
            "wall": max(j.finished for j in jobs) - t0, "failed": failed, "slots": manager.backend.slots}


def ray_memory_mb() -> float:
    """Proportional set size of every Ray process on this machine (GCS, raylets, workers, agents)."""
    total_kb = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not any(mark in cmdline for mark in ("ray::", "raylet", "gcs_server", "ray/_private",
                                                    "ray/dashboard", "default_worker.py")):
                continue
            rollup = (proc / "smaps_rollup").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total_kb / 1024


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(cfg: Config, shared: dict[str, Any] | None = None) -> Section:
    from core.jobs import JobManager, ProcessBackend
    from core.jobs.ray_backend import RayBackend
    from core.jobs.ray_local import start_cluster

    sessions = QUICK_SESSIONS if cfg.quick else SESSIONS
    title = "10. A classroom: one server against a local Ray cluster"
    if importlib.util.find_spec("ray") is None:
        return Section(title, "Skipped: Ray is not installed (`pip install -r requirements-ray.txt`).")
    section = Section(title,
                      f"{sessions} sessions each submit one small real job (a linear model on iris.csv) "
                      f"within {SPREAD_S:g} s; queue wait = submitted → started, run = started → ended. "
                      "One 2-core machine: the cluster's nodes share its two cores, so this measures "
                      "queueing and Ray's overhead, not the speed-up of real extra machines.")
    runs = cfg.work / "classroom"
    results: dict[str, dict[str, Any]] = {}

    log(f"classroom: {sessions} sessions on one local server")
    local = JobManager(ProcessBackend(), grace_s=20)
    try:
        while local.backend.free() < local.backend.slots:
            time.sleep(0.1)
        results["one server (worker processes)"] = classroom(local, sessions, runs / "local")
    finally:
        local.shutdown()

    log("classroom: starting a local Ray cluster")
    t0 = time.time()
    cluster = start_cluster(workers=2, cpus=RAY_NODE_CPUS, gpu_node=False)
    up_s = time.time() - t0
    backend = RayBackend(cluster.address, init_kwargs={"log_to_driver": False})
    manager = JobManager(backend, grace_s=20)
    try:
        while not (backend.warm or backend.broken):
            time.sleep(0.1)
        ready_s = time.time() - t0
        idle_mb = ray_memory_mb()
        results["Ray cluster (3 nodes)"] = classroom(manager, sessions, runs / "ray")
        busy_mb = ray_memory_mb()
    finally:
        manager.shutdown()
        cluster.shutdown()

    table = Table(["backend", "jobs at once", "queue wait median / p90 / max", "run median",
                   "class wall time", "failed"])
    for name, r in results.items():
        waits = r["waits"]
        table.add(name, r["slots"], f"{statistics.median(waits):.1f} / {quantile(waits, 0.9):.1f} / "
                  f"{max(waits):.1f} s", f"{statistics.median(r['runs']):.1f} s", f"{r['wall']:.1f} s",
                  len(r["failed"]))
    section.tables.append(table)
    section.notes += [
        f"Ray's own start-up here: the cluster (head + 2 nodes) up in {up_s:.1f} s, the first job "
        f"could start (driver connected, code version checked on every node, a warm actor) after {ready_s:.1f} s.",
        f"Ray's own memory (PSS of its processes): {idle_mb:.0f} MB idle with a warm actor, "
        f"{busy_mb:.0f} MB just after the class.",
        "Each job on Ray starts its own actor (a fresh worker process on its node); a spare one is kept "
        "warm while a slot is free, so the first job waits for nothing, but a burst pays one actor start per job.",
    ]
    for name, r in results.items():
        if r["failed"]:
            section.notes.append(f"{name}: {len(r['failed'])} failed, e.g. {r['failed'][0]}")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.classroom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SESSIONS} sessions instead of {SESSIONS}")
    args = parser.parse_args()
    print(run(Config(quick=args.quick)).markdown())


if __name__ == "__main__":
    main()
