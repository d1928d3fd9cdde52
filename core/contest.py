"""The automatic contest: a small, budgeted competition between model families on the training
rows, whose winner (or blend) becomes the run's model (ARCHITECTURE.md, "The automatic contest").

The validation rows never take part: candidates are judged by cross-validation inside the
training rows (small tables) or on one held-apart slice of them (large tables), through the
comparison's own machinery (``core.compare``). The simplest candidate within one standard error
of the best wins; a blend of the best is delivered only when it beats the best single candidate
by more than its noise. The winner is then refitted on all the training rows when the budget
allows (large tables keep the model fitted beside the slice). A binary winner's decision
threshold is chosen on its out-of-fold predictions. Every decision adds a sentence, with numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from core.compare import PAIRED_CONFIDENCE, Comparison, Entry, choose_folds, compare, pick, with_categories
from core.errors import RunError
from core.evaluation import MAIN_METRIC, METRIC_NAMES, Threshold, metrics_for
from core.events import Callback, ContestEnded, ContestStarted, StopFlag
from core.models import device_for, get_family
from core.models.base import FitContext, Fitted
from core.models.tabular import BlendFamily
from core.planner import is_imbalanced
from core.splits import split_rows
from core.types import Plan, Prepared

#: From this many training rows the contest judges on one held-apart slice instead of folds, and
#: the winner keeps the model fitted beside the slice (a refit would double the time).
HOLDOUT_ROWS = 50_000
#: Up to this many training rows the contest uses 5 folds; above it, 3.
FIVE_FOLD_ROWS = 2_000
#: The held-apart slice: this share of the training rows (10% from ``LARGE_SLICE_ROWS`` rows on).
SLICE_SHARE, LARGE_SLICE_SHARE, LARGE_SLICE_ROWS = 0.2, 0.1, 200_000
#: At most this many candidates are averaged into a blend.
BLEND_SIZE = 3
#: The share of the budget a run may overrun (the issue's promise: never by more than 10%).
OVERRUN_SHARE = 0.1
#: Bootstrap resamples for the noise of scores on a single held-apart slice.
BOOTSTRAPS = 30
#: Out-of-fold thresholds tried for a binary winner (quantiles of its probabilities).
THRESHOLD_GRID = 199


@dataclass(eq=False)
class ContestOutcome:
    """What the contest delivers to training: the model and the facts the run records."""

    main: Fitted
    model: str  # registry key of the delivered model ("blend" for an average)
    params: dict[str, Any]
    reasons: tuple[str, ...]
    refit: bool  # the delivered model was fitted again on every training row after the contest
    #: Its curve's validation loss is on the run's validation rows (a refit that decided nothing on
    #: the rows it watched: ``ModelFamily.refit_settings``); False: on a slice of the training rows.
    curve_on_validation: bool
    baseline: Fitted | None
    baseline_key: str | None
    threshold: Threshold | None
    candidates: list[dict[str, Any]]


@dataclass(frozen=True)
class _Judging:
    folds: list[tuple[np.ndarray, np.ndarray]]
    words: str
    held_out: bool  # one held-apart slice (large tables): no refit

    @property
    def n_folds(self) -> int:
        return len(self.folds)


def judging(y, task: str, seed: int) -> _Judging:
    """How the training rows are split to judge the candidates, by their number.

    The held-apart slice of a large table is its last rows: the training rows arrive shuffled
    (``split_rows``), so they are a random slice, and a contiguous one is taken without copying
    the table (the million-row job would otherwise hold one more copy of it). Where a class would
    be missing from either part, a stratified split is drawn instead.
    """
    n = len(y)
    if n >= HOLDOUT_ROWS:
        share = LARGE_SLICE_SHARE if n >= LARGE_SLICE_ROWS else SLICE_SHARE
        n_slice = int(round(n * share))
        fit_rows, slice_rows = np.arange(n - n_slice), np.arange(n - n_slice, n)
        if task != "regression":
            codes = pd.factorize(np.asarray(y, dtype=object))[0]
            if len(np.unique(codes[fit_rows])) < codes.max() + 1 or len(np.unique(codes[slice_rows])) < codes.max() + 1:
                fit_rows, slice_rows = split_rows(np.asarray(y), task, share, seed)
        return _Judging([(fit_rows, slice_rows)], f"one held-apart slice of {len(slice_rows):,} of the {n:,} "
                                                   "training rows", True)
    folds, words = choose_folds(y, task, 5 if n <= FIVE_FOLD_ROWS else 3, seed)
    return _Judging(folds, words.rsplit(" on ", 1)[0] + f" inside the {n:,} training rows", False)


def run_contest(data: Prepared, plan: Plan, on_event: Callback, stop: StopFlag, deadline: float | None,
                record: Callback, curve_rows: tuple[Any, Any] | None = None) -> ContestOutcome:
    """Hold the contest on ``data`` (the training rows only) and deliver its winner.

    ``deadline`` is the ``time.perf_counter()`` by which the whole run should be done (None: no
    budget); evaluation and saving are held back from it. Fold results go to ``on_event``; the
    refit's curve to ``record``. ``curve_rows`` (the run's validation X and y) draw that curve
    only where the refit decides nothing on the rows it watches (``ModelFamily.refit_settings``);
    the contest itself never sees them.
    """
    task, metric = data.task, MAIN_METRIC[data.task]
    judge = judging(data.y, task, plan.seed)
    n_train = len(data.y)
    scale = 1.0 if judge.held_out else judge.n_folds / max(judge.n_folds - 1, 1)

    def reserve(per_fold: float) -> float:
        refit = 0.0 if judge.held_out else per_fold * scale
        return refit + 0.5 * max(refit, per_fold) + 1.0  # refit, then evaluation (≤ half the fit + 1 s)

    budget_left = math.inf if deadline is None else deadline - time.perf_counter()
    on_event(ContestStarted(candidates=tuple((c.name, c.label) for c in plan.contest), folds=judge.words,
                            n_folds=judge.n_folds, metric=metric, budget_s=plan.time_budget,
                            ends_by=None if deadline is None else time.time() + budget_left))
    # The no-skill guess takes part as the yardstick (never the pick): it warns when nothing beats it.
    comparison = compare(data, ("dummy", *plan.contest), seed=plan.seed, on_event=on_event, stop=stop,
                         time_budget=budget_left, folds=judge.folds, fold_words=judge.words, keep=True,
                         reserve=reserve, stop_on_held_out=judge.held_out, race=True)
    stopped = stop.is_set()
    noise = _noise(judge, data, metric)
    winner, reasons = _choose(comparison, judge, noise, stopped)
    blend, blend_reason = (None, None) if stopped else _blend(comparison, winner, judge, data, metric, noise)
    members = blend.members if blend else [winner]
    reasons = [_tried(comparison, judge), *reasons] + ([blend_reason] if blend_reason else [])

    refit_s = sum(float(np.mean(e.fit_s)) * scale for e in members)
    time_left = math.inf if deadline is None else deadline - time.perf_counter()
    # The refit may use the 10% the budget tolerates past its end: a winner kept from its last fold
    # learnt from a fifth fewer rows (iris: 0.926 against 0.947 refitted), for want of 50 ms.
    slack = OVERRUN_SHARE * (plan.time_budget or 0.0)
    refit = not stopped and not judge.held_out and refit_s + 0.5 * refit_s + 1.0 <= time_left + slack
    # What lets each member's refit do without rows to stop on (the boosting rounds its folds found).
    grown = {e.model: s for e in members if (s := get_family(e.family).refit_settings(e.fold_settings))}
    fitted = [(e, _refit(e, data, plan.seed, record, stop, deadline, grown.get(e.model, {}), curve_rows))
              if refit else (e, e.fitted) for e in members]
    if refit and any(f.cancelled for _, f in fitted):  # stopped mid-refit: the finished fold models are whole
        fitted, refit = [(e, e.fitted) for e in members], False
    if not refit:
        grown = {}
    reasons.append(_delivery_reason(refit, stopped, judge, n_train, members, grown))
    if blend:
        main = BlendFamily.combine([(e.family, f) for e, f in fitted], task, data.classes)
        model, unit, label = "blend", BlendFamily.curve_unit, "Blend: " + " + ".join(e.label for e in members)
    else:
        main = fitted[0][1]
        model, unit, label = winner.family, get_family(winner.family).curve_unit, winner.label
    main.cancelled = main.cancelled or stopped  # the run says it was stopped, though its model is whole
    threshold, threshold_reason = _threshold(blend.oof if blend else winner.oof, data, is_imbalanced(data.y,
                                                                                                    data.classes))
    if threshold_reason:
        reasons.append(threshold_reason)
    baseline, baseline_key = _baseline(comparison, members, data, plan.seed, refit, stop)
    on_event(ContestEnded(winner=blend.name if blend else winner.model, model=model, label=label, curve_unit=unit,
                          reasons=tuple(reasons), blended=tuple(e.model for e in members) if blend else ()))
    return ContestOutcome(main=main, model=model, params=dict(main.params), reasons=tuple(reasons), refit=refit,
                          curve_on_validation=bool(grown) and curve_rows is not None and not blend,
                          baseline=baseline, baseline_key=baseline_key, threshold=threshold,
                          candidates=_records(comparison, winner, blend))


# ---------------------------------------------------------------- choosing


def _real(comparison: Comparison) -> list[Entry]:
    return [e for e in comparison.entries if get_family(e.family).role != "no_skill" and e.fit_s]


def _noise(judge: _Judging, data: Prepared, metric: str) -> Callable[[Entry], float]:
    """A candidate's standard error: over the folds, or by bootstrap on the single slice."""
    if not judge.held_out:
        return lambda e: (e.std or 0.0) / math.sqrt(max(len(e.values), 1))
    rows = judge.folds[0][1]
    y = data.y.iloc[rows]
    draws = np.random.default_rng(0).integers(0, len(rows), size=(BOOTSTRAPS, min(len(rows), 20_000)))

    def se(entry: Entry) -> float:
        if entry.oof is None:
            return 0.0
        pred = entry.oof[rows]
        values = [metrics_for(data.task, data.classes, y.iloc[d], pred[d]).get(metric) for d in draws]
        return float(np.nanstd(np.asarray([v for v in values if v is not None], dtype=float), ddof=1))

    return se


