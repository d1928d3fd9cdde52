"""Charts that read themselves: one or two plain sentences per chart, with this run's numbers.

Each function takes the pieces a chart is drawn from (a run's history, its confusion matrix, its
curves and operating point, importances, predictions, gallery) and says what *this* chart shows:
"the validation loss was lowest at boosting round 70 (0.104); …". The generic how-to-read text
stays with the page. Pure and cheap (the live curve's reading is redrawn twice a second); the text
is Streamlit markdown whose terms link to the Glossary page (``core.glossary.link``). Names that
come from the data (classes, columns) are quoted and escaped, so they never turn into markdown.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.evaluation import Confusion, Curve, OperatingPoint
from core.glossary import link
from core.importance import Importance
from core.models.base import EarlyStopping
from core.run_record import CURVE_ON_TRAINING, CURVE_ON_VALIDATION
from core.types import Task

#: Characters that would start markdown (or Streamlit's LaTeX) inside a sentence.
_MARKDOWN = set("\\`*_[]$<>~|")
#: The validation loss counts as having risen since its lowest point past this share of it.
ROSE = 0.02


# ---------------------------------------------------------------- words and numbers


def quote(name: Any) -> str:
    """A class name as it reads in a sentence: in curly quotes, markdown characters escaped."""
    return "“" + "".join("\\" + c if c in _MARKDOWN else c for c in str(name)) + "”"


def code(name: Any) -> str:
    """A column name as a code span (any backticks inside fenced off)."""
    name = str(name)
    fence = "``" if "`" in name else "`"
    pad = " " if "`" in name else ""
    return f"{fence}{pad}{name}{pad}{fence}"


def number(x: float, digits: int = 3) -> str:
    """A loss, an error or a value: ``digits`` significant digits, whole numbers from 1,000 on."""
    x = float(x)
    if not math.isfinite(x):
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    text = f"{x:.{digits}g}"
    return "0" if text in ("-0", "0") else text


def signed(x: float) -> str:
    """A number with its sign, for errors that may go either way: "+3.2", "−1.5"."""
    text = number(abs(x))
    return text if text == "0" else ("+" if x > 0 else "−") + text


def percent(share: float) -> str:
    """A share as a whole percentage, never rounded to 0% or 100% when it is not."""
    if not math.isfinite(share):
        return "—"
    if 0 < share < 1 and round(share * 100) in (0, 100):
        return f"{share:.1%}"
    return f"{share:.0%}"


def _at(unit: str, n: float) -> str:
    """A point on a training curve: "boosting round 37", "epoch 5", "120 trees"."""
    n = int(n)
    return f"{n:,} trees" if unit == "trees" else f"{unit} {n:,}"


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit + "s"


def _count(unit: str, n: float) -> str:
    """How many steps: "90 boosting rounds", "1 epoch", "160 trees"."""
    n = int(n)
    return f"{n:,} {('tree' if unit == 'trees' else unit) if n == 1 else _plural(unit)}"


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _alarms(precision: float, flagged: int, right: int) -> str:
    """Precision in words: "57% of its alarms are right (about 6 in 10)"."""
    if right == flagged:
        return f"all {flagged:,} of its alarms are right" if flagged > 1 else "its one alarm is right"
    share = f"{percent(precision)} of its alarms are right"
    if precision >= 0.95 or precision <= 0:
        return share
    if precision >= 0.5:
        return f"{share}, about {round(precision * 10)} in 10"
    return f"{share}, about 1 in {round(1 / precision)}"


# ---------------------------------------------------------------- the training curve


def _curve(history: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch, train and validation loss from ``EpochEnded`` events or manifest dicts."""
    def get(item: Any, key: str) -> float:
        value = item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)
        return math.nan if value is None else float(value)

    items = list(history)
    return tuple(np.asarray([get(h, k) for h in items], dtype=float)  # type: ignore[return-value]
                 for k in ("epoch", "train_loss", "valid_loss"))


