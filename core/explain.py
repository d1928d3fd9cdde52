"""Looking closer at a saved run: partial dependence with ICE lines, the rows behind a confusion
matrix cell, and one prediction explained column by column. Pure computations: frames and arrays
in, plain result objects and sentences out (``core.plots`` draws them, ``ui.closer_view`` shows them).

Everything here is model-agnostic: a model is anything with ``predict`` / ``predict_proba`` that
takes the raw columns (a scikit-learn Pipeline, the torch MLP behind its preprocessing, or the
contest's blend ``AveragedModels``, which has no ``fit``). Predictions are made in one stacked
batch per question, on bounded samples, so a page can afford them.

The run folder keeps what these need (ARCHITECTURE.md, "The run folder"): a bounded sample of the
validation rows' raw inputs (``valid_inputs.parquet``, tables) or small thumbnails of validation
images per confusion cell (``valid_thumbnails.npz``, images), written by ``core.runs.save_run``
through ``closer_files``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from core.evaluation import PROBA_PREFIX, class_probabilities, decide
from core.types import Task

VALID_INPUTS_FILE = "valid_inputs.parquet"
VALID_THUMBNAILS_FILE = "valid_thumbnails.npz"
#: The run keeps the raw inputs of at most this many validation rows (a uniform sample beyond).
MAX_INPUT_ROWS = 5000
#: Image runs keep at most this many thumbnails per confusion cell, this many in all, this size.
THUMBNAILS_PER_CELL = 16
MAX_THUMBNAILS = 800
THUMBNAIL_SIZE = 64
#: Partial dependence: grid points per column, rows averaged over, rows drawn as ICE lines.
GRID_POINTS = 20
MAX_CATEGORIES = 12
PD_ROWS = 400
ICE_ROWS = 40
#: One row explained against this many typical (validation) rows.
BACKGROUND_ROWS = 50
#: Columns whose values cannot be swept on a grid (free text, dates) get no dependence plot.
SWEEPABLE_ROLES = frozenset({"numeric", "categorical"})


# ---------------------------------------------------------------- what the run folder keeps


def input_sample(X_valid: pd.DataFrame, max_rows: int = MAX_INPUT_ROWS, seed: int = 0) -> pd.DataFrame:
    """The raw inputs of (a uniform sample of) the validation rows, in file order, with their
    1-based ``row`` number first — the same numbers as the run's predictions."""
    X = X_valid
    if len(X) > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X = X.iloc[pick]
    out = X.reset_index(drop=True)
    out.insert(0, "row", np.asarray(X.index, dtype=np.int64) + 1)
    return out


