"""A job's event log summed up for display: where it is, the curves so far, what it said.

Pure and cheap (one pass over the log), so a page can redraw it twice a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.events import (
    ContestEnded,
    ContestStarted,
    EpochEnded,
    Event,
    FoldEnded,
    Message,
    RunFinished,
    RunStarted,
    StepEnded,
)
from core.models import get_family
from core.types import DeviceInfo, Plan


@dataclass(frozen=True, eq=False)
class Progress:
    plan: Plan | None = None
    device: DeviceInfo | None = None
    n_train: int = 0
    n_valid: int = 0
    epochs: tuple[EpochEnded, ...] = ()
    steps: np.ndarray = field(default_factory=lambda: np.empty(0))
    step_losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    messages: tuple[Message, ...] = ()
    finished: RunFinished | None = None
    fraction: float = 0.0  # 0..1 of the planned maximum (training may stop earlier)
    contest: ContestStarted | None = None  # an automatic run's contest, once it began
    chosen: ContestEnded | None = None  # …and its choice, once made
    folds_done: int = 0  # candidate folds scored so far

    def seconds_left(self, now: float) -> float | None:
        """What remains of an automatic run's budget at ``now`` (``time.time()``); None: no budget."""
        if self.contest is None or self.contest.ends_by is None:
            return None
        return max(0.0, self.contest.ends_by - now)

    @property
    def started(self) -> bool:
        return self.plan is not None

    @property
    def last_epoch(self) -> EpochEnded | None:
        return self.epochs[-1] if self.epochs else None

    def status_line(self) -> str:
        """One plain sentence about where training is."""
        if self.finished is not None:
            if self.finished.error:
                return "Training failed."
            return "Stopped by you — the best model so far was saved." if self.finished.cancelled else "Finished."
        if not self.started:
            return "Loading the data…"
        last = self.last_epoch
        if self.contest is not None and self.chosen is None:
            total = len(self.contest.candidates) * self.contest.n_folds
            return (f"Contest: {self.folds_done} of up to {total} candidate folds scored on {self.contest.folds}.")
        if self.chosen is not None and last is None:
            return f"The contest chose {self.chosen.label}: fitting it on every training row…"
        if last is None:
            if self.plan.baseline:
                return "Fitting the baseline, then the main model…"
            return "Preparing the first epoch…"
        of = f" of at most {last.max_epochs}" if last.max_epochs else ""
        return (f"{self.curve_unit.capitalize()} {last.epoch}{of}: validation loss {last.valid_loss:.4f} "
                f"({last.seconds:.0f} s so far).")

    @property
    def curve_unit(self) -> str:
        """What one step of the curve is for the model being trained: "epoch", "boosting round"…"""
        if self.chosen is not None:
            return self.chosen.curve_unit
        if self.plan is None or self.plan.is_contest:
            return "epoch"
        return get_family(self.plan.model).curve_unit


def summarise(events: Sequence[Event]) -> Progress:
    """Fold the events (in order) into a ``Progress``."""
    plan = device = finished = None
    n_train = n_valid = 0
    epochs: list[EpochEnded] = []
    messages: list[Message] = []
    steps: list[int] = []
    losses: list[float] = []
    fraction = 0.0
    contest = chosen = None
    folds_done = 0
    for event in list(events):
        if isinstance(event, RunStarted):
            plan, device, n_train, n_valid = event.plan, event.device, event.n_train, event.n_valid
        elif isinstance(event, EpochEnded):
            epochs.append(event)
            if event.max_epochs:
                fraction = max(fraction, min(1.0, event.epoch / event.max_epochs))
        elif isinstance(event, StepEnded):
            steps.append(event.step)
            losses.append(event.train_loss)
            if event.total_steps:
                fraction = max(fraction, min(1.0, event.step / event.total_steps))
        elif isinstance(event, Message):
            messages.append(event)
        elif isinstance(event, RunFinished):
            finished = event
        elif isinstance(event, ContestStarted):
            contest = event
        elif isinstance(event, FoldEnded) and contest is not None and event.model in dict(contest.candidates):
            folds_done += 1
            fraction = max(fraction, min(0.9, folds_done / (len(contest.candidates) * contest.n_folds + 1)))
        elif isinstance(event, ContestEnded):
            chosen = event
    if finished is not None and not finished.error:
        fraction = 1.0
    return Progress(plan=plan, device=device, n_train=n_train, n_valid=n_valid, epochs=tuple(epochs),
                    steps=np.asarray(steps, dtype=float), step_losses=np.asarray(losses, dtype=float),
                    messages=tuple(messages), finished=finished, fraction=fraction, contest=contest, chosen=chosen,
                    folds_done=folds_done)