def _choose(comparison: Comparison, judge: _Judging, noise: Callable[[Entry], float], stopped: bool
            ) -> tuple[Entry, list[str]]:
    """The winner by the one-standard-error rule (after a Stop: the best candidate scored so far)."""
    real = _real(comparison)
    if not real:
        raise RunError("Stopped before the contest had scored any model, so there is nothing to save. "
                       "Start training again and let it run a few seconds.")
    complete = [e for e in real if e.complete]
    if stopped or not complete:
        best = max(real, key=lambda e: e.mean)
        return best, [f"Stopped by you during the contest: the best candidate so far, {best.label} "
                      f"({comparison.metric} {best.mean:.3f}), is kept."]
    best_name, reasons = pick(complete, comparison.metric, judge.n_folds, se_of=noise)
    best = next(e for e in complete if e.model == best_name)
    return best, list(reasons)


@dataclass(eq=False)
class _Blend:
    name: str
    members: list[Entry]
    oof: np.ndarray
    mean: float
    std: float
    scores: list[float] = field(default_factory=list)


def _fold_values(oof: np.ndarray, judge: _Judging, data: Prepared, metric: str) -> np.ndarray:
    return np.asarray([metrics_for(data.task, data.classes, data.y.iloc[v], oof[v]).get(metric) or np.nan
                       for _, v in judge.folds], dtype=float)