def thumbnail_sample(images: np.ndarray, predictions: pd.DataFrame, files: list[str] | None = None,
                     per_cell: int = THUMBNAILS_PER_CELL, max_total: int = MAX_THUMBNAILS,
                     size: int = THUMBNAIL_SIZE, seed: int = 0) -> dict[str, np.ndarray]:
    """Small thumbnails of validation images, up to ``per_cell`` from every (true, predicted)
    cell at the saved decision, so a click on any cell has pictures to show. ``images`` are the
    validation images (uint8 N×C×H×W) in the order of ``predictions``."""
    rng = np.random.default_rng(seed)
    cells = predictions.groupby(["true", "predicted"], sort=False).indices
    per_cell = max(1, min(per_cell, max_total // max(len(cells), 1)))
    picked = np.sort(np.concatenate(
        [rng.choice(where, size=min(per_cell, len(where)), replace=False) for where in cells.values()]
        or [np.zeros(0, dtype=np.int64)])).astype(np.int64)
    thumbs = np.stack([_shrink(images[i], size) for i in picked]) if len(picked) else \
        np.zeros((0, images.shape[1] if images.ndim == 4 else 1, size, size), dtype=np.uint8)
    out = {"images": thumbs.astype(np.uint8), "row": predictions["row"].to_numpy(dtype=np.int64)[picked]}
    if files is not None:
        out["files"] = np.asarray([Path(str(files[i])).name for i in picked], dtype="U")
    return out


def _shrink(image: np.ndarray, size: int) -> np.ndarray:
    """One C×H×W uint8 image, at most ``size`` pixels a side."""
    from PIL import Image

    if max(image.shape[1:]) <= size:
        return image
    hwc = np.asarray(image).transpose(1, 2, 0)
    picture = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    small = np.asarray(picture.resize((size, size), Image.Resampling.BILINEAR))
    return (small[None] if small.ndim == 2 else small.transpose(2, 0, 1)).astype(np.uint8)


def closer_files(result: Any, evaluation: Any, data: Any) -> dict[str, Callable[[Path], None]]:
    """Writers for ``core.runs.save_run``'s ``extra_files``: the bounded validation inputs of a
    table, or the validation thumbnails of an image run. Computed now (the split is still held)."""
    X_valid = getattr(result, "X_valid", None)
    if isinstance(X_valid, pd.DataFrame):
        sample = _parquet_safe(input_sample(X_valid, seed=result.plan.seed))
        return {VALID_INPUTS_FILE: lambda path: sample.to_parquet(path, index=False)}
    if isinstance(X_valid, np.ndarray) and X_valid.ndim == 4 and len(evaluation.predictions) == len(X_valid):
        paths = getattr(data, "paths", None)
        files = [paths[i] for i in result.valid_index] if paths is not None else None
        arrays = thumbnail_sample(X_valid, evaluation.predictions, files, seed=result.plan.seed)

        def write(path: Path) -> None:
            with open(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)

        return {VALID_THUMBNAILS_FILE: write}
    return {}


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types (an Excel upload's) become text, missing values kept."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: v if pd.isna(v) else str(v))
    return out


def read_inputs(run_dir: str | Path) -> pd.DataFrame | None:
    """The validation inputs a table run kept (``row`` first), or None for runs saved without them."""
    path = Path(run_dir) / VALID_INPUTS_FILE
    try:
        return pd.read_parquet(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, eq=False)
class Thumbnails:
    """Validation thumbnails of an image run: uint8 N×C×H×W, their prediction ``row``s, file names."""

    images: np.ndarray
    rows: np.ndarray
    files: tuple[str, ...]


def read_thumbnails(run_dir: str | Path) -> Thumbnails | None:
    """The thumbnails an image run kept (plain arrays, never pickles), or None."""
    path = Path(run_dir) / VALID_THUMBNAILS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        images, rows = arrays["images"], arrays["row"]
        files = tuple(str(f) for f in arrays["files"]) if "files" in arrays else ("",) * len(rows)
    return Thumbnails(images, rows, files)


# ---------------------------------------------------------------- the rows behind a cell


@dataclass(frozen=True)
class Cell:
    """One confusion-matrix cell: rows of class ``true`` the model called ``predicted``."""

    true: str
    predicted: str
    count: int

    @property
    def key(self) -> str:
        return cell_key(self.true, self.predicted)

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


_SEP = "\x1f"  # between the two class names of a cell key (no class name holds it)


def cell_key(true: str, predicted: str) -> str:
    return f"{true}{_SEP}{predicted}"


def split_cell_key(key: str) -> tuple[str, str]:
    true, _, predicted = key.partition(_SEP)
    return true, predicted


def cells(confusion: Any) -> list[Cell]:
    """Every cell of a ``core.evaluation.Confusion``: mistakes first, largest first, then the
    correct cells, then the empty ones — the order a drill-down offers them."""
    labels, matrix = confusion.labels, np.asarray(confusion.matrix)
    out = [Cell(t, p, int(matrix[i, j])) for i, t in enumerate(labels) for j, p in enumerate(labels)]
    return sorted(out, key=lambda c: (c.count == 0, c.correct, -c.count))


def decided(predictions: pd.DataFrame, classes: tuple[str, ...], threshold: float | None = None) -> pd.Series:
    """Each validation row's predicted class, decided again at a binary run's ``threshold``
    (the Evaluate slider's), or as saved when there is none."""
    columns = [PROBA_PREFIX + c for c in classes]
    if threshold is None or len(classes) != 2 or not all(c in predictions for c in columns):
        return predictions["predicted"].astype(str)
    index = decide(predictions[columns].to_numpy(dtype=float), classes, threshold)
    return pd.Series(np.asarray(classes, dtype=object)[index], index=predictions.index)


def cell_rows(predictions: pd.DataFrame, classes: tuple[str, ...], true: str, predicted: str,
              threshold: float | None = None) -> pd.DataFrame:
    """The validation rows of one cell: ``row``, ``true``, ``predicted`` (at ``threshold``),
    ``confidence`` (the probability of the predicted class), most confident first."""
    said = decided(predictions, classes, threshold)
    mask = (predictions["true"].astype(str) == true).to_numpy() & (said == predicted).to_numpy()
    picked = predictions.loc[mask, ["row", "true"]].copy()
    picked["predicted"] = said[mask].to_numpy()
    column = PROBA_PREFIX + predicted
    picked["confidence"] = predictions.loc[mask, column].to_numpy(dtype=float) if column in predictions \
        else np.nan
    return picked.sort_values(["confidence", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)


def with_inputs(rows: pd.DataFrame, inputs: pd.DataFrame | None) -> pd.DataFrame:
    """The cell's rows with the inputs kept for them (rows outside the kept sample stay, blank)."""
    if inputs is None or inputs.empty:
        return rows
    return rows.merge(inputs, on="row", how="left", suffixes=("", " (input)"))


# ---------------------------------------------------------------- what the model answers


@dataclass(frozen=True)
class Output:
    """The one number explained: a class's probability, or the predicted value."""

    task: Task
    classes: tuple[str, ...]
    target: str  # the column the model predicts
    of_class: str | None = None  # classification: the class whose probability is explained

    @property
    def percent(self) -> bool:
        return self.of_class is not None

    @property
    def words(self) -> str:
        """"the predicted chance of “yes”" / "the predicted price"."""
        if self.of_class is None:
            return f"the predicted {self.target}"
        return f"the predicted chance of “{self.of_class}”"

    def values(self, model: Any, X: pd.DataFrame) -> np.ndarray:
        # Many small predictions in the page's thread: OpenMP's thread start-up would cost more
        # than it saves, and a script thread must not fight the training workers for cores.
        with threadpool_limits(limits=1, user_api="openmp"):
            if self.of_class is None:
                return np.asarray(model.predict(X), dtype=float)
            proba = class_probabilities(model, X, self.classes)
        return proba[:, self.classes.index(self.of_class)]


def output_for(task: Task, classes: tuple[str, ...], target: str, of_class: str | None = None) -> Output:
    """Regression: the value; binary: the positive class (the last); multiclass: ``of_class``
    (default the first class)."""
    if task == "regression":
        return Output(task, (), target)
    if of_class is None:
        of_class = classes[-1] if len(classes) == 2 else classes[0]
    if of_class not in classes:
        raise ValueError(f"{of_class!r} is not one of the classes {classes}")
    return Output(task, tuple(classes), target, of_class)


# ---------------------------------------------------------------- partial dependence


@dataclass(frozen=True, eq=False)
class Dependence:
    """How the average prediction moves as one column is set to each value of a grid, over a
    sample of rows (partial dependence), and the same for a few single rows (ICE lines)."""

    column: str
    kind: Literal["numeric", "categorical"]
    grid: np.ndarray  # the values the column was set to (numbers, or categories by frequency)
    average: np.ndarray  # the mean prediction at each grid value
    ice: np.ndarray  # ICE_ROWS × grid: single rows' predictions
    ice_rows: np.ndarray  # the 1-based row numbers of the ICE lines (when known)
    n_rows: int  # rows averaged over
    output: Output


def grid_for(values: pd.Series, kind: str, points: int = GRID_POINTS,
             max_categories: int = MAX_CATEGORIES) -> np.ndarray:
    """Numbers: the observed values at evenly spaced quantiles from 5% to 95% (all distinct
    values when there are few); categories: the most frequent ones."""
    present = values.dropna()
    if kind == "categorical":
        return np.asarray(present.value_counts().index[:max_categories], dtype=object)
    numbers = np.asarray(present, dtype=float)
    distinct = np.unique(numbers)
    if len(distinct) <= points:
        return distinct
    return np.unique(np.quantile(numbers, np.linspace(0.05, 0.95, points), method="nearest"))


def partial_dependence(model: Any, X: pd.DataFrame, column: str, output: Output, kind: str = "numeric",
                       max_rows: int = PD_ROWS, ice_rows: int = ICE_ROWS, seed: int = 0,
                       rows: np.ndarray | None = None) -> Dependence:
    """Partial dependence of ``output`` on ``column``, computed by brute force: every sampled
    row is copied once per grid value with ``column`` set to it, all copies are predicted in one
    batch, and the predictions are averaged per grid value.

    scikit-learn's ``sklearn.inspection.partial_dependence(method="brute")`` does the same on a
    Pipeline over raw mixed columns (tried: it works for the single models), but it refuses the
    contest's blend (``AveragedModels`` implements no ``fit``), decides a binary run's class by
    its sorted ``classes_`` rather than the run's own order, and calls predict once per grid value;
    averaging ourselves serves every model the same way. ``rows`` are the 1-based row numbers of
    ``X`` (for naming the ICE lines).
    """
    if kind not in ("numeric", "categorical"):
        raise ValueError(f"partial dependence sweeps numbers or categories, not {kind!r}")
    rng = np.random.default_rng(seed)
    rows = np.arange(1, len(X) + 1) if rows is None else np.asarray(rows)
    if len(X) > max_rows:
        pick = np.sort(rng.choice(len(X), size=max_rows, replace=False))
        X, rows = X.iloc[pick], rows[pick]
    X = X.reset_index(drop=True)
    grid = grid_for(X[column], kind)
    n = len(X)
    if n == 0 or len(grid) == 0:
        raise ValueError(f"the column {column!r} has no values to sweep")
    stacked = X.iloc[np.tile(np.arange(n), len(grid))].reset_index(drop=True)
    stacked[column] = _column_values(np.repeat(grid, n), X[column].dtype)
    predicted = output.values(model, stacked).reshape(len(grid), n)  # grid × rows
    ice_pick = np.sort(rng.choice(n, size=min(ice_rows, n), replace=False))
    return Dependence(column=column, kind="categorical" if kind == "categorical" else "numeric", grid=grid,
                      average=predicted.mean(axis=1), ice=predicted[:, ice_pick].T, ice_rows=rows[ice_pick],
                      n_rows=n, output=output)


def _column_values(values: np.ndarray, dtype: Any) -> Any:
    """Grid values in the column's own type (an integer column stays integer: the grid holds
    observed values), so the pipeline reads them as it read the training rows."""
    try:
        return pd.Series(values).astype(dtype).to_numpy() if not isinstance(dtype, pd.api.extensions.ExtensionDtype) \
            else pd.array(values, dtype=dtype)
    except (TypeError, ValueError):
        return values


def sweepable(columns: list[tuple[str, str]], importances: list[tuple[str, float]]) -> list[str]:
    """The columns a dependence plot can sweep, the most important first: ``columns`` are (name,
    role) of the model's inputs, ``importances`` (name, drop in score). Numeric and categorical
    only (free text and dates have no grid); the columns without a measured gain follow in order."""
    roles = dict(columns)
    ranked = [name for name, value in importances if roles.get(name) in SWEEPABLE_ROLES and value > 0]
    return ranked + [name for name, role in columns if role in SWEEPABLE_ROLES and name not in ranked]


def dependence_reading(dep: Dependence) -> str:
    """The dependence in one or two sentences, e.g. "The predicted chance of “yes” rises from
    12% to 41% as tenure falls below 6."."""
    avg, grid, name = dep.average, dep.grid, dep.column
    what = dep.output.words
    fmt = dep.output
    lo, hi = int(np.argmin(avg)), int(np.argmax(avg))
    spread = float(avg[hi] - avg[lo])
    if spread <= _negligible(dep):
        text = (f"{what.capitalize()} barely moves with {name} ({_value(avg[lo], fmt)} to {_value(avg[hi], fmt)} "
                "across its usual values): on average, the model hardly uses it.")
        if len(dep.ice) >= 3 and _disagreement(dep) > 4 * _negligible(dep):
            text += (" Single rows do move with it, in different directions: it matters only together with other "
                     "columns.")
        return text
    if dep.kind == "categorical":
        text = (f"{what.capitalize()} is highest when {name} is “{grid[hi]}” ({_value(avg[hi], fmt)}) and lowest "
                f"when it is “{grid[lo]}” ({_value(avg[lo], fmt)}).")
        return text + _ice_words(dep)
    steps = np.diff(avg)
    up, down = float(steps[steps > 0].sum()), float(-steps[steps < 0].sum())
    if min(up, down) > 0.25 * max(up, down):  # it goes both ways: name the peak and the trough
        return (f"{what.capitalize()} does not move one way with {name}: it is highest ({_value(avg[hi], fmt)}) "
                f"near {name} = {_number(grid[hi])} and lowest ({_value(avg[lo], fmt)}) near "
                f"{_number(grid[lo])}.") + _ice_words(dep)
    rising = up >= down  # the prediction rises as the column grows
    i, j = _steepest(avg)  # the shortest stretch of the grid holding most of the change
    low_value, high_value = _value(avg[lo], fmt), _value(avg[hi], fmt)
    first, last = _number(grid[0]), _number(grid[-1])
    span = float(grid[-1] - grid[0])
    gradual = span <= 0 or (float(grid[j] - grid[i]) / span > 0.6)
    if gradual:
        where = (f"as {name} rises from {first} to {last}" if rising else f"as {name} falls from {last} to {first}")
    elif rising:
        where = (f"as {name} rises above {_number(grid[i])}" if j == len(grid) - 1 else
                 f"as {name} rises to {_number(grid[j])}, then levels off" if i == 0 else
                 f"mostly as {name} goes from {_number(grid[i])} to {_number(grid[j])}")
    else:
        where = (f"as {name} falls below {_number(grid[j])}" if i == 0 else
                 f"as {name} falls to {_number(grid[i])}, then levels off" if j == len(grid) - 1 else
                 f"mostly as {name} falls from {_number(grid[j])} to {_number(grid[i])}")
    steadily = " steadily" if gradual else ""
    return f"{what.capitalize()} rises{steadily} from {low_value} to {high_value} {where}." + _ice_words(dep)


def _negligible(dep: Dependence) -> float:
    """A change too small to speak of: half a percentage point, or 1% of the ICE lines' range."""
    if dep.output.percent:
        return 0.005
    scale = float(np.ptp(dep.ice)) if dep.ice.size else 0.0
    return max(0.01 * scale, 1e-9)


def _steepest(avg: np.ndarray, share: float = 0.8) -> tuple[int, int]:
    """Grid indexes ``i < j`` of the shortest stretch whose end-to-end change is at least ``share``
    of the whole curve's range."""
    total = float(avg.max() - avg.min())
    best = (0, len(avg) - 1)
    for i in range(len(avg)):
        for j in range(i + 1, len(avg)):
            if abs(float(avg[j] - avg[i])) >= share * total and j - i < best[1] - best[0]:
                best = (i, j)
    return best


def _disagreement(dep: Dependence) -> float:
    """How far single rows' curves stray from moving in parallel: the mean spread, across rows,
    of each ICE line's change from its own start."""
    centred = dep.ice - dep.ice[:, :1]
    return float(np.mean(centred.std(axis=0)))


def _ice_words(dep: Dependence) -> str:
    """Whether single rows follow the average (no interaction), move the same way by very
    different amounts, or go different ways — each row's change between the grid values where the
    average is lowest and highest, against the average's own change."""
    if len(dep.ice) < 3:
        return ""
    lo, hi = int(np.argmin(dep.average)), int(np.argmax(dep.average))
    total = float(dep.average[hi] - dep.average[lo])
    if total <= 0:
        return ""
    each = (dep.ice[:, hi] - dep.ice[:, lo]) / total  # 1: this row moves exactly as the average
    rows = "The thin lines (single rows)" if dep.kind == "numeric" else "The dots (single rows)"
    if np.mean(each < -0.1) > 0.1:
        return (f" {rows} go different ways: {dep.column} raises the prediction for some rows and lowers it for "
                "others, so it matters together with other columns.")
    if float(np.std(each)) > 0.35:
        return (f" {rows} move the same way, some far more than others: how much {dep.column} matters depends on "
                "the row's other columns.")
    return f" {rows} move alike: the effect is much the same for every row."


def _value(value: float, output: Output) -> str:
    return percent(value) if output.percent else _number(value)


def percent(value: float) -> str:
    """A probability for people: "41%", and "under 1%" / "over 99%" rather than a flat 0% or 100%."""
    if value < 0.005:
        return "under 1%"
    if value > 0.995:
        return "over 99%"
    return f"{value:.0%}"


def _number(value: Any) -> str:
    """A grid value for people: 3 significant digits, thousands separated."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(number):
        return str(value)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    magnitude = abs(number)
    return f"{number:,.0f}" if magnitude >= 100 else f"{number:.3g}"


# ---------------------------------------------------------------- one prediction, column by column


@dataclass(frozen=True)
class Push:
    """What one column's value does to a row's prediction: ``change`` is the prediction minus its
    average when that column alone takes the values of typical rows instead."""

    column: str
    value: str  # the row's own value, for people
    typical: str  # a typical value of the column (median or most common), for people
    change: float


@dataclass(frozen=True, eq=False)
class RowExplanation:
    row: str  # how people name the row ("row 17")
    prediction: float  # the explained output for this row
    typical: float  # the average output over the typical rows
    pushes: tuple[Push, ...]  # largest effect first
    n_background: int
    output: Output


def explain_row(model: Any, row: pd.DataFrame, background: pd.DataFrame, output: Output, name: str = "this row",
                n_background: int = BACKGROUND_ROWS, seed: int = 0) -> RowExplanation:
    """How each column of one row moves its prediction: the column alone is set, in turn, to the
    values it takes in ``n_background`` typical rows, and the prediction's average drop (or rise)
    is that column's push. Model-agnostic (every copy goes through the whole pipeline, in one
    batch); for a model that adds up its columns' effects the pushes add up to the prediction
    minus the typical rows' average."""
    if len(row) != 1:
        raise ValueError(f"explain one row at a time, not {len(row)}")
    columns = [c for c in row.columns if c in background.columns]
    row = row[columns].reset_index(drop=True)
    background = background[columns]
    if len(background) > n_background:
        pick = np.random.default_rng(seed).choice(len(background), size=n_background, replace=False)
        background = background.iloc[np.sort(pick)]
    background = background.reset_index(drop=True)
    k = len(background)
    if k == 0:
        raise ValueError("explaining a row needs typical rows to compare with")
    copies = [row]
    for column in columns:
        swapped = row.iloc[np.zeros(k, dtype=int)].reset_index(drop=True)
        swapped[column] = background[column].to_numpy()
        copies.append(swapped)
    copies.append(background)
    predicted = output.values(model, pd.concat(copies, ignore_index=True))
    own = float(predicted[0])
    swaps = predicted[1:1 + k * len(columns)].reshape(len(columns), k)
    typical = float(predicted[1 + k * len(columns):].mean())
    pushes = [Push(column, _shown(row[column].iloc[0]), _typical(background[column]), own - float(swaps[i].mean()))
              for i, column in enumerate(columns)]
    pushes.sort(key=lambda p: -abs(p.change))
    return RowExplanation(row=name, prediction=own, typical=typical, pushes=tuple(pushes), n_background=k,
                          output=output)


def _shown(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "(missing)"
    return _number(value) if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _typical(values: pd.Series) -> str:
    present = values.dropna()
    if present.empty:
        return "(missing)"
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        return _number(float(np.median(present.to_numpy(dtype=float))))
    return str(present.value_counts().index[0])


def row_reading(expl: RowExplanation, shown: int = 3) -> str:
    """The explanation in words: the prediction against a typical row's, and the columns that
    move it most."""
    fmt = expl.output
    typical = percent(expl.typical) if fmt.percent else _number(expl.typical)
    if fmt.percent:
        head = (f"The model puts the chance of “{fmt.of_class}” for {expl.row} at {percent(expl.prediction)}; "
                f"a typical row gets {typical}.")
    else:
        head = f"The model predicts {fmt.target} {_number(expl.prediction)} for {expl.row}; a typical row gets {typical}."
    small = _negligible_push(fmt, expl)
    big = [p for p in expl.pushes if abs(p.change) > small][:shown]
    if not big:
        return head + " No single column moves it much: it is the combination, or the row is simply typical."
    parts = [f"{p.column} = {p.value} {'raises' if p.change > 0 else 'lowers'} it by {_change(abs(p.change), fmt)}"
             f" (typical {p.typical})" for p in big]
    rest = len([p for p in expl.pushes if abs(p.change) > small]) - len(big)
    tail = (f"; {rest} more column{'s move' if rest != 1 else ' moves'} it a little." if rest > 0 else ".")
    return head + " Most of the difference: " + "; ".join(parts) + tail


def _change(value: float, output: Output) -> str:
    if output.percent:
        points = 100 * value
        return f"{points:.0f} percentage point{'s' if round(points) != 1 else ''}" if points >= 1 else \
            f"{points:.1f} percentage points"
    return _number(value)


def _negligible_push(output: Output, expl: RowExplanation) -> float:
    if output.percent:
        return 0.005
    total = sum(abs(p.change) for p in expl.pushes)
    return 0.02 * total
