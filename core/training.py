"""``fit``: split, fit the sanity baseline, fit the chosen model — reporting through events.

The shared skeleton every family runs in (ARCHITECTURE.md, "Events"): one ``RunStarted``, the
family's ``StepEnded``/``EpochEnded``/``Message`` events, and the fitted models back.
``RunFinished`` is sent by the whole job (``core.pipeline.run_job``), after evaluation and
saving, so "finished" means the run folder exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.contest import contest_plan, run_contest
from core.device import cpu_device
from core.evaluation import Threshold
from core.events import Callback, EpochEnded, Message, NeverStop, RunStarted, StopFlag, ignore
from core.memory import release_freed_memory
from core.models import device_for, get_family, ready
from core.models.base import FitContext, Fitted
from core.planner import is_imbalanced
from core.splits import split_rows
from core.types import DeviceInfo, ImageData, Plan, Prepared

IMBALANCED = Message("warning", "Classes are imbalanced: classes are weighted to count equally, and accuracy "
                               "misleads — read balanced accuracy and the precision-recall curve.")


@dataclass(eq=False)
class TrainResult:
    """The fitted models and the validation split they are judged on."""

    plan: Plan
    device: DeviceInfo
    main: Fitted
    baseline: Fitted | None
    X_valid: Any
    y_valid: Any
    y_train: Any
    valid_index: np.ndarray  # row positions (in the prepared data) of the validation split
    n_train: int
    fit_seconds: float
    baseline_seconds: float
    history: list[EpochEnded] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    threshold: Threshold | None = None  # binary runs whose threshold was chosen (the contest's); None: 0.5
    candidates: list[dict[str, Any]] | None = None  # the contest's record (``core.contest``); None: no contest
    contest_reasons: tuple[str, ...] = ()  # how the contest chose, in words
    contest_refit: bool = False  # the contest's winner was fitted again on every training row
    contest_curve_on_validation: bool = False  # …and its curve watched the validation rows (deciding nothing)


def _take(data, positions):
    return data.iloc[positions] if hasattr(data, "iloc") else data[positions]


@dataclass(frozen=True, eq=False)
class Split:
    """A table or image set cut into the rows a model learns from and the rows it is judged on.

    ``data`` is what the families read besides the rows (columns, classes, task). For a table,
    ``split_data(..., keep_rows=False)`` leaves it without rows, so whoever holds only the split
    no longer holds the whole table: on a million rows that copy is the size of the CSV.
    """

    data: Prepared | ImageData
    X_train: Any
    X_valid: Any
    y_train: Any
    y_valid: Any
    train_idx: np.ndarray
    valid_idx: np.ndarray


class _Recorder:
    """Passes events on, keeping the curve and the messages for the result."""

    def __init__(self, on_event: Callback) -> None:
        self.on_event = on_event
        self.history: list[EpochEnded] = []
        self.messages: list[Message] = []

    def __call__(self, event) -> None:
        if isinstance(event, EpochEnded):
            self.history.append(event)
        elif isinstance(event, Message):
            self.messages.append(event)
        self.on_event(event)


def _without_rows(data: Prepared) -> Prepared:
    """``data`` with empty ``X`` and ``y`` of the same columns and dtypes. Copied: ``iloc[:0]`` is a
    view whose arrays keep the whole table alive (170 MB on the 1M-row CSV, through the fit)."""
    return replace(data, X=data.X.iloc[:0].copy(), y=data.y.iloc[:0].copy())


def split_data(data: Prepared | ImageData, plan: Plan, keep_rows: bool = True) -> Split:
    """Cut ``data`` as ``plan`` says (validation share, seed; stratified for classes)."""
    X, y = (data.images, data.labels) if isinstance(data, ImageData) else (data.X, data.y)
    train_idx, valid_idx = split_rows(np.asarray(y), plan.task, plan.valid_fraction, plan.seed)
    rest = data if keep_rows or isinstance(data, ImageData) else _without_rows(data)
    return Split(rest, _take(X, train_idx), _take(X, valid_idx), _take(y, train_idx), _take(y, valid_idx),
                 np.asarray(train_idx), np.asarray(valid_idx))


def fit(data: Prepared | ImageData, plan: Plan, on_event: Callback = ignore, stop: StopFlag | None = None,
        device: DeviceInfo | None = None) -> TrainResult:
    """Fit ``plan`` on ``data``: the baseline (if any) first, then the main model.

    ``stop`` is checked between steps; a stopped run returns the best model so far with
    ``main.cancelled`` set. Events go to ``on_event``.
    """
    return fit_split(split_data(data, plan), plan, on_event, stop, device)


def fit_split(parts: Split, plan: Plan, on_event: Callback = ignore, stop: StopFlag | None = None,
              device: DeviceInfo | None = None, started: float | None = None) -> TrainResult:
    """``fit`` on rows already split (``split_data``). ``started`` is the ``time.perf_counter()``
    at which the run began (the job's loading counts against a contest's budget); default now."""
    release_freed_memory()  # the whole table, if the caller let go of it after splitting
    stop = stop or NeverStop()
    started = time.perf_counter() if started is None else started
    # Loading torch is not the run's time: a worker that trained a network before has it loaded,
    # and the same data should get the same contest whichever worker runs it.
    started += ready(plan.models, on_event)
    if plan.is_contest:
        return _fit_contest(parts, plan, on_event, stop, device, started)
    device = device or device_for(plan.model, dict(plan.params))
    data = parts.data
    classes = data.class_names if isinstance(data, ImageData) else data.classes
    prepared = None if isinstance(data, ImageData) else data
    X_train, X_valid, y_train, y_valid = parts.X_train, parts.X_valid, parts.y_train, parts.y_valid
    train_idx, valid_idx = parts.train_idx, parts.valid_idx
    imbalanced = prepared is not None and is_imbalanced(y_train, classes)

    record = _Recorder(on_event)
    history, messages = record.history, record.messages
    on_event(RunStarted(plan=plan, device=device, n_train=len(train_idx), n_valid=len(valid_idx)))
    if imbalanced:
        record(IMBALANCED)

    def context(params, emit, started) -> FitContext:
        return FitContext(X_train=X_train, y_train=y_train, X_valid=X_valid, y_valid=y_valid, task=plan.task,
                          classes=classes, params=dict(params), seed=plan.seed, device=device, emit=emit,
                          stop=stop, prepared=prepared, imbalanced=imbalanced, started=started,
                          max_epochs=plan.max_epochs, time_budget=plan.time_budget)

    baseline, baseline_seconds = None, 0.0
    if plan.baseline and not stop.is_set():
        t0 = time.perf_counter()
        # The baseline's own curve would clutter the live chart: only its summary reaches the user.
        base_ctx = _baseline_context(context, plan.baseline_params, t0, plan.seed)
        baseline = get_family(plan.baseline).fit(base_ctx)
        baseline_seconds = time.perf_counter() - t0
        release_freed_memory()  # the baseline's encoded copies, before the main model makes its own
        rows = int(baseline.params.get("fit_rows", len(train_idx)))
        sampled = f" on a sample of {rows:,} training rows" if rows < len(train_idx) else ""
        record(Message("info", f"Baseline ({get_family(plan.baseline).label}) fitted{sampled} in "
                               f"{baseline_seconds:.1f} s."))

    t0 = time.perf_counter()
    main = get_family(plan.model).fit(context(plan.params, record, t0))
    fit_seconds = time.perf_counter() - t0
    release_freed_memory()  # a stopped fit has said so itself (``core.models.base.stop_message``)
    return TrainResult(plan=plan, device=device, main=main, baseline=baseline, X_valid=X_valid, y_valid=y_valid,
                       y_train=y_train, valid_index=np.asarray(valid_idx), n_train=len(train_idx), fit_seconds=fit_seconds,
                       baseline_seconds=baseline_seconds, history=main.history or history, messages=messages)


def _fit_contest(parts: Split, plan: Plan, on_event: Callback, stop: StopFlag, device: DeviceInfo | None,
                 started: float) -> TrainResult:
    """The automatic contest on the training rows (``core.contest``); the validation rows wait."""
    data = replace(parts.data, X=parts.X_train, y=parts.y_train)
    torch_model = next((c.model for c in plan.contest if get_family(c.model).family == "torch"), None)
    device = device or (device_for(torch_model) if torch_model else cpu_device())
    record = _Recorder(on_event)
    history, messages = record.history, record.messages

    on_event(RunStarted(plan=plan, device=device, n_train=len(parts.train_idx), n_valid=len(parts.valid_idx)))
    if is_imbalanced(parts.y_train, data.classes):
        record(IMBALANCED)
    # Evaluation and saving come after the fit: the contest holds their share of the budget back.
    deadline = None if plan.time_budget is None else started + plan.time_budget
    t0 = time.perf_counter()
    outcome = run_contest(data, plan, on_event, stop, deadline, record, curve_rows=(parts.X_valid, parts.y_valid))
    fit_seconds = time.perf_counter() - t0
    release_freed_memory()
    return TrainResult(plan=contest_plan(plan, outcome), device=device, main=outcome.main, baseline=outcome.baseline,
                       X_valid=parts.X_valid, y_valid=parts.y_valid, y_train=parts.y_train,
                       valid_index=np.asarray(parts.valid_idx), n_train=len(parts.train_idx), fit_seconds=fit_seconds,
                       baseline_seconds=0.0, history=outcome.main.history or history, messages=messages,
                       threshold=outcome.threshold, candidates=outcome.candidates, contest_reasons=outcome.reasons,
                       contest_refit=outcome.refit, contest_curve_on_validation=outcome.curve_on_validation)


def _baseline_context(make, params, started, seed: int) -> FitContext:
    ctx = make(params, ignore, started)
    ctx.max_epochs = None  # the user's epoch cap is for the main model
    ctx.time_budget = None
    return ctx
