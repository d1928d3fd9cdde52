"""Section 12: training beside an unrelated CPU-heavy process (issue #15, "under load").

A server child runs real jobs (``JobSpec`` → ``JobManager`` → a ``ProcessBackend`` worker →
``run_job``) for three workloads — boosting on 10,000 rows, the MLP on 30,000 rows (past the
one-thread cut-off, so it trains on the worker's threads), the CNN on 322 small images — each
alone and beside a single-threaded busy loop in another process, alternating. The figure is the
job's own fit time (the manifest's ``fit_s``): speed beside the busy loop ÷ speed alone, per
repeat. The worker settings compared: the libraries' defaults (OpenMP threads spin-wait for
work) and Trainboard's (``core.jobs.process.WORKER_ENV``), each in its own server child, since
OpenMP reads its settings once, when a worker loads it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, Config, Section, Spread, Table, log, ratios, run_child

#: Each workload must keep at least this share of its solo speed beside the busy loop.
TARGET = 0.40
IMAGES = 322
#: (label, data, JobSpec overrides): the fixed-size work each job does.
WORKLOADS = {
    "boosting": ("HGB, 10,000 rows", {"model": "hgb"}),
    "mlp": ("MLP, 30,000 rows, 4 epochs", {"model": "mlp", "max_epochs": 4}),
    "cnn": (f"CNN, {IMAGES} images (shapes), 3 epochs", {"model": "cnn", "max_epochs": 3}),
}
#: Worker settings: None is Trainboard's own (``WORKER_ENV``, its share of the cores).
POLICIES: dict[str, dict[str, Any]] = {
    "library defaults (before)": {"env": {}},
    "Trainboard's worker settings (after)": {"env": None},
}
BUSY_LOOP = "while True: pass"


def image_subset(n_images: int = IMAGES) -> str:
    """A zip of ``n_images`` of the bundled shapes, the same share of each class (written once)."""
    path = ROOT / "bench" / "_work" / f"shapes-{n_images}.zip"
    if path.exists():
        return str(path)
    folders = sorted(p for p in (ROOT / "sample_data" / "shapes").iterdir() if p.is_dir())
    per_class, extra = divmod(n_images, len(folders))
    partial = path.with_suffix(".part")
    with zipfile.ZipFile(partial, "w") as archive:
        for i, folder in enumerate(folders):
            for image in sorted(folder.iterdir())[:per_class + (i < extra)]:
                archive.write(image, f"{folder.name}/{image.name}")
    partial.replace(path)
    return str(path)


def _noop(emit, stop) -> None:
    """Warm-up job: returns once the worker has done its imports."""


def _start_busy_loop() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    time.sleep(0.3)  # let it take its core before the job starts
    return process


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from ``/proc`` (Linux)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_child(sources: dict[str, str], repeats: int, runs_dir: str, env: dict[str, str] | None = None,
                 threads: int | None = None, workloads: list[str] | None = None) -> dict[str, Any]:
    """Child task acting as the server: for each repeat and workload, one job alone and one beside
    the busy loop (their order swapped every other repeat); returns the fit seconds of each."""
    from core.jobs import JobManager, ProcessBackend
    from core.pipeline import JobSpec
    from core.planner import Overrides
    from core.run_record import load_manifest

    manager = JobManager(ProcessBackend(workers=1, env=env, threads=threads))
    chosen = {w: WORKLOADS[w] for w in workloads or WORKLOADS}
    fits: dict[str, dict[str, list[float]]] = {w: {"alone": [], "loaded": []} for w in chosen}
    cpu: dict[str, dict[str, list[float]]] = {w: {"alone": [], "loaded": []} for w in chosen}
    work: dict[str, list[Any]] = {w: [] for w in chosen}
    try:
        manager.wait(manager.submit(_noop, kind="call"), timeout=180)

        def spec(workload: str) -> JobSpec:
            return JobSpec(source=sources[workload], target="label" if workload != "cnn" else None,
                           runs_dir=runs_dir, overrides=Overrides(**WORKLOADS[workload][1]))

        for workload in chosen:  # untimed: a worker's first fit of a kind pays one-off set-up costs
            manager.wait(manager.submit(spec(workload)), timeout=600)
        for repeat in range(repeats):
            for workload in chosen:
                order = ("alone", "loaded") if repeat % 2 == 0 else ("loaded", "alone")
                for condition in order:
                    busy = _start_busy_loop() if condition == "loaded" else None
                    try:
                        worker = manager.backend.pids()[0]
                        cpu_before = _cpu_seconds(worker)
                        job_id = manager.submit(spec(workload))
                        job = manager.wait(job_id, timeout=600)
                        cpu[workload][condition].append(_cpu_seconds(worker) - cpu_before)
                    finally:
                        if busy is not None:
                            busy.kill()
                            busy.wait()
                    if job.error or not job.run_dir:
                        raise RuntimeError(f"{workload} job failed: {job.error}")
                    manifest = load_manifest(job.run_dir)
                    fits[workload][condition].append(manifest["timings"]["fit_s"])
                    params = manifest["model"]["params"]
                    work[workload].append(params.get("n_iter") or params.get("epochs_run") or params.get("epochs"))
        return {"fits": fits, "cpu": cpu, "work": work, "threads": manager.backend.threads}
    finally:
        manager.shutdown()


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    repeats = 1 if cfg.quick else 3
    section = Section(
        "12. Training beside a CPU-heavy process",
        "Real jobs through the JobManager's worker process (1 worker, its share of the cores; one untimed job of each "
        "workload first), each alone and "
        "beside `python -c 'while True: pass'` (one busy core), alternating. Speed = 1 / the manifest's "
        "`fit_s` (fixed work: same data, seed and rounds/epochs); the ratio is speed beside the loop ÷ speed "
        f"alone, per repeat ({repeats} repeats). Each worker setting runs in its own server process.")
    sources = {"boosting": run_child("data:make", n_rows=10_000, fmt="parquet").data["path"],
               "mlp": run_child("data:make", n_rows=30_000, fmt="parquet").data["path"],
               "cnn": image_subset()}
    runs_dir = cfg.work / "runs-under-load"
    table = Table(["worker settings", "workload", "fit s alone", "fit s beside the busy loop", "speed kept",
                   "target", "result"])
    section.tables.append(table)
    for name, policy in POLICIES.items():
        log(f"under load: {name}")
        shutil.rmtree(runs_dir, ignore_errors=True)
        data = run_child("under_load:server_child", sources=sources, repeats=repeats, runs_dir=str(runs_dir),
                         timeout=900, **policy).data
        judged = policy["env"] is None  # the target is on what the app ships
        for workload, (label, _) in WORKLOADS.items():
            fits = data["fits"][workload]
            kept = ratios(fits["alone"], fits["loaded"])  # speed loaded / speed alone = time alone / time loaded
            result = section.judge(f"speed kept beside a busy loop, {workload}", kept, TARGET,
                                   higher_is_better=True) if judged else "(reference)"
            table.add(name, label, Spread.of(fits["alone"]).text(), Spread.of(fits["loaded"]).text(),
                      kept.text(), f"≥ {TARGET:.2f}" if judged else "", result)
        section.notes.append(f"{name}: {data['threads']} threads per worker; work per job (rounds / epochs) "
                             + ", ".join(f"{w} {sorted(set(map(str, v)))}" for w, v in data["work"].items()) + ".")
    shutil.rmtree(runs_dir, ignore_errors=True)
    section.notes.append("Trainboard's worker environment: " + ", ".join(
        f"`{k}={v}`" for k, v in _worker_env().items()) + " (`core/jobs/process.py`).")
    return section


def _worker_env() -> dict[str, str]:
    from core.jobs.process import WORKER_ENV

    return dict(WORKER_ENV)


if __name__ == "__main__":  # pragma: no cover - a quick look by hand
    print(Path(image_subset()))
