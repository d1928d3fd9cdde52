"""A fair comparison of candidate models on the same folds, within a time budget.

The candidates are the registry's (``core.models.comparison_candidates``), simplest first, each
with exactly the settings its family tunes for this data — the settings training it would use.
Every candidate sees identical folds. Within each fold, models that stop early stop on a slice
of the *training* part, so the fold's held-out rows score each candidate without having chosen
anything. One whose next fold would overrun the budget is skipped, and says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.model_selection import KFold, StratifiedKFold

from core.errors import RunError
from core.evaluation import MAIN_METRIC, METRIC_NAMES, class_probabilities, metrics_for
from core.events import Callback, CandidateSkipped, FoldEnded, Message, NeverStop, StopFlag, ignore
from core.fold_pool import FileStop, FoldPool, processes_for
from core.models import comparison_candidates, device_for, get_family, ready
from core.models.base import DataSummary, FitContext, Fitted
from core.planner import is_imbalanced, summarise_data
from core.splits import split_rows
from core.types import Candidate, DeviceInfo, ImageData, Prepared

Folds = list[tuple[np.ndarray, np.ndarray]]

DEFAULT_BUDGET_S = 60.0
#: How often the comparison looks at the stop flag while a helper fits a fold.
POLL_S = 0.05
FOLD_METRICS = {"binary": ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"),
                "multiclass": ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"),
                "regression": ("r2", "mae", "rmse")}


@dataclass
class Entry:
    """One candidate's line on the leaderboard."""

    model: str  # the candidate's name: a registry key, or a variant's name ("hgb-log")
    metric: str
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    fit_s: list[float] = field(default_factory=list)
    skipped: str | None = None
    candidate: Candidate | None = None  # what was scored (None: the family ``model`` as tuned)
    #: Out-of-fold predictions over the compared rows (class probabilities, or values), NaN where
    #: no fold scored a row; only kept when ``compare(keep=True)``, like ``fitted``, the last fold's model.
    oof: np.ndarray | None = field(default=None, repr=False)
    fitted: Fitted | None = field(default=None, repr=False)
    #: What each scored fold's fit reported (``Fitted.params``: e.g. its boosting rounds), for the refit.
    fold_settings: list[dict] = field(default_factory=list, repr=False)

    @property
    def family(self) -> str:
        return self.candidate.model if self.candidate else self.model

    @property
    def label(self) -> str:
        return self.candidate.label if self.candidate else get_family(self.model).label

    @property
    def values(self) -> np.ndarray:
        return np.asarray([v for v in self.scores.get(self.metric, []) if v is not None], dtype=float)

    @property
    def mean(self) -> float | None:
        return float(self.values.mean()) if self.values.size else None

    @property
    def std(self) -> float | None:
        return float(self.values.std(ddof=1)) if self.values.size > 1 else (0.0 if self.values.size else None)

    @property
    def complete(self) -> bool:
        return self.skipped is None and bool(self.fit_s)

    @property
    def mean_fit_s(self) -> float | None:
        return float(np.mean(self.fit_s)) if self.fit_s else None

    def as_dict(self) -> dict:
        out = {"model": self.model, "metric": self.metric, "mean": self.mean, "std": self.std,
               "fit_s": self.mean_fit_s, "fold_seconds": list(self.fit_s), "scores": self.scores,
               "skipped": self.skipped}
        if self.candidate is not None:
            out.update(family=self.candidate.model, label=self.candidate.label, params=dict(self.candidate.params),
                       as_category=list(self.candidate.as_category), note=self.candidate.note)
        return out

    @classmethod
    def from_dict(cls, saved: dict) -> Entry:
        candidate = None
        if "family" in saved:
            candidate = Candidate(name=saved["model"], model=saved["family"], label=saved.get("label") or saved["family"],
                                  params=dict(saved.get("params") or {}),
                                  as_category=tuple(saved.get("as_category") or ()), note=saved.get("note") or "")
        return cls(model=saved["model"], metric=saved["metric"], scores=dict(saved.get("scores") or {}),
                   fit_s=[float(s) for s in saved.get("fold_seconds") or ()], skipped=saved.get("skipped"),
                   candidate=candidate)


