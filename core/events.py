"""Typed training events (ARCHITECTURE.md, "Events"), delivered to one callback.

Trainers never print and never touch a UI: they call ``on_event(event)``. The CLI's callback
prints, the job worker's puts the event on a queue for the server, a test's records.
All events are frozen dataclasses of plain data so they pickle across processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.types import DeviceInfo, Plan


@dataclass(frozen=True)
class RunStarted:
    plan: Plan
    device: DeviceInfo
    n_train: int
    n_valid: int


@dataclass(frozen=True)
class StepEnded:
    step: int
    epoch: int
    train_loss: float
    total_steps: int | None = None  # steps in the whole run when known, for a progress bar


@dataclass(frozen=True)
class EpochEnded:
    epoch: int
    train_loss: float
    valid_loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    max_epochs: int | None = None  # the planned maximum, for a progress bar


@dataclass(frozen=True)
class Message:
    level: Literal["info", "warning"]
    text: str


@dataclass(frozen=True)
class RunFinished:
    run: Any = None  # the saved run's folder (str) or the result object; None on error
    error: str | None = None
    stopped_early: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class FoldEnded:
    """One candidate scored on one fold of a model comparison (``core.compare``)."""

    model: str
    fold: int
    n_folds: int
    metric: str  # the headline metric among ``scores``
    scores: dict[str, float | None]
    fit_seconds: float
    label: str = ""  # the candidate in words ("Histogram gradient boosting (log target)"); "" = the family's


@dataclass(frozen=True)
class CandidateSkipped:
    """A comparison candidate left out, with the reason in plain words."""

    model: str
    why: str
    label: str = ""  # the candidate in words; "" = the family's label


@dataclass(frozen=True)
class ContestStarted:
    """The automatic contest begins (``core.contest``): who competes, how they are judged, the
    whole run's budget and when it runs out (``ends_by``, a ``time.time()`` reading; None: no budget)."""

    candidates: tuple[tuple[str, str], ...]  # (name, label), in the order they are scored
    folds: str  # how the training rows are split to judge them, in words
    n_folds: int
    metric: str
    budget_s: float | None
    ends_by: float | None


@dataclass(frozen=True)
class ContestEnded:
    """The contest chose: ``model`` (a registry key, or "blend") is refitted or kept, as
    ``reasons`` say; ``curve_unit`` is the unit of the curve that follows (the refit's)."""

    winner: str  # candidate name
    model: str
    label: str
    curve_unit: str
    reasons: tuple[str, ...]
    blended: tuple[str, ...] = ()


Event = (RunStarted | StepEnded | EpochEnded | Message | RunFinished | FoldEnded | CandidateSkipped | ContestStarted
         | ContestEnded)
Callback = Callable[[Event], None]


class StopFlag(Protocol):
    """Anything with ``is_set()``: ``threading.Event`` in-process, ``multiprocessing.Event`` in a worker."""

    def is_set(self) -> bool: ...


class NeverStop:
    """A stop flag that is never set, for callers that cannot stop a run."""

    def is_set(self) -> bool:
        return False


def ignore(event: Event) -> None:
    """A callback that drops every event."""
