"""Which input columns a model relies on: permutation importance through the whole pipeline.

How much the score drops when one column's values are shuffled, per *input column* (one-hot parts
never fragment it), computed cheaply enough to run after every fit (``core.evaluation.evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits

from core.schema import label_index
from core.types import Task

#: Permutation importance runs on at most this many validation rows (it costs n_columns × repeats
#: predictions; ~4-5 s for 10k rows × 19 columns here, so a capped sample keeps it to about a second).
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5
#: ...and on fewer rows when the columns are many: about this many predicted rows in all before a
#: column stops early (10k rows × 47 columns: 1,000 rows), never fewer than IMPORTANCE_MIN_ROWS.
IMPORTANCE_BUDGET = 150_000
IMPORTANCE_MIN_ROWS = 500


@dataclass(frozen=True)
class Importance:
    feature: str
    importance: float
    std: float
    method: str = "permutation"


def permutation_importances(model: Any, X: pd.DataFrame, y, task: Task, seed: int = 0,
                            max_rows: int = IMPORTANCE_ROWS, max_repeats: int = IMPORTANCE_REPEATS,
                            fast: bool = True) -> tuple[tuple[Importance, ...], int]:
    """Importance of each *input column*: how much the score drops when that column's values are
    shuffled, through the whole pipeline (so one-hot parts never fragment a column).

    The same measure as scikit-learn's ``permutation_importance`` (log loss or R², up to
    ``max_repeats`` shuffles), computed cheaply: the rows are transformed once and a shuffled
    column only replaces the preprocessor outputs it feeds (``_ColumnScorer``; anything it cannot
    map goes through the whole pipeline), every shuffled copy is predicted in a few big batches
    (a booster pays a fixed cost per predict call), and a column stops being shuffled once its
    importance is settled (``_settled``). Returns the importances (largest first) and the number
    of rows used.
    """
    rng = np.random.default_rng(seed)
    # Each column is shuffled at least MIN_REPEATS times: on a wide table, fewer rows keep the
    # predictions to a budget; the spread shown (over shuffles of these rows) says what that costs.
    max_rows = min(max_rows, max(IMPORTANCE_MIN_ROWS, IMPORTANCE_BUDGET // (MIN_REPEATS * max(X.shape[1], 1))))
    if len(X) > max_rows:
        pick = np.sort(rng.choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[pick], np.asarray(y)[pick]
    y = np.asarray(y)
    X = X.reset_index(drop=True)
    scorer = (_ColumnScorer.build(model, X, y, task) if fast else None) or _PipelineScorer(model, X, y, task)
    base = scorer.base()
    columns = list(X.columns)
    drops: dict[Any, list[float]] = {c: [] for c in columns}
    active = list(columns)
    for repeat in range(max_repeats):
        jobs = [(c, rng.permutation(len(X))) for c in active]
        for (column, _), score in zip(jobs, scorer.shuffled(jobs), strict=True):
            drops[column].append(base - score)
        if repeat + 1 >= MIN_REPEATS:
            top = max(abs(float(np.mean(d))) for d in drops.values())
            active = [c for c in active if not _settled(drops[c], top)]
        if not active:
            break
    items = [Importance(str(c), float(np.mean(drops[c])), float(np.std(drops[c]))) for c in columns]
    return tuple(sorted(items, key=lambda i: -i.importance)), len(X)


#: Every column is shuffled at least this often (a spread from two is a coin toss); at most ``IMPORTANCE_REPEATS``.
MIN_REPEATS = 3
#: A column's importance is settled once it lies this many standard errors from zero, or once it
#: is within this many standard errors of zero and that whole range is negligible next to the top
#: column's importance (``NEGLIGIBLE`` of it): more shuffles would not change what the chart says.
SETTLED_SE = 2.0
NEGLIGIBLE = 0.02


def _settled(drops: list[float], top: float) -> bool:
    d = np.asarray(drops)
    mean, se = float(d.mean()), float(d.std(ddof=1)) / np.sqrt(len(d))
    clear = abs(mean) > SETTLED_SE * se
    negligible = abs(mean) + SETTLED_SE * se <= NEGLIGIBLE * top
    return clear or negligible


class _PipelineScorer:
    """Scores shuffled copies through the whole model (any model that predicts from a frame)."""

    def __init__(self, model: Any, X: pd.DataFrame, y: np.ndarray, task: Task) -> None:
        self.model, self.X, self.y, self.task = model, X, y, task

    def base(self) -> float:
        return float(_batch_scores(self.model, [self.X], self.y, self.task)[0])

    def shuffled(self, jobs: list[tuple[Any, np.ndarray]]) -> np.ndarray:
        copies = []
        for column, perm in jobs:
            copy = self.X.copy()
            copy[column] = self.X[column].to_numpy()[perm]
            copies.append(copy)
        return _batch_scores(self.model, copies, self.y, self.task) if copies else np.zeros(0)


class _ColumnScorer:
    """Transform once: for a Pipeline of column-wise casts, then a ColumnTransformer, then the
    rest, a shuffled input column changes only the outputs of the ColumnTransformer parts that
    read it. Those parts are transformed again on the shuffled rows (exact for any part, since
    predicting is row by row), spliced into the once-transformed matrix, and only the steps after
    the ColumnTransformer run on the stacked copies. ``build`` returns None for anything else."""

    def __init__(self, model, Xc, ct, blocks, base_out, names, after, final, y, task) -> None:
        self.model, self.Xc, self.ct, self.blocks = model, Xc, ct, blocks
        self.base_out, self.names, self.after, self.final, self.y, self.task = (
            base_out, names, after, final, y, task)

    @classmethod
    def build(cls, model: Any, X: pd.DataFrame, y: np.ndarray, task: Task) -> _ColumnScorer | None:
        from sklearn.compose import ColumnTransformer

        from core.features import ColumnCaster

        steps = _flat_steps(model)
        if steps is None:
            return None
        at = next((i for i, s in enumerate(steps) if isinstance(s, ColumnTransformer)), None)
        if at is None or at == len(steps) - 1 or not all(isinstance(s, ColumnCaster) for s in steps[:at]):
            return None
        ct, after, final = steps[at], steps[at + 1:-1], steps[-1]
        try:
            Xc = X
            for step in steps[:at]:
                Xc = step.transform(Xc)
            out = ct.transform(Xc)
            if not isinstance(out, (np.ndarray, pd.DataFrame)):
                return None  # sparse output: not worth a special path
            names = list(out.columns) if isinstance(out, pd.DataFrame) else None
            base_out = np.asarray(out, dtype=float)
            inputs = list(getattr(ct, "feature_names_in_", X.columns))
            blocks: dict[Any, list[tuple[slice, Any, Any]]] = {c: [] for c in X.columns}
            for name, transformer, columns in ct.transformers_:
                where = ct.output_indices_.get(name, slice(0, 0))
                if transformer == "drop" or where.stop <= where.start:
                    continue
                for column in _column_names(columns, inputs):
                    blocks[column].append((where, transformer, columns))
        except Exception:  # noqa: BLE001  (anything unexpected: the whole pipeline is always right)
            return None
        if set(blocks) != set(X.columns):
            return None
        return cls(model, Xc, ct, blocks, base_out, names, after, final, y, task)

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        data: Any = pd.DataFrame(matrix, columns=self.names, copy=False) if self.names is not None else matrix
        for step in self.after:
            data = step.transform(data)
        if self.task == "regression":
            return np.asarray(self.final.predict(data), dtype=float)
        return np.asarray(self.final.predict_proba(data), dtype=float)

    def base(self) -> float:
        return float(_scores(self._predict(self.base_out), 1, self.y, self.task, self.final)[0])

    def _copy(self, column: Any, perm: np.ndarray) -> np.ndarray:
        out = self.base_out.copy()
        for where, transformer, columns in self.blocks[column]:
            if _passthrough(transformer) and not isinstance(columns, str):
                # The part's outputs are its inputs in order: only the shuffled one moves.
                j = where.start + _column_names(columns, list(self.Xc.columns)).index(column)
                out[:, j] = out[perm, j]
                continue
            part = self.Xc[columns].copy() if not isinstance(columns, str) else self.Xc[columns].copy().to_frame()
            part[column] = part[column].to_numpy()[perm]
            if isinstance(columns, str):
                part = part[column]
            if transformer != "passthrough":
                part = transformer.transform(part)
            if hasattr(part, "toarray"):  # a sparse part (text vectors) of an output dense as a whole
                part = part.toarray()
            out[:, where] = np.asarray(part, dtype=float).reshape(len(out), -1)
        return out

    def shuffled(self, jobs: list[tuple[Any, np.ndarray]], batch_rows: int = 200_000) -> np.ndarray:
        n = len(self.base_out)
        per_batch = max(1, batch_rows // max(n, 1))
        scores = []
        for start in range(0, len(jobs), per_batch):
            group = jobs[start:start + per_batch]
            stacked = np.concatenate([self._copy(c, p) for c, p in group])
            scores.append(_scores(self._predict(stacked), len(group), self.y, self.task, self.final))
        return np.concatenate(scores) if scores else np.zeros(0)


def _passthrough(transformer: Any) -> bool:
    """A fitted ColumnTransformer keeps "passthrough" parts as identity FunctionTransformers."""
    from sklearn.preprocessing import FunctionTransformer

    return transformer == "passthrough" or (isinstance(transformer, FunctionTransformer)
                                            and transformer.func is None)


def _flat_steps(model: Any) -> list[Any] | None:
    """The steps of a (nested) scikit-learn Pipeline in order, or None for any other model."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return None
    out = []
    for _, step in model.steps:
        if step is None or step == "passthrough":
            continue
        out += _flat_steps(step) if isinstance(step, Pipeline) else [step]
    return out