def _blend(comparison: Comparison, winner: Entry, judge: _Judging, data: Prepared, metric: str,
           noise: Callable[[Entry], float]) -> tuple[_Blend | None, str | None]:
    """The average of the best scikit-learn candidates, when it beats the best single one by more
    than the noise of the difference (paired over the folds, or bootstrapped on the slice)."""
    pool = sorted((e for e in _real(comparison) if e.complete and e.oof is not None
                   and get_family(e.family).family == "sklearn"), key=lambda e: -e.mean)
    top = max((e for e in _real(comparison) if e.complete), key=lambda e: e.mean)
    if len(pool) < 2:
        return None, None
    best_scores = _fold_values(top.oof, judge, data, metric)
    tried = []
    for size in range(2, min(BLEND_SIZE, len(pool)) + 1):
        members = pool[:size]
        if len({e.family for e in members}) < 2:
            continue  # two variants of one family average to nearly the same model
        oof = np.mean([e.oof for e in members], axis=0)
        scores = _fold_values(oof, judge, data, metric)
        diff = scores - best_scores
        if judge.held_out:
            gain, se = float(diff[0]), _bootstrap_diff(oof, top.oof, judge, data, metric)
        else:
            gain, se = float(np.nanmean(diff)), float(np.nanstd(diff, ddof=1) / math.sqrt(len(diff)))
        # "More than its noise": one-sided 95% — Student's t over a few folds (an SE from 3 fold
        # differences is itself noisy: at 1 SE, blends won inside and lost outside), normal on a slice.
        sure = stats.norm.ppf(PAIRED_CONFIDENCE) if judge.held_out else stats.t.ppf(PAIRED_CONFIDENCE, len(diff) - 1)
        tried.append((gain - sure * se, gain, sure * se, members, oof, scores))
    if not tried:
        return None, None
    margin, gain, se, members, oof, scores = max(tried, key=lambda t: t[0])
    words = " + ".join(e.label.lower() for e in members)
    if gain <= 0.001:
        return None, (f"Averaging the best models ({words}) did not beat {top.label.lower()} alone ({gain:+.3f}): "
                      "the single model is kept.")
    if margin <= 0:
        return None, (f"Averaging the best models ({words}) scored {gain:+.3f} over {top.label.lower()} alone, "
                      f"within the noise (a 95% margin of {se:.3f}): the single model is kept.")
    blend = _Blend(name="blend", members=members, oof=oof, mean=float(np.nanmean(scores)),
                   std=float(np.nanstd(scores, ddof=1)) if len(scores) > 1 else 0.0, scores=list(scores))
    return blend, (f"Averaging {words} scored {blend.mean:.3f}, {gain:+.3f} over {top.label.lower()} alone — more "
                   f"than the noise (a 95% margin of {se:.3f}) — so the blend is delivered.")