def _kept_epoch(epoch: np.ndarray, train: np.ndarray, valid: np.ndarray) -> int:
    """The epoch whose weights a torch fit restores: its early stopping's own rule replayed
    (the best loss by a margin, the training loss where there was no validation loss)."""
    tracker = EarlyStopping(patience=len(epoch) + 1)
    for e, t, v in zip(epoch, train, valid, strict=True):
        tracker.improved(int(e), t if math.isnan(v) else v)
    return tracker.best_epoch


def _rose(train: np.ndarray, valid: np.ndarray, best: int) -> float | None:
    """How much the validation loss rose from its lowest to the end while the training loss kept
    falling (a share of the lowest); None when it did not."""
    if best >= len(valid) - 1 or not math.isfinite(valid[-1]) or not train[-1] < train[best]:
        return None
    rise = (valid[-1] - valid[best]) / max(abs(valid[best]), 1e-12)
    return float(rise) if rise > ROSE else None


def loss_curve(history: Sequence[Any], unit: str = "epoch", *, stopped_early: bool = False,
               cancelled: bool = False, family: str = "sklearn", contest: bool = False,
               contest_curve: str = CURVE_ON_TRAINING) -> str:
    """The saved training curve: where the validation loss was lowest, where and why training
    stopped, what the model kept, and whether it began to overfit.

    ``family`` is the run's model family: torch fits restore their best epoch's weights, the
    scikit-learn ones keep every round or tree they grew. ``contest``: an automatic run, whose
    curve comes from the final fit and watched a slice of the training rows, or the validation rows
    (``contest_curve``, ``RunRecord.contest_curve``) where that fit decided nothing on them.
    """
    epoch, train, valid = _curve(history)
    on_slice = contest and contest_curve != CURVE_ON_VALIDATION
    watched = "a slice of the training rows" if on_slice else "the validation rows"
    if len(epoch) == 0:
        return "This model reported no training curve: it is fitted in one go."
    if len(epoch) == 1:
        words = (f"This model is fitted in one go, so it has no training curve, only one point: {link('loss', 'loss')} "
                 f"{number(train[0])} on the training rows")
        return words + (f" and {number(valid[0])} on {watched}." if math.isfinite(valid[0]) else ".")
    if not np.isfinite(valid).any():
        return (f"Only the training loss was recorded: {number(train[0])} at {_at(unit, epoch[0])}, "
                f"{number(train[-1])} at {_at(unit, epoch[-1])}.")
    best = int(np.nanargmin(valid))
    last = epoch[-1]
    text = f"The validation loss was lowest at {_at(unit, epoch[best])} ({number(valid[best])})"
    if cancelled:
        text += f"; you stopped training at {_at(unit, last)}"
    elif stopped_early:
        text += f"; training {link('early-stopping', 'stopped early')} at {_at(unit, last)}"
    elif best == len(epoch) - 1:
        text += f", its last point: it was still falling, so more {_plural(unit)} might help"
    else:
        text += f"; training ran on to {_at(unit, last)}"
    if family == "torch":
        kept = _kept_epoch(epoch, train, valid)
        text += f" and kept the weights of {_at(unit, kept)}." if kept else ", before any epoch finished."
    elif best < len(epoch) - 1:
        text += f", and the model keeps all {_count(unit, last)}, ending at {number(valid[-1])}."
    else:
        text += "."
    rise = _rose(train, valid, best)
    if rise is not None:
        text += (f" After {_at(unit, epoch[best])} it rose {percent(rise)} while the training loss kept "
                 f"falling: the model began to memorise the training rows ({link('overfitting', 'overfitting')}).")
    if on_slice:
        text += (" In an automatic run this is the final fit's curve, and its validation loss is measured on a slice "
                 "of the training rows; the scores above use the untouched validation rows.")
    elif contest:
        text += (" In an automatic run this is the final fit's curve: it grew as many rounds as the contest's folds "
                 "had needed, so the validation rows it is measured on decided nothing.")
    return text