def _column_names(columns: Any, inputs: list) -> list:
    """A ColumnTransformer part's columns as input column names (names, positions, or one name)."""
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return list(inputs[columns])
    columns = list(columns)
    if columns and all(isinstance(c, (bool, np.bool_)) for c in columns):
        return [name for name, keep in zip(inputs, columns, strict=True) if keep]
    return [inputs[c] if isinstance(c, (int, np.integer)) else c for c in columns]


def _scores(prediction: np.ndarray, n_copies: int, y: np.ndarray, task: Task, model: Any) -> np.ndarray:
    """R² (regression) or minus log loss of each of ``n_copies`` stacked predictions of the rows
    ``y``: the same numbers as scikit-learn's metrics, without their per-call checks."""
    n = len(y)
    if task == "regression":
        pred = prediction.reshape(n_copies, n)
        y = y.astype(float)
        total = float(((y - y.mean()) ** 2).sum())
        residual = ((pred - y) ** 2).sum(axis=1)
        return 1 - residual / total if total > 0 else np.array([skm.r2_score(y, p) for p in pred])
    proba = prediction.reshape(n_copies, n, -1)
    index = label_index(y, tuple(str(c) for c in model.classes_))
    picked = proba[:, np.arange(n), index] / proba.sum(axis=2)
    eps = np.finfo(proba.dtype).eps
    return np.log(np.clip(picked, eps, 1 - eps)).mean(axis=1)


def _batch_scores(model: Any, frames: list[pd.DataFrame], y: np.ndarray, task: Task,
                  batch_rows: int = 200_000) -> np.ndarray:
    """Score (R², or minus log loss: higher is better) of each frame, predicting many at a time."""
    n = len(frames[0])
    per_batch = max(1, batch_rows // max(n, 1))
    scores = []
    # Many small predictions: OpenMP's thread start-up would cost more than it saves.
    with threadpool_limits(limits=1, user_api="openmp"):
        for start in range(0, len(frames), per_batch):
            group = frames[start:start + per_batch]
            stacked = pd.concat(group, ignore_index=True)
            if task == "regression":
                out = np.asarray(model.predict(stacked), dtype=float)
            else:
                out = np.asarray(model.predict_proba(stacked), dtype=float)
            scores.append(_scores(out, len(group), y, task, model))
    return np.concatenate(scores)