def _bootstrap_diff(a: np.ndarray, b: np.ndarray, judge: _Judging, data: Prepared, metric: str) -> float:
    rows = judge.folds[0][1]
    y = data.y.iloc[rows]
    draws = np.random.default_rng(1).integers(0, len(rows), size=(BOOTSTRAPS, min(len(rows), 20_000)))
    diffs = [(metrics_for(data.task, data.classes, y.iloc[d], a[rows][d]).get(metric) or 0.0)
             - (metrics_for(data.task, data.classes, y.iloc[d], b[rows][d]).get(metric) or 0.0) for d in draws]
    return float(np.std(diffs, ddof=1))


# ---------------------------------------------------------------- delivering


def _refit(entry: Entry, data: Prepared, seed: int, record: Callback, stop: StopFlag,
           deadline: float | None, settings: dict[str, Any] | None = None,
           curve_rows: tuple[Any, Any] | None = None) -> Fitted:
    """The candidate fitted again on every training row. A family that stops on the validation
    loss either does without, with ``settings`` (``ModelFamily.refit_settings``: then its curve
    watches ``curve_rows``, which decide nothing), or watches a tenth of the training rows held
    apart (the validation rows stay unseen)."""
    candidate, family = entry.candidate, get_family(entry.family)
    variant = with_categories(data, candidate.as_category)
    rows = np.arange(len(data.y))
    fit_rows, watch_rows = split_rows(data.y.to_numpy(), data.task, 0.1, seed)
    settings = settings or {}
    watch_X, watch_y = data.X.iloc[watch_rows], data.y.iloc[watch_rows]
    if settings or not family.early_stops:
        fit_rows = rows  # it learns from every row; the watched rows only draw its curve
    if settings and curve_rows is not None:
        watch_X, watch_y = curve_rows
    ctx = FitContext(X_train=data.X.iloc[fit_rows], y_train=data.y.iloc[fit_rows], X_valid=watch_X, y_valid=watch_y,
                     task=data.task, classes=data.classes, params={**candidate.params, **settings}, seed=seed,
                     device=device_for(candidate.model), emit=record, stop=stop, prepared=variant,
                     imbalanced=is_imbalanced(data.y.iloc[fit_rows], data.classes),
                     time_budget=None if deadline is None else max(deadline - time.perf_counter(), 1.0))
    return family.fit(ctx)