def live_curve(epochs: Sequence[Any], unit: str = "epoch") -> str:
    """The curve while it grows: where training is, the lowest validation loss so far and how long
    ago, and a rise while the training loss falls."""
    epoch, train, valid = _curve(epochs)
    if len(epoch) == 0:
        return "The curve appears after the first epoch."
    last = epochs[-1]
    cap = getattr(last, "max_epochs", None) or (last.get("max_epochs") if isinstance(last, Mapping) else None)
    where = _first_upper(_at(unit, epoch[-1])) + (f" of at most {int(cap):,}" if cap else "")
    if not np.isfinite(valid).any():
        return f"{where}: training loss {number(train[-1])} (no validation loss is measured)."
    text = f"{where}: validation loss {number(valid[-1])}."
    best = int(np.nanargmin(valid))
    if best < len(epoch) - 1:
        ago = int(epoch[-1] - epoch[best])
        text += f" Lowest so far: {number(valid[best])} at {_at(unit, epoch[best])}, {_count(unit, ago)} ago."
        rise = _rose(train, valid, best)
        if rise is not None:
            text += (f" It has risen {percent(rise)} since while the training loss kept falling: the first sign "
                     f"of {link('overfitting', 'overfitting')}.")
    elif len(epoch) > 1:
        text += f" Still falling, from {number(valid[0])} at {_at(unit, epoch[0])}."
    return text


# ---------------------------------------------------------------- where it errs


def confusion(conf: Confusion, threshold: float | None = None) -> str:
    """The confusion matrix: for two classes what it finds and misses of the positive (last)
    class; for more, how many it gets right and the mistake it makes most often."""
    matrix, labels = np.asarray(conf.matrix), conf.labels
    total = int(matrix.sum())
    if total == 0:
        return "There are no validation rows to count."
    at = f"At threshold {threshold:.2f}, " if threshold is not None else ""
    if len(labels) == 2:
        (tn, fp), (fn, tp) = matrix.tolist()
        neg, pos = quote(labels[0]), quote(labels[1])
        if fp == 0 and fn == 0:
            return _first_upper(f"{at}it gets all {total:,} validation rows right: every real {pos} found, "
                                "no false alarm.")
        if tp + fn == 0:
            return _first_upper(f"{at}there is no real {pos} row among the {total:,} validation rows; it calls "
                                f"{fp:,} of them {pos}.")
        return _first_upper(f"{at}it finds {tp:,} of the {tp + fn:,} real {pos} rows and misses {fn:,}; it also "
                            f"calls {fp:,} of the {tn + fp:,} {neg} rows {pos}.")
    right = int(np.trace(matrix))
    text = f"It gets {right:,} of the {total:,} validation rows right ({percent(right / total)})."
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    top = int(off.max())
    if top == 0:
        return f"It gets all {total:,} validation rows right: no class is taken for another."
    rows = matrix.sum(axis=1)
    cells = sorted((tuple(c) for c in np.argwhere(off == top)), key=lambda c: (-top / rows[c[0]], c))
    if len(cells) == 1:
        i, j = cells[0]
        if int(off.sum()) == 1:
            return text + f" Its one mistake takes a {quote(labels[i])} row for {quote(labels[j])}."
        if int(off.sum()) == top:
            return text + (f" All its mistakes are one kind: {top:,} of the {int(rows[i]):,} {quote(labels[i])} rows "
                           f"taken for {quote(labels[j])}.")
        return text + (f" It most often takes {quote(labels[i])} for {quote(labels[j])}: {top:,} of the "
                       f"{int(rows[i]):,} {quote(labels[i])} rows.")
    pairs = [f"{quote(labels[i])} taken for {quote(labels[j])}" for i, j in cells[:3]]
    more = f", and {len(cells) - 3} more" if len(cells) > 3 else ""
    return text + f" Its most common mistakes, {top:,} row{'s' if top > 1 else ''} each: {', '.join(pairs)}{more}."


