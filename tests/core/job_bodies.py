"""Job bodies for tests/core/test_jobs.py (``kind="call"``), in their own light module: a
spawned worker imports the module of each body it runs, so this one imports almost nothing."""

import os
import time

from core.events import EpochEnded, Message


def counting(emit, stop):
    """A well-behaved trainer: one epoch every 50 ms until stopped (at most 10 s)."""
    for epoch in range(1, 200):
        if stop.is_set():
            emit(Message("info", "stopped"))
            return
        emit(EpochEnded(epoch=epoch, train_loss=1.0 / epoch, valid_loss=1.0 / epoch))
        time.sleep(0.05)


def stubborn(emit, stop):
    """A trainer that never looks at its stop flag and keeps talking (for 30 s)."""
    for i in range(600):
        emit(Message("info", f"still going ({i})"))
        time.sleep(0.05)


def raising(emit, stop):
    """A trainer with a bug."""
    raise ValueError("broken on purpose")


def crashing(emit, stop):
    emit(Message("info", "about to crash"))
    os._exit(3)


def quick(emit, stop):
    emit(Message("info", "ran"))


def dies_at_start(*args):
    """Stands in for the worker's main function: the worker dies before it is ready."""
    os._exit(1)


class Marked:
    """A ``counting`` job that names a runs folder, as a ``JobSpec`` does: the manager keeps a
    marker of it there (``core.jobs.journal``) until it ends."""

    mode = "train"

    def __init__(self, runs_dir: str, name: str = "marked.csv") -> None:
        self.runs_dir, self.display_name = runs_dir, name

    def __call__(self, emit, stop):
        counting(emit, stop)


def settings(names, emit, stop):
    """Says the worker's environment variables ``names``."""
    emit(Message("info", " ".join(f"{k}={os.environ.get(k)}" for k in names)))


def torch_on_demand(emit, stop):
    """Says whether torch is loaded, asks the families for what a boosting fit and then what two
    networks need (``core.models.ready``, which speaks while it loads), and says torch's threads."""
    import sys

    from core.models import ready

    emit(Message("info", f"torch at the start: {'torch' in sys.modules}"))
    ready(["hgb", "linear"], emit)
    emit(Message("info", f"torch after boosting's needs: {'torch' in sys.modules}"))
    ready(["mlp", "cnn"], emit)
    ready(["mlp"], emit)  # loaded already: says nothing

    import torch

    emit(Message("info", f"torch threads: {torch.get_num_threads()}"))


def helpers_then_stubborn(emit, stop):
    """Compare two models on a small table with the fold helpers on, say which processes they are,
    then ignore the stop flag (so the test must end the worker by force)."""
    from core.compare import compare
    from core.fold_pool import executor, processes_for
    from core.schema import prepare
    from tests.core.helpers import churn_like, table

    data = prepare(table(churn_like(n=300)), target="churned")
    result = compare(data, candidates=("dummy", "linear", "hgb"), n_folds=3, time_budget=300)
    scored = sum(len(e.fit_s) for e in result.entries)
    helpers = sorted(executor(processes_for(len(data.y)))._processes)
    emit(Message("info", f"{scored} {' '.join(map(str, helpers))}"))
    time.sleep(30)