@dataclass
class Comparison:
    metric: str
    folds: str  # how the rows were split, in words
    entries: list[Entry]
    best: str | None
    reasons: tuple[str, ...]

    def leaderboard(self) -> list[Entry]:
        """Scored candidates best first, then the skipped ones."""
        scored = sorted((e for e in self.entries if e.mean is not None), key=lambda e: -e.mean)
        return scored + [e for e in self.entries if e.mean is None]

    def as_dict(self) -> dict:
        return {"leaderboard": [e.as_dict() for e in self.leaderboard()], "best": self.best,
                "metric": self.metric, "folds": self.folds, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, saved: dict) -> Comparison:
        return cls(metric=saved["metric"], folds=saved["folds"], best=saved.get("best"),
                   entries=[Entry.from_dict(e) for e in saved["leaderboard"]], reasons=tuple(saved.get("reasons") or ()))


def choose_folds(y, task: str, n_folds: int | None, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The same folds for every candidate: stratified k-fold (5, or 3 from 50k rows), or one
    holdout from 500k rows — with the reason in words."""
    n = len(y)
    if n_folds is None:
        n_folds = 1 if n >= 500_000 else 3 if n >= 50_000 else 5
    if n_folds == 1:
        train, valid = split_rows(np.asarray(y), task, 0.2, seed)
        return [(train, valid)], f"one 80/20 holdout split ({n:,} rows are plenty, and k folds would cost k× the time)"
    if task == "regression":
        splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
        words = f"{n_folds}-fold cross-validation"
    else:
        smallest = int(np.min(np.unique(np.asarray(y), return_counts=True)[1]))
        n_folds = max(2, min(n_folds, smallest))
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        words = f"{n_folds}-fold stratified cross-validation (every class keeps its share in each fold)"
    folds = list(splitter.split(np.zeros(n), np.asarray(y) if task != "regression" else None))
    return folds, words + f" on {n:,} rows"


def as_candidate(candidate: str | Candidate, summary: DataSummary) -> Candidate:
    """A registry key becomes the candidate its family tunes for ``summary``."""
    if isinstance(candidate, Candidate):
        return candidate
    family = get_family(candidate)
    return Candidate(name=candidate, model=candidate, label=family.label, params=family.tune(summary).params)


def compare(data: Prepared, candidates: Sequence[str | Candidate] | None = None, n_folds: int | None = None,
            time_budget: float = DEFAULT_BUDGET_S, seed: int = 0, on_event: Callback = ignore,
            stop: StopFlag | None = None, device: DeviceInfo | None = None, *, folds: Folds | None = None,
            fold_words: str = "", keep: bool = False, reserve: Callable[[float], float] | None = None,
            stop_on_held_out: bool = False, race: bool = False) -> Comparison:
    """Score every candidate (default: the registry's) on identical folds and pick one (simplest
    within one standard error). ``device`` is where a torch model would train, as for the plan.

    The automatic contest (``core.contest``) passes its own ``folds`` (with ``fold_words``),
    ``keep=True`` to keep each candidate's out-of-fold predictions and last model, ``reserve`` (the
    seconds to hold back after the contest if a candidate taking ``per_fold`` seconds wins), and
    ``stop_on_held_out`` for one large held-apart slice that early stopping may watch too, and
    ``race=True``: a candidate clearly behind after some folds is dropped (its time goes to the rest).
    """
    stop = stop or NeverStop()
    summary = summarise_data(data, device=device)
    entries = [Entry(model=c.name, metric=MAIN_METRIC[data.task], candidate=c)
               for c in (as_candidate(c, summary) for c in candidates or comparison_candidates("tabular"))]
    if folds is None:
        folds, fold_words = choose_folds(data.y, data.task, n_folds, seed)
    if not keep:  # the contest announces itself (``ContestStarted``)
        on_event(Message("info", f"Comparing {len(entries)} candidates with {fold_words}, within {time_budget:.0f} s."))
    _score_all(entries, data, summary, folds, time_budget, seed, on_event, stop, keep, reserve or (lambda s: 0.0),
               stop_on_held_out, race)
    best, reasons = pick(entries, MAIN_METRIC[data.task], len(folds))
    return Comparison(metric=MAIN_METRIC[data.task], folds=fold_words, entries=entries, best=best, reasons=reasons)


def compare_images(data: ImageData, candidates: Sequence[str | Candidate] | None = None, n_folds: int | None = None,
                   time_budget: float = DEFAULT_BUDGET_S, seed: int = 0, on_event: Callback = ignore,
                   stop: StopFlag | None = None, device: DeviceInfo | None = None) -> Comparison:
    """``compare`` for an image set: the image families (default: the registry's image candidates —
    the CNN, pretrained features, fine-tuning) on identical stratified folds, within the budget.
    Each candidate reads the pictures at its own side, as training it would (``_at_own_sides``)."""
    stop = stop or NeverStop()
    summary = summarise_data(data, device=device)
    metric = MAIN_METRIC[summary.task]
    entries = [Entry(model=c.name, metric=metric, candidate=c)
               for c in (as_candidate(c, summary) for c in candidates or comparison_candidates("images"))]
    views = _at_own_sides(data, [e.candidate for e in entries])

    def score_fold(candidate: Candidate, pictures: ImageData, *rest) -> tuple:
        return _score_image_fold(candidate, views.get(candidate.name, pictures), *rest)

    folds, fold_words = choose_folds(data.labels, summary.task, n_folds, seed)
    on_event(Message("info", f"Comparing {len(entries)} candidates with {fold_words}, within {time_budget:.0f} s."))
    _score_all(entries, data, summary, folds, time_budget, seed, on_event, stop, False, lambda s: 0.0, False,
               score_fold=score_fold)
    best, reasons = pick(entries, metric, len(folds))
    return Comparison(metric=metric, folds=fold_words, entries=entries, best=best, reasons=reasons)


def _at_own_sides(data: ImageData, candidates: Sequence[Candidate]) -> dict[str, ImageData]:
    """The pictures for the candidates that read them at the loader's own small side (a family whose
    ``picture_side`` is None: the CNN) when the set was loaded larger, for the pretrained network's
    input: the same rows in the same order, resized once in memory."""
    from core.images import choose_size, resize_images
    from core.planner import stored_sides

    own_side = [c.name for c in candidates if get_family(c.model).picture_side(c.params) is None]
    side = choose_size(stored_sides(data), data.channels) if own_side else data.image_size
    if side == data.image_size:
        return {}
    small = replace(data, images=resize_images(data.images, side))
    return dict.fromkeys(own_side, small)


def _score_all(entries: list[Entry], data: Prepared | ImageData, summary: DataSummary, folds: Folds,
               time_budget: float, seed: int, on_event: Callback, stop: StopFlag, keep: bool,
               reserve: Callable[[float], float], stop_on_held_out: bool, race: bool = False,
               score_fold: Callable[..., tuple] | None = None) -> None:
    """Every candidate on every fold, cheapest first, skipping what the budget cannot hold (and,
    when ``race``, dropping one as soon as it is clearly behind: ``clearly_behind``). ``score_fold``
    scores one candidate on one fold (default: a table's, ``_score_fold``). A small table's folds
    run several at once in helper processes (``core.fold_pool``); each fold's result is taken in
    the order the folds were started, so the events, the race and the scores are those of fitting
    them one by one."""
    ready((e.family for e in entries), on_event)  # torch, if a network takes part: not its first fold's time
    width = processes_for(len(data.y)) if score_fold is None and len(folds) > 1 else 1
    pool = None
    if width > 1:
        try:
            pool = FoldPool(width)
        except Exception:  # noqa: BLE001 — no helper processes on this machine: the folds run here
            pool = None
    try:
        _Schedule(entries, data, summary, folds, time_budget, seed, on_event, stop, keep, reserve, stop_on_held_out,
                  race, score_fold or _score_fold, pool).run()
    finally:
        if pool is not None:
            pool.close()


@dataclass(eq=False)
class _FoldRun:
    """One candidate's fold, started (in a helper: ``future``) or to be fitted here when its turn comes."""

    entry: Entry
    k: int
    train: np.ndarray
    valid: np.ndarray
    time_left: float | None
    future: Any = None


@dataclass(eq=False)
class _Schedule:
    """``_score_all``'s loop: start folds while a process is free and the budget holds, take their
    results in the order they were started."""

    entries: list[Entry]
    data: Prepared | ImageData
    summary: DataSummary
    folds: Folds
    time_budget: float
    seed: int
    on_event: Callback
    stop: StopFlag
    keep: bool
    reserve: Callable[[float], float]
    stop_on_held_out: bool
    race: bool
    score_fold: Callable[..., tuple]
    pool: FoldPool | None
    pool_broken: bool = False
    started: float = field(default_factory=time.perf_counter)
    previous_fold_s: float = 0.0  # a candidate costs at least what the cheaper one before it cost per fold
    current: int = 0  # the entry whose fold starts next…
    next_fold: int = 0  # …and which of its folds
    running: list[_FoldRun] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The no-skill guess costs nothing, and the first real candidate (the simplest, quick) always
        # runs: a contest must end with a model.
        self.first = next((e for e in self.entries if get_family(e.family).role != "no_skill"), None)

    def run(self) -> None:
        width = self.pool.width if self.pool else 1
        while True:
            # A process that is free takes the next fold, even while an earlier one still runs.
            while self._busy() < width and (fold := self._start_next()) is not None:
                self.running.append(fold)
            self._end_entries()
            if not self.running:
                return
            head = self.running[0]
            if head.future is None or head.future.done():
                self.running.pop(0)
                self._record(head, self._outcome(head))
            else:
                self._wait()

    def _busy(self) -> int:
        """Processes in use: folds whose helper has not answered, and a fold to be fitted here."""
        return sum(f.future is None or not f.future.done() for f in self.running)

    def _wait(self) -> None:
        """Until some helper answers, passing a Stop on to them."""
        wait([f.future for f in self.running if f.future is not None], timeout=POLL_S, return_when=FIRST_COMPLETED)
        if self.stop.is_set():
            self.pool.stop()

    def _start_next(self) -> _FoldRun | None:
        while self.current < len(self.entries):
            entry = self.entries[self.current]
            if entry.skipped or self.next_fold >= len(self.folds):
                self.current, self.next_fold = self.current + 1, 0
                continue
            if self.stop.is_set():
                entry.skipped = "stopped by you"
                continue
            family = get_family(entry.family)
            role = family.role
            elapsed = time.perf_counter() - self.started
            per_fold = float(np.mean(entry.fit_s)) if entry.fit_s else self.previous_fold_s
            if entry is not self.first and role != "no_skill" and \
                    elapsed + per_fold + self.reserve(per_fold) > self.time_budget:
                entry.skipped = (f"skipped: the {self.time_budget:.0f} s budget would run out"
                                 + (f" (one fold takes about {per_fold:.1f} s)" if per_fold else ""))
                continue
            train, valid = self.folds[self.next_fold]
            left = None if role == "no_skill" else max(self.time_budget - elapsed - self.reserve(per_fold), 1.0)
            fold = _FoldRun(entry, self.next_fold + 1, train, valid, left)
            self.next_fold += 1
            if self.pool is not None and not self.pool_broken and family.folds_in_helpers(len(train)):
                try:
                    fold.future = self.pool.submit(_helper_fold, entry.candidate, self.data, train, valid, self.seed,
                                                   self.pool.stop_path, left, self.stop_on_held_out, self.keep)
                except Exception:  # noqa: BLE001 — the helpers are gone: the rest is fitted here
                    self.pool_broken = True
            return fold
        return None

    def _outcome(self, fold: _FoldRun) -> tuple:
        """(scores, prediction, fitted, seconds) of ``fold``: its helper's, or fitted here now."""
        if fold.future is not None:
            try:
                return fold.future.result()
            except Exception:  # noqa: BLE001 — a helper died (or the fit failed): fit it here, which says why
                self.pool_broken = True
        t0 = time.perf_counter()
        scores, prediction, fitted = self.score_fold(fold.entry.candidate, self.data, self.summary, fold.train,
                                                     fold.valid, self.seed, self.stop, fold.time_left,
                                                     self.stop_on_held_out)
        return scores, prediction, fitted, time.perf_counter() - t0

    def _record(self, fold: _FoldRun, outcome: tuple) -> None:
        scores, prediction, fitted, seconds = outcome
        entry, n_folds = fold.entry, len(self.folds)
        if entry.skipped:  # dropped (or stopped) while this fold ran
            return
        if fitted.cancelled:  # stopped mid-fold: its score is of a half-grown model
            entry.skipped = "stopped by you"
            return
        role = get_family(entry.family).role
        entry.fit_s.append(seconds)
        entry.fold_settings.append(dict(fitted.params))
        for name in FOLD_METRICS[self.summary.task]:
            entry.scores.setdefault(name, []).append(scores.get(name))
        if self.keep:
            # The no-skill guess is never chosen nor blended: its predictions (the size of the
            # training rows, 14 MB on the 1M-row job) would only sit beside the boosting fit.
            if role != "no_skill":
                entry.oof = _store(entry.oof, prediction, fold.valid, self.summary.n_rows)
            entry.fitted = fitted
        self.previous_fold_s = float(np.mean(entry.fit_s))
        self.on_event(FoldEnded(model=entry.model, fold=fold.k, n_folds=n_folds, metric=entry.metric, scores=scores,
                                fit_seconds=seconds, label=entry.label))
        if self.race and fold.k < n_folds and entry is not self.first and role != "no_skill":
            entry.skipped = clearly_behind(entry, self.entries, n_folds)

    def _end_entries(self) -> None:
        """Say so for each candidate that is done (none of its folds left to start or running)."""
        running = {id(f.entry) for f in self.running}
        for index, entry in enumerate(self.entries[:self.current]):
            if index in self.ended or id(entry) in running:
                continue
            self.ended.add(index)
            if entry.skipped:
                if len(entry.fit_s) < len(self.folds) and not self.keep:
                    entry.scores, entry.fit_s = {}, []
                self.on_event(CandidateSkipped(model=entry.model, why=entry.skipped, label=entry.label))


def _helper_fold(candidate: Candidate, data: Prepared, train: np.ndarray, valid: np.ndarray, seed: int,
                 stop_path: str, time_left: float | None, stop_on_held_out: bool, keep_model: bool) -> tuple:
    """``_score_fold`` in a helper process (``core.fold_pool``), on one thread, timed there; the
    model comes back only where the comparison keeps it."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        scores, prediction, fitted = _score_fold(candidate, data, None, train, valid, seed, FileStop(stop_path),
                                                 time_left, stop_on_held_out)
    seconds = time.perf_counter() - t0
    if not keep_model:
        fitted.model = None
    return scores, prediction, fitted, seconds


#: How sure a paired gain over the same folds must be to count (one-sided; Student's t, since an
#: SE from three fold differences is itself noisy): a blend over its best member, a variant over
#: its family's own settings.
PAIRED_CONFIDENCE = 0.95
#: Racing: a candidate is dropped once even this many noise units would not close its gap to
#: the leader (a conservative three sigma: a dropped candidate had ~0.1% odds of drawing level).
RACE_SIGMAS = 3.0
#: The smallest per-fold noise racing assumes (scores on a few dozen rows move by this much).
RACE_NOISE_FLOOR = 0.01


def clearly_behind(entry: Entry, entries: Sequence[Entry], n_folds: int) -> str | None:
    """Why ``entry`` should run no more folds (None: keep going): paired with the leader so far (the
    best candidate scored on every fold) on the folds both have, its mean gap is worse than
    ``RACE_SIGMAS`` standard errors. The noise per fold is the larger of the paired differences'
    spread and √2 × the leader's own fold spread (the spread of a difference of two independent
    scores), at least ``RACE_NOISE_FLOOR``: with one or two folds it is the leader's spread that speaks."""
    done = [e for e in entries if e is not entry and e.complete and len(e.values) == n_folds
            and get_family(e.family).role != "no_skill"]
    mine = entry.values
    if not done or not mine.size:
        return None
    leader = max(done, key=lambda e: e.mean)
    gaps = mine - leader.values[:mine.size]
    spread = max(float(np.std(gaps, ddof=1)) if gaps.size > 1 else 0.0, math.sqrt(2) * (leader.std or 0.0),
                 RACE_NOISE_FLOOR)
    gap = float(gaps.mean())
    if gap + RACE_SIGMAS * spread / math.sqrt(gaps.size) >= 0:
        return None
    return (f"dropped after {gaps.size} of {n_folds} folds: clearly behind {leader.label.lower()} "
            f"({gap:+.3f} a fold, noise ±{spread / math.sqrt(gaps.size):.3f})")