def _operating(point: OperatingPoint) -> str:
    """What a binary model does at its threshold, from the operating point's confusion matrix."""
    (tn, fp), (fn, tp) = np.asarray(point.confusion.matrix).tolist()
    pos, t = quote(point.positive), f"{point.threshold:.2f}"
    if tp + fn == 0:
        return f"There is no real {pos} row among the validation rows."
    if point.n_flagged == 0:
        return f"At threshold {t} it calls no row {pos}, so it finds none of the {tp + fn:,} real ones."
    recall = tp / (tp + fn)
    return (f"At threshold {t} it finds {percent(recall)} of the real {pos} rows, {tp:,} of {tp + fn:,} (its "
            f"{link('recall', 'recall')}), and {_alarms(tp / (tp + fp), tp + fp, tp)} (its "
            f"{link('precision', 'precision')}).")


def _spread(curves: Sequence[Curve], name: str, guess: str) -> str:
    """Several classes' areas: the lowest and the highest, or all perfect. ``name`` may be a link."""
    areas = [(c.area, c.label) for c in curves if math.isfinite(c.area)]
    if not areas:
        return f"The {name} could not be computed for these rows."
    lo, hi = min(areas), max(areas)
    if lo[0] >= 0.9995:
        return f"Every class's {name} is 1.000: each real case of a class is ranked above every other row."
    if hi[0] - lo[0] < 0.0005:
        return f"Every class's {name} is {lo[0]:.3f}. {guess}"
    return (f"The {name} runs from {lo[0]:.3f} for {quote(lo[1])}, the class hardest to pick out, to {hi[0]:.3f} "
            f"for {quote(hi[1])}. {guess}")


def pr_curves(curves: Sequence[Curve], point: OperatingPoint | None = None) -> str:
    """Precision-recall: at the threshold, how much it finds and how many alarms are right; the
    average precision against guessing (binary), or the classes from hardest to easiest."""
    if not curves:
        return "There is no precision-recall curve: the validation rows hold a single class."
    if len(curves) == 1:
        c = curves[0]
        text = (_operating(point) + " ") if point is not None else ""
        ap = link("average-precision", "Average precision")
        if not math.isfinite(c.area):
            return text + f"{ap} could not be computed for these rows."
        return text + (f"{ap} {c.area:.3f}, against {c.prevalence:.3f} for guessing (the share of real "
                       f"{quote(c.label)} rows).")
    guess = float(np.mean([c.prevalence for c in curves]))
    return _spread(curves, link("average-precision", "average precision"),
                   f"Guessing would score each class's share of the rows, about {guess:.2f}.")


def roc_curves(curves: Sequence[Curve], point: OperatingPoint | None = None, imbalanced: bool = False) -> str:
    """ROC: what the area means for this run (the chance a real case outranks another row), the
    false-alarm rate at the threshold, and a word of caution when the classes are imbalanced."""
    if not curves:
        return "There is no ROC curve: the validation rows hold a single class."
    auc = link("roc-auc", "ROC AUC")
    if len(curves) > 1:
        return _spread(curves, auc, "Guessing scores 0.5.")
    c = curves[0]
    if not math.isfinite(c.area):
        return f"The {auc} could not be computed for these rows."
    pos = quote(c.label)
    other = f"{quote(point.confusion.labels[0])} row" if point is not None else "other row"
    text = (f"{auc} {c.area:.3f}: a random real {pos} row gets a higher score than a random {other} "
            f"{percent(c.area)} of the time (guessing: 50%).")
    if point is not None:
        (tn, fp), (fn, tp) = np.asarray(point.confusion.matrix).tolist()
        if tn + fp and tp + fn:
            text += (f" At threshold {point.threshold:.2f} it wrongly flags {percent(fp / (tn + fp))} of the "
                     f"{quote(point.confusion.labels[0])} rows to find {percent(tp / (tp + fn))} of the {pos} ones.")
    if imbalanced:
        text += (f" With {pos} only {percent(c.prevalence)} of the rows, the precision-recall curve is the sterner "
                 "test.")
    return text


