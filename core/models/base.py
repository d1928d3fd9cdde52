"""The contract every model family implements (one module per family; ARCHITECTURE.md).

A family owns its facts: its plain name, the kinds of data it takes, the unit of its training
curve, its role in a comparison, and how it tunes itself to the data (``tune``). It turns a
``FitContext`` into a fitted model that predicts from the *raw* inputs (raw table columns, or
uint8 image arrays), saves itself into a run folder and loads back. Planner, comparison,
progress text, the Train page and the CLI all read these facts from the registry
(``core.models``); ``core.training.fit`` drives families without knowing which one it runs.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from core.events import Callback, EpochEnded, Message, StepEnded, StopFlag
from core.types import DeviceInfo, Prepared, Task

#: Rows from which a table counts as large (fewer validation rows, fewer boosting rounds by default).
LARGE_TABLE = 200_000

#: A family's part in a model comparison: "no_skill" is the guess every model must beat (never the
#: pick), "baseline" the sanity baseline fitted before other models of its kinds, "model" the rest;
#: "ensemble" combines other families' models (made by the contest, never chosen by hand).
Role = Literal["no_skill", "baseline", "model", "ensemble"]


@dataclass(frozen=True)
class ImageLook:
    """Cheap evidence of what an image set's pictures are (``core.planner.image_look``): natural
    photos, where a network pretrained on photos helps, or drawn glyphs and flat shapes, where a
    small network trained on them from scratch does best. Between the clear cases the look is not
    evidence enough: the job then probes both on a sample (``core.probe``), and ``probed`` holds
    what the probe found (True: the pretrained path won), which then decides."""

    stored_side: float  # median short side of the files as stored, in pixels
    colour: bool  # the pictures have colour
    flat_share: float  # median share of a picture's pixels in its most common shade (a flat background)
    probed: bool | None = None  # the quick probe's verdict (None: no probe ran)

    #: Photos are stored at a fair size and textured all over; glyphs are small or mostly background.
    PHOTO_SIDE: ClassVar[int] = 64
    FLAT_LIMIT: ClassVar[float] = 0.35
    #: The look decides alone past these: photos stored at 96 px or more with under a fifth of their
    #: pixels in one shade; glyphs with half of each picture one flat shade, or stored under 48 px with
    #: a fifth of it flat (the bundled digits: 32 px, 40%). Tiny pictures textured all over (small
    #: photos) are not clear-cut: pretrained features may still beat a CNN there.
    CLEAR_PHOTO_SIDE: ClassVar[int] = 96
    CLEAR_PHOTO_FLAT: ClassVar[float] = 0.2
    CLEAR_GLYPH_SIDE: ClassVar[int] = 48
    CLEAR_GLYPH_FLAT: ClassVar[float] = 0.5

    @property
    def looks_like_photos(self) -> bool:
        """The look's own lean, whatever a probe found."""
        return self.stored_side >= self.PHOTO_SIDE and self.flat_share < self.FLAT_LIMIT

    @property
    def photo_like(self) -> bool:
        """Whether the pictures are treated as photos: the probe's verdict when one ran, else the look's."""
        return self.looks_like_photos if self.probed is None else self.probed

    @property
    def clear_cut(self) -> bool:
        """Whether the look alone is evidence enough (no probe needed)."""
        clear_photos = self.stored_side >= self.CLEAR_PHOTO_SIDE and self.flat_share < self.CLEAR_PHOTO_FLAT
        clear_glyphs = (self.flat_share >= self.CLEAR_GLYPH_FLAT
                        or (self.stored_side < self.CLEAR_GLYPH_SIDE and self.flat_share >= self.CLEAR_PHOTO_FLAT))
        return clear_photos or clear_glyphs

    def words(self) -> str:
        """Why the pictures count as photos or as glyphs, with the numbers (the look alone)."""
        flat = f"{self.flat_share:.0%} of a picture's pixels share its most common shade"
        if self.looks_like_photos:
            return (f"The pictures look like photographs: stored at about {self.stored_side:.0f} px and textured "
                    f"all over (only {flat}).")
        if self.stored_side < self.PHOTO_SIDE and self.flat_share < self.FLAT_LIMIT:
            return (f"The pictures are stored small (about {self.stored_side:.0f} px) but textured all over (only "
                    f"{flat}): small photos, perhaps, or busy drawings.")
        if self.stored_side < self.PHOTO_SIDE:
            return (f"The pictures look like small drawn glyphs or shapes: stored at only about "
                    f"{self.stored_side:.0f} px ({flat}).")
        return f"The pictures look like drawn shapes on a flat background: {flat}."