def _store(oof: np.ndarray | None, prediction: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    if oof is None:
        oof = np.full((n, *prediction.shape[1:]), np.nan)
    oof[rows] = prediction
    return oof


def pick(entries: list[Entry], metric: str, n_folds: int, se_of: Callable[[Entry], float] | None = None
         ) -> tuple[str | None, tuple[str, ...]]:
    """The best real model, preferring the simpler one when it is within one standard error
    (over the folds; ``se_of`` may measure it otherwise, e.g. by bootstrap on a single slice)."""
    real = [e for e in entries if get_family(e.family).role != "no_skill" and e.complete and e.mean is not None]
    if not real:
        return None, ("No candidate finished within the budget: raise the time budget.",)
    top = max(real, key=lambda e: e.mean)
    se = se_of(top) if se_of else (top.std or 0.0) / math.sqrt(max(n_folds, 1))
    close = [e for e in real if e.mean >= top.mean - se]
    chosen = min(close, key=_simplicity)
    reasons = [f"{top.label} scored best: {METRIC_NAMES[metric]} {top.mean:.3f} ± {top.std or 0:.3f}"
               + (" over the folds." if n_folds > 1 else " on the held-apart rows.")]
    paired = _paired_gain(top, chosen)
    if paired is not None:
        gain, noise = paired
        reasons.append(f"{top.label} beat {chosen.label.lower()} on the same folds by {gain:+.3f} a fold, more "
                       f"than the noise of that difference (a 95% margin of {noise:.3f}): settings of one family "
                       "are no simpler than each other, so the better one is kept.")
        chosen = top
    if chosen is not top:
        reasons.append(f"{chosen.label} scored {chosen.mean:.3f}, within one standard error ({se:.3f}) of the best: "
                       f"within noise, so the simpler {chosen.label.lower()} is kept.")
    guess = next((e for e in entries if get_family(e.family).role == "no_skill" and e.mean is not None), None)
    if guess is not None and chosen.mean - guess.mean < max(se, 0.01):
        reasons.append("Warning: no model clearly beats guessing — the columns may not predict the target.")
    return chosen.model, tuple(reasons)


def _paired_gain(top: Entry, chosen: Entry) -> tuple[float, float] | None:
    """Where the one-standard-error rule kept a family's own settings over a variant of the same
    family that scored best: the variant's mean gain over it and its 95% margin, paired over the
    folds (Student's t), if the gain is past that margin (None otherwise). A fold's hard rows are
    hard for both, so the pair's spread is far below either's own: on a daily ridership table small
    leaves gained 0.003-0.009 R² on each of three folds (a margin of 0.005), an unpaired standard
    error of 0.009."""
    if top is chosen or top.family != chosen.family or len(top.values) < 2 or len(top.values) != len(chosen.values):
        return None
    diffs = top.values - chosen.values
    gain = float(diffs.mean())
    noise = float(stats.t.ppf(PAIRED_CONFIDENCE, diffs.size - 1) * diffs.std(ddof=1) / math.sqrt(diffs.size))
    return (gain, noise) if gain > noise else None


def _simplicity(entry: Entry) -> tuple[float, int]:
    """Simpler first: the family's comparison order, then a family's own settings before a variant."""
    order = get_family(entry.family).comparison_order
    return (float("inf") if order is None else order, int(bool(entry.candidate and entry.candidate.note)))


def take_rows(frame, positions: np.ndarray):
    """``frame.iloc[positions]``; a run of consecutive positions as a slice, which pandas shares
    rather than copies (copy-on-write): a million-row table's slice is not a second table."""
    positions = np.asarray(positions)
    if positions.size and positions[-1] - positions[0] + 1 == positions.size and np.all(np.diff(positions) == 1):
        return frame.iloc[int(positions[0]):int(positions[-1]) + 1]
    return frame.iloc[positions]


def with_categories(data: Prepared, names: Sequence[str]) -> Prepared:
    """``data`` with the number columns ``names`` read as categories (codes and IDs stored as numbers)."""
    if not names:
        return data
    columns = tuple(replace(c, role="categorical", reason="a code stored as a number: read as a category")
                    if c.name in names else c for c in data.columns)
    return replace(data, columns=columns)


def _score_fold(candidate: Candidate, data: Prepared, summary: DataSummary, train: np.ndarray, valid: np.ndarray,
                seed: int, stop: StopFlag, time_left: float | None = None, stop_on_held_out: bool = False
                ) -> tuple[dict[str, float | None], np.ndarray, Fitted]:
    X, y, task, classes = data.X, data.y, data.task, data.classes
    if stop_on_held_out:  # one large held-apart slice: early stopping may watch it too
        fit_rows, stop_rows = train, valid
    else:  # early stopping looks at a slice of the training part only: the fold's rows stay unseen
        inner_train, inner_valid = split_rows(y.iloc[train].to_numpy(), task, 0.1, seed)
        fit_rows, stop_rows = train[inner_train], train[inner_valid]
    family = get_family(candidate.model)
    ctx = FitContext(X_train=take_rows(X, fit_rows), y_train=take_rows(y, fit_rows), X_valid=take_rows(X, stop_rows),
                     y_valid=take_rows(y, stop_rows), task=task, classes=classes, params=dict(candidate.params),
                     seed=seed, device=device_for(candidate.model), emit=ignore, stop=stop,
                     prepared=with_categories(data, candidate.as_category),
                     imbalanced=is_imbalanced(y.iloc[fit_rows], classes), time_budget=time_left)
    fitted = family.fit(ctx)
    if fitted.cancelled:  # a half-grown model is not scored (predicting it only delays the Stop)
        return {}, np.empty(0), fitted
    if task == "regression":
        prediction = np.asarray(fitted.model.predict(take_rows(X, valid)), dtype=float)
    else:
        prediction = class_probabilities(fitted.model, take_rows(X, valid), classes)
    return _fold_scores(task, classes, y.iloc[valid], prediction), prediction, fitted


def _score_image_fold(candidate: Candidate, data: ImageData, summary: DataSummary, train: np.ndarray,
                      valid: np.ndarray, seed: int, stop: StopFlag, time_left: float | None = None,
                      stop_on_held_out: bool = False) -> tuple[dict[str, float | None], np.ndarray, Fitted]:
    """One image candidate on one fold; as ``_score_fold``, early stopping watches a slice of the
    fold's training part only."""
    X, y, task, classes = data.images, data.labels, summary.task, data.class_names
    inner_train, inner_valid = split_rows(y[train], task, 0.1, seed)
    fit_rows, stop_rows = train[inner_train], train[inner_valid]
    ctx = FitContext(X_train=X[fit_rows], y_train=y[fit_rows], X_valid=X[stop_rows], y_valid=y[stop_rows], task=task,
                     classes=classes, params=dict(candidate.params), seed=seed, device=device_for(candidate.model),
                     emit=ignore, stop=stop, time_budget=time_left)
    fitted = get_family(candidate.model).fit(ctx)
    if fitted.cancelled:
        return {}, np.empty(0), fitted
    prediction = class_probabilities(fitted.model, X[valid], classes)
    truth = np.asarray(classes, dtype=object)[y[valid]]  # image labels are class indexes
    return _fold_scores(task, classes, truth, prediction), prediction, fitted


def _fold_scores(task, classes, y_valid, prediction) -> dict[str, float | None]:
    scores = metrics_for(task, classes, y_valid, prediction)
    return {k: scores.get(k) for k in FOLD_METRICS[task]}


COMPARISONS_DIR = ".comparisons"  # hidden: the run history lists only trained runs


def save_comparison(runs_dir, comparison: Comparison, source: str) -> Path:
    """Write the leaderboard as JSON beside the runs; returns its path."""
    from datetime import UTC, datetime

    from core.runs import jsonable, slug

    folder = Path(runs_dir) / COMPARISONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug(source)}.json"
    payload = dict(comparison.as_dict(), source=source, created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    path.write_text(json.dumps(jsonable(payload), indent=2))
    return path


def load_comparison(path) -> Comparison:
    """A comparison saved by ``save_comparison`` (JSON)."""
    try:
        return Comparison.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(f"The comparison '{Path(path).name}' cannot be read any more. Compare the models again.") \
            from None



def board_row(entry: Entry, n_folds: int | None = None) -> dict:
    """One leaderboard line for display: the main metric's mean ± std over the folds done (std
    from two folds on), folds done (of ``n_folds`` while it runs), mean fit seconds, a note."""
    done = len(entry.fit_s)
    return {"model": entry.label, "key": entry.model, "metric": entry.metric or None, "mean": entry.mean,
            "std": entry.std if entry.values.size > 1 else None,
            "folds": f"{done}/{n_folds}" if done and n_folds else str(done), "fit_s": entry.mean_fit_s,
            "note": entry.skipped or ""}


def leaderboard_rows(events) -> list[dict]:
    """A live leaderboard from a comparison job's events so far: one ``board_row`` per candidate,
    best first."""
    entries: dict[str, Entry] = {}
    n_folds: dict[str, int] = {}
    for event in list(events):
        if isinstance(event, FoldEnded):
            entry = entries.setdefault(event.model, _live_entry(event.model, event.metric, event.label))
            entry.metric = event.metric
            for name, value in event.scores.items():
                entry.scores.setdefault(name, []).append(value)
            entry.fit_s.append(event.fit_seconds)
            n_folds[event.model] = event.n_folds
        elif isinstance(event, CandidateSkipped):
            entries.setdefault(event.model, _live_entry(event.model, "", event.label)).skipped = event.why
    rows = [board_row(entry, n_folds.get(entry.model)) for entry in entries.values() if entry.metric or entry.skipped]
    return sorted(rows, key=lambda r: (r["mean"] is None, -(r["mean"] or 0.0)))


def _live_entry(model: str, metric: str, label: str) -> Entry:
    """A leaderboard line for a candidate known only from its events: its name and label (enough
    to draw; a live line is never picked from)."""
    if not label:
        return Entry(model=model, metric=metric)
    return Entry(model=model, metric=metric, candidate=Candidate(name=model, model=model, label=label))