# ---------------------------------------------------------------- why


def importances(items: Sequence[Importance], task: Task) -> str:
    """Permutation importance: the column the model leans on most and by how much (in the score it
    was measured with: log loss for classes, R² for numbers), and the columns it does not use."""
    measured = sorted((i for i in items if math.isfinite(i.importance)), key=lambda i: -i.importance)
    if not measured:
        return "No column importance was measured for this run."
    effect = f"raises the {link('log-loss', 'log loss')} by" if task != "regression" else \
        f"lowers {link('r2', 'R²')} by"
    top, rest = measured[0], measured[1:]
    if top.importance <= 0:
        return (f"Shuffling no column made the model worse ({link('permutation-importance', 'permutation importance')}): "
                "it does not rely on any one of them, which is what a model that learnt nothing looks like.")
    spread = f" (± {number(top.std, 2)})" if top.std > 0 else ""
    text = f"Shuffling {code(top.feature)} {effect} {number(top.importance)}{spread}"
    if not rest:
        text += ": it is the only column."
    elif rest[0].importance < top.importance / 2:
        text += ": no other column matters half as much."
    else:
        text += f"; next comes {code(rest[0].feature)} ({number(rest[0].importance)})."
    if top.importance < 2 * top.std:
        text += " That is within the spread of the shuffles, so read the order loosely."
    idle = [i for i in measured if i.importance <= 0]
    if len(idle) == 1:
        text += f" One column, {code(idle[0].feature)}, has a grey bar: shuffling it did not hurt."
    elif idle:
        text += (f" {len(idle)} of the {len(measured)} columns have grey bars: shuffling them did not hurt, so the "
                 "model does not rely on them.")
    return text