def _baseline(comparison: Comparison, members: list[Entry], data: Prepared, seed: int, refit: bool,
              stop: StopFlag) -> tuple[Fitted | None, str | None]:
    """The linear candidate as the yardstick, unless it is (part of) the delivered model: then
    the run is judged against the no-skill guess."""
    linear = next((e for e in comparison.entries if get_family(e.family).role == "baseline" and e.fitted is not None
                   and not e.candidate.note), None)
    if linear is None or any(get_family(e.family).role == "baseline" for e in members):
        return None, None
    if refit and not stop.is_set():
        return _refit(linear, data, seed, lambda event: None, stop, None), linear.family
    return linear.fitted, linear.family


def _threshold(oof: np.ndarray | None, data: Prepared, imbalanced: bool) -> tuple[Threshold | None, str | None]:
    """A binary model's decision threshold: the one that maximises macro F1 on its out-of-fold
    predictions (never on the validation rows)."""
    if data.task != "binary" or oof is None:
        return None, None
    scored = ~np.isnan(oof[:, 1])
    truth = (data.y.to_numpy() == data.classes[-1])[scored]
    proba = oof[scored, 1]
    value, best, at_half = best_threshold(truth, proba)
    threshold = Threshold(round(value, 3), "macro_f1", "out-of-fold")
    if abs(value - 0.5) < 0.02 or best - at_half < 0.002:
        return Threshold(0.5, "macro_f1", "out-of-fold"), None
    why = ""
    if imbalanced:
        why = (" (the rare class is flagged too seldom at 0.5)" if value < 0.5 else
               " (the classes were weighted to count equally, which pushes the rare class's probabilities up)")
    return threshold, (f"The model answers “{data.classes[-1]}” from a probability of {value:.2f}, not 0.5{why}: on "
                       f"the out-of-fold predictions that raised macro F1 from {at_half:.3f} to {best:.3f}. "
                       "Accuracy is still reported at this threshold, beside it.")


def best_threshold(truth: np.ndarray, proba: np.ndarray) -> tuple[float, float, float]:
    """The threshold with the highest macro F1 (positive when ``proba >= t``), its macro F1, and
    the macro F1 at 0.5. Candidates are quantiles of ``proba``, so every step changes a decision."""
    grid = np.unique(np.r_[np.quantile(proba, np.linspace(0.005, 0.995, THRESHOLD_GRID)), 0.5])
    scores = np.array([_macro_f1(truth, proba >= t) for t in grid])
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best]), float(_macro_f1(truth, proba >= 0.5))


