"""Section 2: does the live chart slow training down?

As in the app: training runs in a ``JobManager`` worker process; the server process holds the
job's event log, and a thread there does what the Train page's fragment does twice a second —
``summarise(job.events)``, ``plots.loss_curve`` (and ``plots.step_curve``) and ``fig.to_json()``.
The figure is the worker's epoch time with that drawing going on vs without, jobs alternating on
the same worker.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from bench.common import Config, Section, Spread, Table, log, ratios, run_child

TARGET = 1.10
REDRAW_S = 0.5


def train_mlp(n_rows: int, epochs: int, threads: int | None, emit, stop) -> None:
    """Job body (runs in the worker): a fixed number of MLP epochs with events on. ``threads``
    overrides the worker's torch threads (for experiments; None keeps the JobManager's choice)."""
    import numpy as np
    import torch

    from core.models.mlp import TorchMLPClassifier

    if threads:
        torch.set_num_threads(threads)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 20)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] * X[:, 2] + rng.logistic(size=n_rows) > 0, "yes", "no")
    n_valid = n_rows // 10
    TorchMLPClassifier(max_epochs=epochs, patience=10**6, callback=emit, stop=stop).fit(
        X[n_valid:], y[n_valid:], X_val=X[:n_valid], y_val=y[:n_valid])


def _noop(emit, stop) -> None:
    """Warm-up job: returns once the worker has done its imports."""


class _Drawer:
    """The Train page's redraw loop, on a thread of the server process."""

    def __init__(self, job) -> None:
        self.job = job
        self.costs: list[float] = []
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from core import plots
        from core.progress import summarise

        while not self.finished.is_set():
            t0 = time.perf_counter()
            progress = summarise(self.job.events)
            if progress.epochs:
                plots.loss_curve(progress.epochs, x_title="epoch").to_json()
            if len(progress.steps) > 1:
                plots.step_curve(progress.steps, progress.step_losses).to_json()
            cost = time.perf_counter() - t0
            self.costs.append(cost)
            self.finished.wait(max(REDRAW_S - cost, 0.0))


def server_child(n_rows: int, epochs: int, repeats: int, threads: int | None = None,
                 template: bool = True) -> dict[str, Any]:
    """Child task acting as the server: alternate jobs without and with the live chart."""
    from core import plots
    from core.events import EpochEnded
    from core.jobs import JobManager

    if not template:  # experiment: figures without the plotly_white template
        plots._LAYOUT.pop("template", None)
    plots.loss_curve([]).to_json()  # the server has plotly imported and its template loaded already
    manager = JobManager()
    try:
        manager.wait(manager.submit(_noop, kind="call"), timeout=120)
        epoch_times: dict[str, list[float]] = {"off": [], "on": []}
        draw_costs: list[float] = []
        for _ in range(repeats):
            for variant in ("off", "on"):
                job_id = manager.submit(functools.partial(train_mlp, n_rows, epochs, threads), kind="call")
                job = manager.get(job_id)
                drawer = _Drawer(job)
                if variant == "on":
                    drawer.thread.start()
                manager.wait(job_id, timeout=600)
                drawer.finished.set()
                if variant == "on":
                    drawer.thread.join()
                    draw_costs += drawer.costs
                ends = [e.seconds for e in job.events if isinstance(e, EpochEnded)]
                # Epoch 1 carries the loop's warm-up: the mean of the later epochs is the figure.
                epoch_times[variant].append((ends[-1] - ends[0]) / (len(ends) - 1))
        return {**epoch_times, "draw_ms": [c * 1000 for c in draw_costs],
                "events_per_job": len(job.events)}
    finally:
        manager.shutdown()


def run(cfg: Config) -> Section:
    section = Section(
        "2. Live plotting while training",
        f"An MLP ({cfg.mlp_rows:,} rows × 20 numbers, default (256, 128) network, {cfg.mlp_epochs} epochs) trains "
        "in a JobManager worker; in the server process a thread redraws the live chart every "
        f"{REDRAW_S} s exactly as `ui/live.py` does (`summarise(job.events)` → `plots.loss_curve` + "
        "`plots.step_curve` → `fig.to_json()`). Jobs with and without the drawing alternate on the same worker; "
        "the figure is the mean epoch time after the first epoch.")
    log("live plotting")
    data = run_child("live:server_child", n_rows=cfg.mlp_rows, epochs=max(cfg.mlp_epochs, 2),
                     repeats=cfg.repeats, timeout=900).data
    ratio = ratios(data["on"], data["off"])
    table = Table(["case", "epoch s", "ratio", "target", "result"])
    table.add("no live chart", Spread.of(data["off"]).text(3), "1", "", "")
    table.add("live chart redrawn twice a second", Spread.of(data["on"]).text(3), ratio.text(3), f"≤ {TARGET}",
              section.judge("epoch time with the live chart", ratio, TARGET))
    section.tables.append(table)
    draws = Spread.of(data["draw_ms"])
    section.notes.append(f"One redraw costs {draws.text(1)} ms in the server process "
                         f"({len(data['draw_ms'])} redraws; {data['events_per_job']} events per job).")
    return section