def _regression_frame(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    true = predictions["true"].to_numpy(dtype=float)
    pred = predictions["predicted"].to_numpy(dtype=float)
    rows = predictions["row"].to_numpy() if "row" in predictions else np.arange(1, len(true) + 1)
    keep = np.isfinite(true) & np.isfinite(pred)
    return true[keep], pred[keep], rows[keep]


def _exact(error: np.ndarray, true: np.ndarray) -> bool:
    scale = max(float(np.abs(true).max()), 1.0)
    return bool((np.abs(error) <= 1e-9 * scale).all())


def predicted_vs_actual(predictions: pd.DataFrame) -> str:
    """Predicted against actual: how close half the rows come, the biggest miss, and whether the
    model pulls extreme values towards the middle."""
    true, pred, rows = _regression_frame(predictions)
    if len(true) == 0:
        return "There are no validation rows to draw."
    error = np.abs(true - pred)
    if _exact(error, true):
        return f"Every prediction is exact: all {len(true):,} dots lie on the diagonal."
    mae = float(error.mean())
    text = (f"Half of the predictions are within ±{number(np.median(error))} of the actual value, and on average "
            f"they are {number(mae)} off (the {link('mae', 'mean absolute error')}).")
    worst = int(np.argmax(error))
    text += f" The biggest miss is row {rows[worst]}: {number(pred[worst])} predicted for an actual {number(true[worst])}."
    if len(true) >= 20:
        order = np.argsort(true, kind="stable")
        tenth = max(2, len(true) // 10)
        high = float((true - pred)[order[-tenth:]].mean())
        low = float((true - pred)[order[:tenth]].mean())
        if high > 0.5 * mae and low < -0.5 * mae:
            text += (f" It pulls the extremes towards the middle: the highest tenth of actual values are predicted "
                     f"{number(high)} too low on average, the lowest tenth {number(-low)} too high.")
    return text


def residuals(predictions: pd.DataFrame) -> str:
    """Residuals against the prediction: where the middle half of the errors lies, an overall lean,
    and whether the errors grow (a funnel) or lean one way in part of the range (a missed pattern)."""
    true, pred, _ = _regression_frame(predictions)
    if len(true) == 0:
        return "There are no validation rows to draw."
    res = true - pred
    if _exact(res, true):
        return "Every residual is 0: the model is exact on these rows."
    mae, mean = float(np.abs(res).mean()), float(res.mean())
    q1, q3 = np.percentile(res, [25, 75])
    text = f"The middle half of the {link('residual', 'residuals')} lies between {signed(q1)} and {signed(q3)}"
    if abs(mean) > 0.2 * mae:
        text += f"; on average the model predicts {number(abs(mean))} too {'low' if mean > 0 else 'high'}."
    else:
        text += f", centred near 0 (mean {signed(mean)}): no overall lean."
    if len(res) < 30:
        return text
    thirds = np.array_split(np.argsort(pred, kind="stable"), 3)
    size = [float(np.abs(res[t]).mean()) for t in thirds]
    lean = [float(res[t].mean()) for t in thirds]
    if size[0] > 0 and size[2] / size[0] >= 1.5:
        text += (f" Errors grow with the prediction: {size[2] / size[0]:.1f}× larger for the highest third of "
                 "predictions than for the lowest (a funnel).")
    elif size[2] > 0 and size[0] / size[2] >= 1.5:
        text += (f" Errors shrink as the prediction grows: {size[0] / size[2]:.1f}× larger for the lowest third of "
                 "predictions than for the highest.")
    else:
        text += " Their size stays about the same across the predictions: no funnel."
    strongest = int(np.argmax(np.abs(lean)))
    if abs(lean[strongest]) > 0.3 * mae and min(lean) < 0 < max(lean):
        where = ("lowest", "middle", "highest")[strongest]
        text += (f" For the {where} third of predictions it is {number(abs(lean[strongest]))} too "
                 f"{'low' if lean[strongest] > 0 else 'high'} on average: a pattern the model misses.")
    return text


def gallery(true: Sequence[str], predicted: Sequence[str], confidence: Sequence[float],
            conf: Confusion | None = None) -> str:
    """The most confident mistakes (the images shown: their true and predicted classes and the
    model's confidence): how many images were wrong in all (from the run's confusion matrix), how
    sure the model was of the ones shown, and the mix-up they repeat most."""
    shown = len(true)
    total = int(np.asarray(conf.matrix).sum()) if conf is not None else 0
    wrong = total - int(np.trace(conf.matrix)) if conf is not None else None
    if shown == 0:
        return "It got every validation image right: there is no mistake to show." if not wrong else \
            f"It got {wrong:,} of the {total:,} validation images wrong, but none of them was saved to show."
    sure = [float(c) for c in confidence if math.isfinite(float(c))]
    how_sure = ""
    if sure:
        lo, hi = min(sure), max(sure)
        how_sure = f" (it was {percent(lo)}" + (f" to {percent(hi)}" if hi > lo else "") + " sure of its wrong answers)"
    if wrong is not None and total:
        which = "all of them" if shown >= wrong else f"the {shown:,} it was surest about"
        text = f"It got {wrong:,} of the {total:,} validation images wrong; here are {which}{how_sure}."
    else:
        text = f"The {shown:,} mistakes it was surest about{how_sure}."
    (pair, times), = Counter(zip(map(str, true), map(str, predicted), strict=True)).most_common(1)
    if times > 1:
        text += f" The mix-up they repeat most: {quote(pair[0])} taken for {quote(pair[1])}, {times:,} times."
    elif shown > 1:
        text += " No mix-up among them repeats."
    return text