@dataclass(frozen=True)
class DataSummary:
    """What a family may tune itself on: the data's size and shape, and what the user fixed by hand.

    Made once by the planner (``core.planner.summarise_data``); comparison uses the same summary,
    so a candidate is scored with exactly the settings that training it would use.
    """

    kind: Literal["tabular", "images"]
    task: Task
    n_rows: int
    n_classes: int = 0
    numeric_share: float = 1.0  # share of the used columns that are numeric (tables)
    heavy_tailed_target: bool = False  # a positive target with a long right tail (regression)
    device: DeviceInfo | None = None  # where a torch model would train
    max_epochs: int | None = None  # the user's cap on epochs / rounds / trees, if any
    user_params: dict[str, Any] = field(default_factory=dict)  # settings the user chose by hand
    valid_fraction: float = 0.2
    image_look: ImageLook | None = None  # images: photo-like or glyph-like (the pretrained families read it)


@dataclass(frozen=True)
class Tuned:
    """A family's settings for some data, and one plain sentence per decision."""

    params: dict[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Variant:
    """Other settings of a family's own that the automatic contest scores beside its tuned ones
    (``ModelFamily.contest_variants``): only scores can say whether they help on a table."""

    name: str  # appended to the family's key: "hgb-small-leaves"
    label: str  # appended to the family's label, in brackets
    note: str  # what differs, in words, for the reasons
    params: dict[str, Any] = field(default_factory=dict)  # over the family's tuned settings


@dataclass(eq=False)
class FitContext:
    """Everything a family needs for one fit.

    Tables: ``X_*`` are raw DataFrames (only used columns), ``y_*`` Series of string labels
    (classification) or floats (regression); ``prepared`` gives the column roles.
    Images: ``X_*`` are uint8 arrays N×C×H×W, ``y_*`` int64 class indexes; ``prepared`` is None.
    """

    X_train: Any
    y_train: Any
    X_valid: Any
    y_valid: Any
    task: Task
    classes: tuple[str, ...]
    params: dict[str, Any]
    seed: int
    device: DeviceInfo
    emit: Callback
    stop: StopFlag
    prepared: Prepared | None = None
    max_epochs: int | None = None
    time_budget: float | None = None  # seconds from ``started``
    imbalanced: bool = False  # minority class under 20%: use class weights
    started: float = field(default_factory=time.perf_counter)

    def out_of_time(self) -> bool:
        return self.time_budget is not None and time.perf_counter() - self.started > self.time_budget

    def should_stop(self) -> bool:
        return self.stop.is_set() or self.out_of_time()


@dataclass(eq=False)
class Fitted:
    """A fitted model plus what happened while fitting."""

    model: Any  # has predict(X); classifiers also predict_proba(X) with columns in ``classes`` order
    params: dict[str, Any]  # effective settings, including iterations/epochs actually run
    name: str  # e.g. "HistGradientBoostingClassifier"
    stopped_early: bool = False
    cancelled: bool = False
    # The full curve when the family knows it better than its throttled live events did
    # (boosting records every round's losses); None keeps the events' curve.
    history: list[EpochEnded] | None = None


class ModelFamily(ABC):
    """One model family, named in the registry by ``key``."""

    key: ClassVar[str]
    label: ClassVar[str]  # plain name for people: "Histogram gradient boosting"
    family: ClassVar[Literal["sklearn", "torch"]]
    kinds: ClassVar[frozenset[str]]  # data kinds it accepts: {"tabular"} or {"images"}
    curve_unit: ClassVar[str] = "epoch"  # the x axis of its training curve: "boosting round", "trees"…
    role: ClassVar[Role] = "model"
    #: Its place in a comparison, simplest (and cheapest) first — also the order the one-standard-error
    #: rule prefers; None: not a comparison candidate.
    comparison_order: ClassVar[int | None] = None
    #: Whether its fit stops on the validation loss (boosting rounds, epochs): then a refit needs
    #: rows held apart to stop on; the others learn from every training row.
    early_stops: ClassVar[bool] = False
    #: Whether the contest weights a rare binary class for it; trees rank rows better unweighted,
    #: and the contest's out-of-fold threshold balances their answers instead.
    weighs_rare_binary: ClassVar[bool] = True
    #: Up to how many rows the automatic contest enters it (None: any size); the budget decides too.
    contest_rows: ClassVar[int | None] = None

    def enters_contest(self, data: DataSummary) -> bool:
        """Whether the automatic contest should score it on ``data`` (its comparison role, the size)."""
        return (self.role in ("baseline", "model") and self.comparison_order is not None and data.kind in self.kinds
                and (self.contest_rows is None or data.n_rows <= self.contest_rows))

    def tune(self, data: DataSummary) -> Tuned:
        """Settings for ``data`` with the reasons in plain words (the user's own params win over them)."""
        return Tuned()

    def contest_variants(self, data: DataSummary) -> tuple[Variant, ...]:
        """Other settings of its own the automatic contest should also score on ``data`` (none by default)."""
        return ()

    def folds_in_helpers(self, n_rows: int) -> bool:
        """Whether a small table's comparison may fit its folds of ``n_rows`` training rows in helper
        processes, one thread each (``core.fold_pool``). Not by default: a network's library sits in
        the job worker already, and should not in every helper."""
        return False

    def refit_settings(self, fold_settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Settings that let a refit on every training row do without early stopping, from what the
        contest's folds found (``Fitted.params`` of each fold: e.g. their boosting rounds). With
        them the refit learns from all the rows and its curve may watch any rows, since nothing
        is decided on them; {} (the default): the refit stops early on a slice of the rows."""
        return {}

    def why(self, data: DataSummary) -> str:
        """One sentence for the plan: why this family suits the data."""
        return f"{self.label}."

    def auto_preference(self, data: DataSummary) -> int:
        """How strongly the automatic plan should pick this family for ``data``: 0 never, the
        highest wins (ties go to the registry's order)."""
        return 0

    def picture_side(self, params: Mapping[str, Any]) -> int | None:
        """Images: the side this family reads pictures at with ``params`` (its tuned settings), so the
        job loads them at that size (``Plan.image_size``); None: the loader's own small size suits it."""
        return None

    def loaded(self) -> bool:
        """Whether this process has what its fits need loaded (``ready``); light families always do."""
        return True

    def ready(self) -> None:  # noqa: B027 (light families need nothing loaded: no override)
        """Load what its fits need, so that none of it lands inside a timed fit (a contest's fold)."""

    @abstractmethod
    def fit(self, ctx: FitContext) -> Fitted:
        """Fit on the training split, emitting events; honour ``ctx.should_stop()`` between
        steps/chunks and return the best model so far with ``cancelled=True`` when stopped."""

    @abstractmethod
    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        """Write the model into ``folder``; return the file names written."""

    @abstractmethod
    def load(self, folder: Path) -> Any:
        """Load the model saved by ``save`` from one of the app's own run folders."""


class DeferredFamily(ModelFamily):
    """A family whose facts are light and whose fitting, saving and loading live in a heavy module
    (torch), imported on first use: reading the registry's facts — to plan a table, say — must not
    import torch (~0.2 GB, seconds)."""

    #: "module:Class" of the implementation: ``fit(ctx)``, ``save(fitted, folder)``, ``load(folder)``.
    trainer: ClassVar[str]
    #: "module:function" that pays the implementation's own lazy imports (torch's optimiser machinery).
    warm_up: ClassVar[str] = "core.models.torch_loop:warm_up"

    def loaded(self) -> bool:
        return self.trainer.partition(":")[0] in sys.modules

    def ready(self) -> None:
        _imported(self.trainer)
        _imported(self.warm_up)()

    def _trainer(self) -> Any:
        return _imported(self.trainer)()

    def fit(self, ctx: FitContext) -> Fitted:
        return self._trainer().fit(ctx)

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        return self._trainer().save(fitted, folder)

    def load(self, folder: Path) -> Any:
        return self._trainer().load(folder)


def _imported(name: str) -> Any:
    """The object a "module:attribute" name points at, its module imported."""
    module, attribute = name.split(":")
    return getattr(import_module(module), attribute)


class StepThrottle:
    """Emit ``StepEnded`` at most ``per_second`` times a second (ARCHITECTURE.md, "Events")."""

    def __init__(self, emit: Callback, per_second: float = 10.0) -> None:
        self._emit = emit
        self._gap = 1.0 / per_second
        self._last = 0.0

    def step(self, step: int, epoch: int, loss: float, total_steps: int | None = None) -> None:
        now = time.perf_counter()
        if now - self._last >= self._gap:
            self._last = now
            self._emit(StepEnded(step=step, epoch=epoch, train_loss=float(loss), total_steps=total_steps))


class EarlyStopping:
    """Patience on a validation loss; remembers which epoch was best."""

    def __init__(self, patience: int, min_delta: float = 1e-4) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = np.inf
        self.best_epoch = 0
        self._bad = 0

    def improved(self, epoch: int, valid_loss: float) -> bool:
        """Record ``valid_loss``; True when it is the best so far (so snapshot the model)."""
        if valid_loss < self.best - self.min_delta * max(1.0, abs(self.best) if np.isfinite(self.best) else 1.0):
            self.best, self.best_epoch, self._bad = valid_loss, epoch, 0
            return True
        self._bad += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self._bad >= self.patience


def stop_message(cancelled: bool, at: str, kept: str, time_budget: float | None = None) -> Message:
    """The one wording every family uses for a fit that ended before its plan: on request (the stop
    flag; a warning) or out of time. ``at`` says where ("during epoch 3", "after 120 boosting
    rounds"), ``kept`` what the model keeps."""
    if cancelled:
        return Message("warning", f"Stopped on request {at}. {kept}")
    return Message("info", f"Stopped {at}: the time budget of {time_budget or 0:g} s was spent. {kept}")


def epoch_event(epoch: int, train_loss: float, valid_loss: float, started: float,
                metrics: dict[str, float] | None = None, max_epochs: int | None = None) -> EpochEnded:
    """An ``EpochEnded`` with the seconds since ``started`` (a ``perf_counter`` reading)."""
    return EpochEnded(epoch=epoch, train_loss=float(train_loss), valid_loss=float(valid_loss),
                      metrics=dict(metrics or {}), seconds=time.perf_counter() - started,
                      max_epochs=max_epochs)