def _macro_f1(truth: np.ndarray, flagged: np.ndarray) -> float:
    tp = np.sum(truth & flagged)
    fp = np.sum(~truth & flagged)
    fn = np.sum(truth & ~flagged)
    tn = np.sum(~truth & ~flagged)
    f_pos = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    f_neg = 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0
    return float((f_pos + f_neg) / 2)


# ---------------------------------------------------------------- the words and the record


def _tried(comparison: Comparison, judge: _Judging) -> str:
    scored = sorted(_real(comparison), key=lambda e: -e.mean)
    parts = [f"{e.label.lower()} {e.mean:.3f}" + (f" ± {e.std:.3f}" if e.std and len(e.values) > 1 else "")
             for e in scored]
    skipped = [e.label.lower() for e in comparison.entries if e.skipped and not e.fit_s]
    raced = [f"{e.label.lower()} ({e.skipped.split(':', 1)[0].removeprefix('dropped ')})" for e in comparison.entries
             if e.skipped and e.skipped.startswith("dropped")]
    text = f"Tried on {judge.words} ({METRIC_NAMES[comparison.metric]}): " + ", ".join(parts) + "."
    if raced:
        text += " Dropped early, clearly behind the leader, so its time went to the rest: " + ", ".join(raced) + "."
    if skipped:
        text += f" Not tried ({comparison.entries[-1].skipped and 'the budget ran out' or 'stopped'}): " \
                + ", ".join(skipped) + "."
    return text


def _delivery_reason(refit: bool, stopped: bool, judge: _Judging, n_train: int, members: list[Entry],
                     grown: dict[str, dict[str, Any]]) -> str:
    """``grown``: each refitted member's ``refit_settings``, by candidate name."""
    if refit:
        fixed = "".join(f" {e.label} grew {grown[e.model]['rounds']} boosting rounds, the mean its folds needed, so "
                        "no rows were held apart to stop on." for e in members if "rounds" in grown.get(e.model, {}))
        return (f"The winner was then fitted again on all {n_train:,} training rows and is judged below on the "
                f"validation rows, which took no part in the contest.{fixed}")
    if judge.held_out:
        n_fit = len(judge.folds[0][0])
        return (f"With {n_train:,} training rows the winner keeps the model fitted on {n_fit:,} of them beside the "
                "slice (fitting it again would double the time for little gain); it is judged below on the "
                "validation rows, which took no part in the contest.")
    if stopped:
        return "It is the model from its last fold of the contest, judged below on the validation rows."
    return ("The budget left no time to fit the winner again on every training row, so its model from the last fold "
            "of the contest is kept; it is judged below on the validation rows.")


def _records(comparison: Comparison, winner: Entry, blend: _Blend | None) -> list[dict[str, Any]]:
    """The manifest's ``candidates``: each one's name, family, settings, fold scores, seconds, and
    whether it won or was blended."""
    blended = {e.model for e in blend.members} if blend else set()
    out = []
    for entry in comparison.entries:
        record = entry.as_dict()
        record.update(won=(blend is None and entry is winner), blended=entry.model in blended)
        out.append(record)
    if blend is not None:
        out.append({"model": "blend", "family": "blend", "label": "Blend: " + " + ".join(e.label for e in blend.members),
                    "metric": comparison.metric, "mean": blend.mean, "std": blend.std, "scores":
                    {comparison.metric: blend.scores}, "fold_seconds": [], "skipped": None, "won": True,
                    "blended": False, "params": {"members": sorted(blended)}})
    return out


def contest_plan(plan: Plan, outcome: ContestOutcome) -> Plan:
    """The plan as trained: the delivered model named, the contest's reasons added."""
    return replace(plan, model=outcome.model, params=outcome.params, reasons=(*plan.reasons, *outcome.reasons),
                   baseline=outcome.baseline_key)
