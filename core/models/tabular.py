"""scikit-learn model families for tables: the linear baseline, gradient boosting, a forest.

Each family fits one Pipeline (preprocessing + model) on the training split only, so the saved
pipeline takes the raw columns a user uploads. Live curves:

* ``hgb`` reports every boosting round through a hook on the booster's own early-stopping check,
  which already computes train and validation loss each round. Growing the booster in warm-start
  chunks instead cost 0.38 s per resume at 100k rows (re-binning and re-predicting every tree),
  4.5× a plain fit with 10-round chunks; the hook costs nothing measurable.
* ``forest`` grows trees in warm-start chunks (a resume only builds the new trees) and adds the new
  trees' votes to running validation predictions.
* ``linear`` is one fit and one point on the curve.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_array, validate_data
from threadpoolctl import threadpool_limits

from core.device import thread_share
from core.events import EpochEnded, Message
from core.features import dense_preprocessor, sample_positions, tree_preprocessor
from core.memory import release_freed_memory
from core.models.base import (
    LARGE_TABLE,
    DataSummary,
    EarlyStopping,
    FitContext,
    Fitted,
    ModelFamily,
    Tuned,
    Variant,
    epoch_event,
    stop_message,
)
from core.trusted import load_pickle

MODEL_FILE = "model.joblib"
#: Below this many rows boosting runs on one thread: each round is too short for OpenMP's thread
#: start-up to pay off, and on a busy machine its spin-waits make small fits several times slower.
SMALL_FOR_THREADS = 20_000
#: Below this many rows the forest grows its trees on one thread: each tree takes a millisecond or
#: two, and joblib's thread pool waited longer than that for every chunk (a 300-tree forest on 150
#: rows: 0.25 s on one thread, 0.46 s on two; even at 1,000 rows; two threads win from 3,000 on).
FOREST_THREADS_ROWS = 1_000
#: A regression forest's trees each consider this share of the columns at a split (Breiman's third,
#: R's randomForest default), not scikit-learn's all of them: half the time, and over three outer
#: folds R² 0.421 against 0.401 on diabetes, 0.875 against 0.869 on Ames houses, 0.918 against
#: 0.919 on Chicago ridership.
REGRESSION_FEATURE_SHARE = 1 / 3
#: The forest grows this many seconds' worth of trees between looks at the Stop flag.
SECONDS_PER_CHUNK = 1.0
#: Boosting rounds on a large table by default: a 1M-row table took 43 s for 443 rounds on 2 cores.
LARGE_TABLE_ROUNDS = 250
#: Below this many rows, boosting gets small trees and a slow learning rate (it overfits otherwise).
SMALL_TABLE = 1000
SMALL_TABLE_HGB = {"learning_rate": 0.05, "max_leaf_nodes": 4, "min_samples_leaf": 20, "l2_regularization": 1.0,
                   "n_iter_no_change": 20}
#: The contest also scores boosting with small leaves (few rows each, fewer leaves a tree) on tables
#: of this many rows: a daily ridership table's rare days (holidays) need leaves smaller than the
#: default 20 rows — R² 0.939 with the defaults, 0.958 with these. Only its scores decide.
SMALL_LEAVES_HGB = {"min_samples_leaf": 5, "max_leaf_nodes": 15}
SMALL_LEAVES_ROWS = (SMALL_TABLE, 100_000)
LOG_TARGET_REASON = ("The target is positive with a long tail of large values, so the model learns its logarithm "
                     "(errors in proportion, not in absolute units); scores are reported in the original units.")


#: The linear model learns from at most this many training rows (a random sample): a line barely
#: moves past them, and on a 1M-row table its dense one-hot fit took 12 s and 1.4 GB.
LINEAR_ROWS = 100_000
#: The linear model's regularisation is chosen by cross-validation on its own training rows (never
#: the validation rows) from these strengths: logistic regression's C (inverse strength), ridge's
#: alpha. It matters: on a 5%-positive loan table ROC AUC went 0.727 at C = 1 to 0.755 as chosen.
LINEAR_CS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
LINEAR_ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
#: ...in this many folds, on at most this many of its rows (a seeded sample; the fit then uses all),
#: each fit to a looser tolerance than the final one (it only has to rank the strengths): the search
#: costs about twice the fit.
LINEAR_TUNE_FOLDS, LINEAR_TUNE_ROWS, LINEAR_TUNE_TOL = 3, 20_000, 1e-3
#: Strengths scoring within this of the best count as tied; the weakest of them is kept.
LINEAR_TUNE_TIE = 1e-3


def _sample_rows(X, y, limit: int, seed: int):
    """At most ``limit`` rows of ``X``/``y``, chosen at random (seeded), in their order."""
    pick = sample_positions(len(X), limit, seed)
    return (X, y) if pick is None else (X.iloc[pick], y.iloc[pick])


class LogTargetRegressor(RegressorMixin, BaseEstimator):
    """Predicts ``exp`` of a regressor fitted on ``log(y)`` (y > 0, checked by the planner): a positive, heavy-tailed target
    is fitted on a log scale and reported in its original units. Wraps an already fitted model
    (the boosting loop fits it itself, so ``TransformedTargetRegressor``'s clone-and-fit can't).

    Its log predictions are held within the log targets it learnt from (``log_range_``): ``exp``
    turns a line's extrapolation into millions — a 5,600 sq ft house in the Ames table, 2.5 M$
    predicted from a line on log prices whose dearest training house cost 755 k$, took one outer
    fold's R² from 0.87 to 0.03."""

    def __init__(self, regressor: Any = None) -> None:
        self.regressor = regressor

    def fit(self, X, y):
        log_y = np.log(np.asarray(y, dtype=float))
        self.regressor_ = copy.deepcopy(self.regressor).fit(X, log_y)
        self.log_range_ = _range(log_y)
        return self

    def predict(self, X) -> np.ndarray:
        log_prediction = self.regressor_.predict(X)
        bounds = getattr(self, "log_range_", None)  # a model saved before the bounds: as it was
        return np.exp(log_prediction if bounds is None else np.clip(log_prediction, *bounds))

    @classmethod
    def wrap(cls, fitted_regressor: Any, log_y: np.ndarray) -> LogTargetRegressor:
        """``fitted_regressor`` (fitted on ``log_y``) in original units."""
        model = cls(regressor=None)
        model.regressor_ = fitted_regressor
        model.log_range_ = _range(log_y)
        return model


def _range(values) -> tuple[float, float]:
    return float(np.min(values)), float(np.max(values))


def _target(ctx: FitContext, y) -> np.ndarray:
    """The training target as the model sees it (log scale when the planner chose it)."""
    if ctx.task != "regression":
        return _labels(y)
    y = np.asarray(y)
    if ctx.params.get("log_target"):
        return np.log(y.astype(float))
    return y


def _labels(y) -> np.ndarray:
    """Class labels as the object array scikit-learn takes, one shared string per class: turning
    the Arrow-backed text column into numpy made a new Python string per row (51 MB at 900k
    rows, held through the boosting fit of the 1M-row job)."""
    y = y if hasattr(y, "dtype") else np.asarray(y, dtype=object)
    if not (pd.api.types.is_string_dtype(y) or pd.api.types.is_object_dtype(y)):
        return np.asarray(y)
    codes, classes = pd.factorize(y, use_na_sentinel=False)
    return np.asarray(classes, dtype=object)[codes]


def _finish(ctx: FitContext, estimator: Any):
    """Wrap a fitted regressor back to original units when it was fitted on a log scale."""
    if ctx.task == "regression" and ctx.params.get("log_target"):
        return LogTargetRegressor.wrap(estimator, _target(ctx, ctx.y_train))
    return estimator


def _class_weight(ctx: FitContext, balanced: str) -> str | None:
    """Rare classes weighted to count equally, unless the plan says otherwise (``params["weigh_classes"]``:
    the contest leaves a binary tree model unweighted and moves its threshold instead)."""
    return balanced if ctx.imbalanced and ctx.params.get("weigh_classes", True) else None


def _valid_loss(ctx: FitContext, estimator: Any, X, y) -> float:
    """Log loss (classification) or mean squared error on the model's own target scale."""
    if ctx.task == "regression":
        return float(mean_squared_error(_target(ctx, y), estimator.predict(X)))
    return float(log_loss(y, estimator.predict_proba(X), labels=estimator.classes_))


class SklearnFamily(ModelFamily):
    """Shared save/load: the whole fitted pipeline in one joblib file; every one of them can learn
    a heavy-tailed target on the log scale."""

    family = "sklearn"
    kinds = frozenset({"tabular"})

    def folds_in_helpers(self, n_rows: int) -> bool:
        return True

    def tune(self, data: DataSummary) -> Tuned:
        if data.task == "regression" and data.heavy_tailed_target:
            return Tuned({"log_target": True}, (LOG_TARGET_REASON,))
        return Tuned()

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        joblib.dump(fitted.model, Path(folder) / MODEL_FILE, compress=3)
        return [MODEL_FILE]

    def load(self, folder: Path) -> Any:
        return load_pickle(Path(folder) / MODEL_FILE)  # only inside a run folder load_model vetted (rule 7)


class NoSkillFamily(SklearnFamily):
    """The no-skill guess: each class's share of the training rows (or their mean) for every row.
    The yardstick of a comparison; never the pick, never trained on its own."""

    key = "dummy"
    label = "Most frequent class / mean (no skill)"
    curve_unit = "fit"
    role = "no_skill"
    comparison_order = 0

    def tune(self, data: DataSummary) -> Tuned:
        return Tuned()  # a log scale would turn its mean into a geometric mean

    def fit(self, ctx: FitContext) -> Fitted:
        model = DummyRegressor() if ctx.task == "regression" else DummyClassifier(strategy="prior")
        model.fit(np.zeros((len(ctx.y_train), 1)), np.asarray(ctx.y_train))
        return Fitted(Pipeline([("ignore_columns", _NoColumns()), ("model", model)]), {}, type(model).__name__)


class _NoColumns(BaseEstimator):
    """The no-skill guess reads no column: one constant feature per row."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.zeros((len(X), 1))


class LinearFamily(SklearnFamily):
    """Logistic regression / ridge on imputed, scaled, one-hot columns: the sanity baseline."""

    key = "linear"
    label = "Linear model"
    curve_unit = "fit"
    role = "baseline"
    comparison_order = 1

    def why(self, data: DataSummary) -> str:
        return ("A linear model: one weight per column, quick, hard to overfit and easy to read — "
                "often all a small table needs.")

    def fit(self, ctx: FitContext) -> Fitted:
        X_train, y_train = _sample_rows(ctx.X_train, ctx.y_train, int(ctx.params.get("max_rows", LINEAR_ROWS)),
                                        ctx.seed)
        # One thread on a small table, as for boosting: on a busy 2-core machine BLAS's and OpenMP's
        # second thread made a 3,500-row logistic regression 7x slower (1.3 s against 0.18 s).
        with threadpool_limits(limits=1) if len(X_train) < SMALL_FOR_THREADS else nullcontext():
            return self._fit(ctx, X_train, y_train)

    def _fit(self, ctx: FitContext, X_train, y_train) -> Fitted:
        prep = dense_preprocessor(ctx.prepared.used_columns)
        Xt = prep.fit_transform(X_train, y_train)
        Xv = prep.transform(ctx.X_valid)
        started = time.perf_counter()
        target = _target(ctx, y_train)
        strength, chosen = _regularisation(ctx, Xt, target)
        if ctx.task == "regression":
            model = Ridge(alpha=strength)
            name, settings = "Ridge", {"alpha": strength}
        else:
            model = LogisticRegression(C=strength, max_iter=int(ctx.params.get("max_iter", 1000)),
                                       class_weight="balanced" if ctx.imbalanced else None)
            name, settings = "LogisticRegression", {"C": strength, "class_weight": model.class_weight}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # an unconverged fit still scores; n_iter says so
            model.fit(Xt, target)
        train_loss = _valid_loss(ctx, model, Xt, y_train)
        ctx.emit(epoch_event(1, train_loss, _valid_loss(ctx, model, Xv, ctx.y_valid), started, max_epochs=1))
        if ctx.params.get("log_target"):
            name += " on log(target)"
        settings["regularisation"] = chosen
        settings["log_target"] = bool(ctx.params.get("log_target"))
        settings["n_iter"] = int(np.max(getattr(model, "n_iter_", None) or 1))
        settings["fit_rows"] = len(X_train)
        return Fitted(Pipeline([("prep", prep), ("model", _finish(ctx, model))]), settings, name)


def _regularisation(ctx: FitContext, Xt, target) -> tuple[float, str]:
    """The linear model's strength (ridge's alpha, logistic regression's C) and how it was chosen:
    the user's, or the best of ``LINEAR_ALPHAS`` / ``LINEAR_CS`` by cross-validation on the
    training rows given (a sample of ``LINEAR_TUNE_ROWS``) — ROC AUC for two classes, log loss for
    more, the ridge's own leave-one-out error. Too few rows of a class to fold: C = 1."""
    key = "alpha" if ctx.task == "regression" else "C"
    if key in ctx.params:
        return float(ctx.params[key]), "set by you"
    rows = sample_positions(len(target), LINEAR_TUNE_ROWS, ctx.seed)
    X, y = (Xt, target) if rows is None else (Xt[rows], np.asarray(target)[rows])
    if ctx.task == "regression":
        search = RidgeCV(alphas=LINEAR_ALPHAS).fit(X, y)
        return float(search.alpha_), "chosen by leave-one-out cross-validation on the training rows"
    if np.min(np.unique(np.asarray(y), return_counts=True)[1]) < LINEAR_TUNE_FOLDS:
        return 1.0, "the default (a class too rare to cross-validate)"
    folds = StratifiedKFold(LINEAR_TUNE_FOLDS, shuffle=True, random_state=ctx.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = LogisticRegressionCV(Cs=list(LINEAR_CS), cv=folds, refit=False, l1_ratios=(0.0,),
                                      use_legacy_attributes=False, tol=LINEAR_TUNE_TOL,
                                      scoring="roc_auc" if ctx.task == "binary" else "neg_log_loss",
                                      max_iter=int(ctx.params.get("max_iter", 1000)),
                                      class_weight="balanced" if ctx.imbalanced else None).fit(X, y)
    # The weakest strength that scores as well as the best (within LINEAR_TUNE_TIE) over the folds: on
    # separable rows every strength ranks them alike, and shrinking more would only flatten the
    # probabilities (ROC AUC ignores their scale).
    means = np.mean(search.scores_, axis=(0, 1))
    best = max(i for i, score in enumerate(means) if score >= means.max() - LINEAR_TUNE_TIE)
    return float(search.Cs_[best]), f"chosen by {LINEAR_TUNE_FOLDS}-fold cross-validation on the training rows"


class _ReportingBoosterMixin:
    """Hooks the booster's per-round early-stopping check to emit live curves and honour Stop.

    ``_should_stop`` is called once per boosting round right after the round's train and
    validation losses are appended (scikit-learn ≥ 1.0); ``tests/core/test_tabular.py`` fails if
    that stops being true. The hook object is removed after fitting so the model pickles.
    """

    _reporter: Any = None
    #: Per input column, how many category codes it holds (None: a number), when the caller's
    #: preprocessing already ordinal-coded the categories (``HGBFamily.fit``); None otherwise.
    _coded_categories: list[int | None] | None = None

    def _preprocess_X(self, X, *, reset):
        """Categories arrive as codes 0..k-1 already: validate into one float matrix instead of
        scikit-learn's own re-encoding, which copied the numbers twice more (the numeric block,
        then the stacked matrix: 250 MB at the peak of the 1M-row job). The same model results.

        The matrix is row-major (``_row_major``): the binning's row subsample (``X.take``) first
        copies a column-major matrix whole into row order — another 124 MB at the 1M-row job's
        peak — and predicting walks each row's values."""
        if self._coded_categories is None:
            return super()._preprocess_X(X, reset=reset)
        validate_data(self, X, reset=reset, skip_check_array=True)  # the column names and their number
        X = check_array(_row_major(X), dtype=[np.float64], order="C", ensure_all_finite=False,
                        input_name="X", estimator=self)
        if not reset:
            return X
        counts = self._coded_categories
        self.is_categorical_ = np.array([c is not None for c in counts])
        self._preprocessor = None
        self._is_categorical_remapped = self.is_categorical_  # no reordering: codes stay in place
        return X, [None if c is None else np.arange(c, dtype=np.float64) for c in counts]

    def _bin_data(self, X, sample_weight, is_training_data):
        """Bin, then give back what binning freed (its row subsample for the bin edges: 32 MB on the
        1M-row job, which the boosting rounds' arrays would otherwise be allocated beside)."""
        binned = super()._bin_data(X, sample_weight, is_training_data)
        if len(X) >= SMALL_FOR_THREADS:
            release_freed_memory()
        return binned

    def _should_stop(self, scores):
        stop = super()._should_stop(scores)
        if self._reporter is not None:
            return self._reporter(self) or stop
        return stop

    def predict(self, X):
        with _threads_for(X):
            return super().predict(X)


def _row_major(X):
    """A frame's columns as one row-major matrix, filled in one allocation (pandas' own
    ``to_numpy`` fills a column-major one, and reordering it holds both); other input as it is."""
    if isinstance(X, pd.DataFrame) and X.shape[1]:
        return np.column_stack([X.iloc[:, j].to_numpy() for j in range(X.shape[1])])
    return X


def _threads_for(X):
    """One OpenMP thread for a small batch: predicting 3,300 rows took 1.4 s on two threads of a
    busy 2-core machine (spin-waiting threads) and 0.06 s on one; large batches keep every thread."""
    return threadpool_limits(limits=1, user_api="openmp") if len(X) < SMALL_FOR_THREADS else nullcontext()


class ReportingHGBClassifier(_ReportingBoosterMixin, HistGradientBoostingClassifier):
    def predict_proba(self, X):
        with _threads_for(X):
            return super().predict_proba(X)

    def decision_function(self, X):
        with _threads_for(X):
            return super().decision_function(X)


class ReportingHGBRegressor(_ReportingBoosterMixin, HistGradientBoostingRegressor):
    pass


class _RoundReporter:
    """Turns boosting rounds into ``EpochEnded`` events, at most a few a second."""

    def __init__(self, ctx: FitContext, max_rounds: int, every_s: float = 0.2) -> None:
        self.ctx, self.max_rounds, self.every_s = ctx, max_rounds, every_s
        self.started = self._last = time.perf_counter()
        self.cancelled = self.out_of_time = False

    def __call__(self, booster) -> bool:
        rounds = len(booster.validation_score_) - 1  # index 0 holds the score before any tree
        now = time.perf_counter()
        if rounds >= 1 and (rounds == 1 or now - self._last >= self.every_s or rounds >= self.max_rounds):
            self._last = now
            self.emit(booster)
        if self.ctx.should_stop():
            self.cancelled = self.ctx.stop.is_set()
            self.out_of_time = not self.cancelled
            return True
        return False

    def emit(self, booster) -> None:
        rounds = len(booster.validation_score_) - 1
        self.ctx.emit(epoch_event(rounds, -booster.train_score_[-1], -booster.validation_score_[-1],
                                  self.started, max_epochs=self.max_rounds))


def _round_history(booster, started: float, max_rounds: int, limit: int = 1000) -> list[EpochEnded]:
    """Every boosting round's train and validation loss (at most ``limit`` evenly spaced), from
    the booster's own record: the live events were throttled to a few a second. Seconds per round
    are spread evenly over the fit's wall time (rounds cost about the same)."""
    n = len(booster.validation_score_) - 1
    if n < 1:
        return []
    rounds = np.unique(np.r_[np.linspace(1, n, min(n, limit)).astype(int), n])
    elapsed = time.perf_counter() - started
    return [EpochEnded(epoch=int(r), train_loss=float(-booster.train_score_[r]),
                       valid_loss=float(-booster.validation_score_[r]), seconds=elapsed * r / n,
                       max_epochs=max_rounds) for r in rounds]


class HGBFamily(SklearnFamily):
    """Histogram gradient boosting: the strongest default on tables; native missing values and
    categories."""

    key = "hgb"
    label = "Histogram gradient boosting"
    curve_unit = "boosting round"
    comparison_order = 2
    early_stops = True
    weighs_rare_binary = False

    def auto_preference(self, data: DataSummary) -> int:
        return 1  # the default on tables

    def why(self, data: DataSummary) -> str:
        return ("Histogram gradient boosting: the strongest default on tables — it handles missing values "
                "and categories natively, finds interactions by itself and trains in seconds. "
                "It stops adding trees once the validation loss stops improving.")

    def tune(self, data: DataSummary) -> Tuned:
        base = super().tune(data)
        params, reasons = dict(base.params), list(base.reasons)
        if data.n_rows >= LARGE_TABLE and data.max_epochs is None:
            params["max_iter"] = LARGE_TABLE_ROUNDS
            reasons.append(f"With {data.n_rows:,} rows each boosting round takes a while, so at most "
                           f"{LARGE_TABLE_ROUNDS} rounds are grown (about half a minute here); raise 'Most epochs / "
                           "boosting rounds' in the settings to let it go on.")
        if data.n_rows < SMALL_TABLE:
            params.update(SMALL_TABLE_HGB)
            reasons.append(f"With only {data.n_rows:,} rows, the trees are kept small and learn slowly, so the model "
                           "cannot simply memorise the noise in so few examples.")
        return Tuned(params, tuple(reasons))

    def contest_variants(self, data: DataSummary) -> tuple[Variant, ...]:
        low, high = SMALL_LEAVES_ROWS
        if not low <= data.n_rows < high or data.user_params.keys() & SMALL_LEAVES_HGB.keys():
            return ()  # small tables already get small, slow trees; the user's own leaves stay
        return (Variant("small-leaves", "small leaves", f"leaves of {SMALL_LEAVES_HGB['min_samples_leaf']} rows, "
                        "so rare patterns can be learnt", dict(SMALL_LEAVES_HGB)),)

    def refit_settings(self, fold_settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The folds' mean number of rounds, grown on every training row without early stopping: a
        tenth of the rows held apart to stop on cost a daily ridership table 0.007 R² (0.950 against
        0.957 over three outer folds), and the folds already know when to stop."""
        rounds = [s.get("n_iter") for s in fold_settings]
        if not rounds or any(r is None for r in rounds):
            return {}
        return {"rounds": max(1, int(round(float(np.mean(rounds)))))}

    def fit(self, ctx: FitContext) -> Fitted:
        if len(ctx.X_train) >= SMALL_FOR_THREADS:
            release_freed_memory()  # what earlier fits freed (a contest's candidates), before the big matrix
        prep, categorical = tree_preprocessor(ctx.prepared.used_columns, ctx.task, ctx.seed)
        Xt = prep.fit_transform(ctx.X_train, _target(ctx, ctx.y_train))
        Xv = prep.transform(ctx.X_valid)
        if len(ctx.X_train) >= SMALL_FOR_THREADS:
            release_freed_memory()  # the encoder's Python text values, freed before the booster's matrix
        fixed = ctx.params.get("rounds")  # a set number of rounds (``refit_settings``): no early stopping
        max_rounds = int(fixed or ctx.max_epochs or ctx.params.get("max_iter", 500))
        settings = {
            "learning_rate": float(ctx.params.get("learning_rate", 0.1)),
            "max_iter": max_rounds,
            "max_leaf_nodes": int(ctx.params.get("max_leaf_nodes", 31)),
            "min_samples_leaf": int(ctx.params.get("min_samples_leaf", 20)),
            "l2_regularization": float(ctx.params.get("l2_regularization", 0.0)),
            # With a set number of rounds the watched rows only draw the curve: patience past the last round.
            "n_iter_no_change": max_rounds + 1 if fixed else int(ctx.params.get("n_iter_no_change", 15)),
        }
        mask = np.zeros(Xt.shape[1], dtype=bool)
        mask[categorical] = True
        common = dict(settings, early_stopping=True, scoring="loss", random_state=ctx.seed,
                      categorical_features=mask if mask.any() else None)
        if ctx.task == "regression":
            booster = ReportingHGBRegressor(**common)
        else:
            booster = ReportingHGBClassifier(**common, class_weight=_class_weight(ctx, "balanced"))
        booster._coded_categories = _category_codes(prep, categorical, Xt.shape[1])
        booster.fixed_rounds_ = bool(fixed)  # read by the code export: the rows it learnt from differ
        reporter = _RoundReporter(ctx, max_rounds)
        booster._reporter = reporter
        try:
            with threadpool_limits(limits=1 if len(Xt) < SMALL_FOR_THREADS else None, user_api="openmp"):
                booster.fit(Xt, _target(ctx, ctx.y_train), X_val=Xv, y_val=_target(ctx, ctx.y_valid))
        finally:
            booster._reporter = None
        reporter.emit(booster)  # the last round always reaches the curve
        rounds = int(booster.n_iter_)
        stopped_early = rounds < max_rounds and not reporter.cancelled
        if reporter.cancelled or reporter.out_of_time:
            ctx.emit(stop_message(reporter.cancelled, f"after {rounds} boosting rounds",
                                  "The rounds grown so far are kept.", ctx.time_budget))
        elif stopped_early:
            best = int(np.argmax(booster.validation_score_))
            ctx.emit(Message("info", f"Stopped after {rounds} rounds: the validation loss had not improved "
                                     f"since round {best}."))
        settings.update(n_iter=rounds, categorical_columns=int(mask.sum()),
                        class_weight=getattr(booster, "class_weight", None),
                        log_target=bool(ctx.params.get("log_target")))
        name = type(booster).__mro__[2].__name__
        if ctx.params.get("log_target"):
            name += " on log(target)"
        return Fitted(Pipeline([("prep", prep), ("model", _finish(ctx, booster))]), settings, name,
                      stopped_early=stopped_early, cancelled=reporter.cancelled,
                      history=_round_history(booster, reporter.started, max_rounds))


def _category_codes(prep: Pipeline, categorical: list[int], width: int) -> list[int | None]:
    """Per output column of the fitted tree preprocessor: its number of category codes, or None."""
    counts: list[int | None] = [None] * width
    if categorical:
        encoder = prep.named_steps["encode"].named_transformers_["categorical"]
        for index, categories in zip(categorical, encoder.categories_, strict=True):
            missing = len(categories) and pd.isna(categories[-1])  # NaN sorts last; it is no code
            counts[index] = len(categories) - int(bool(missing))
    return counts


class ForestFamily(SklearnFamily):
    """Random forest, grown in chunks of trees so the curve and Stop work as for boosting."""

    key = "forest"
    label = "Random forest"
    curve_unit = "trees"
    comparison_order = 3
    weighs_rare_binary = False
    contest_rows = 200_000  # its trees grow with the rows: past this, boosting is the better use of the time

    def why(self, data: DataSummary) -> str:
        return ("A random forest: hundreds of deep trees, each on a random share of the rows, voting together — "
                "robust, with little to tune.")

    def folds_in_helpers(self, n_rows: int) -> bool:
        """Only where it grows its trees on one thread: from ``FOREST_THREADS_ROWS`` its own threads
        use the cores, and its deep trees (tens of MB a fold on 1,250 rows) would cost more to send
        back than a helper saves (the Ames folds: 7.7 s in helpers, 6.0 s in the worker)."""
        return n_rows < FOREST_THREADS_ROWS

    def fit(self, ctx: FitContext) -> Fitted:
        prep, _ = tree_preprocessor(ctx.prepared.used_columns, ctx.task, ctx.seed)
        Xt = np.nan_to_num(prep.fit_transform(ctx.X_train, _target(ctx, ctx.y_train)), nan=-1.0)
        Xv = np.nan_to_num(prep.transform(ctx.X_valid), nan=-1.0)
        y_train, y_valid = _target(ctx, ctx.y_train), _target(ctx, ctx.y_valid)
        n_trees = int(ctx.max_epochs or ctx.params.get("n_estimators", 300))
        threads = 1 if len(Xt) < FOREST_THREADS_ROWS else thread_share()
        chunk = threads  # the first chunk measures the pace; later ones aim at ~1 s so Stop stays quick
        # Large tables: leaves of a few rows and trees on a 100k-row subsample keep the fit and the
        # saved model (it grows with the leaves) to a sensible size.
        common = dict(n_estimators=0, warm_start=True, random_state=ctx.seed, n_jobs=threads,
                      min_samples_leaf=int(ctx.params.get("min_samples_leaf", 1 if len(Xt) < 20_000 else 5)),
                      max_samples=ctx.params.get("max_samples", None if len(Xt) <= 100_000 else 100_000 / len(Xt)),
                      max_features=ctx.params.get("max_features", "sqrt" if ctx.task != "regression" else
                                                  REGRESSION_FEATURE_SHARE))
        if ctx.task == "regression":
            forest = RandomForestRegressor(**common)
        else:
            forest = RandomForestClassifier(**common, class_weight=_class_weight(ctx, "balanced_subsample"))
        started = time.perf_counter()
        sample = np.random.default_rng(ctx.seed).permutation(len(Xt))[:5000]
        watch, seen = _as_tree_input(Xv), _as_tree_input(Xt[sample])  # the rows the curve is drawn on
        votes_valid, votes_train, cancelled, out_of_time = 0.0, 0.0, False, False
        early = EarlyStopping(patience=int(ctx.params.get("patience", 4)))
        while forest.n_estimators < n_trees:
            old = forest.n_estimators
            forest.set_params(n_estimators=min(n_trees, old + chunk))
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                # Balanced subsample weights with warm start warn "if the fitted data differs": it never does here.
                warnings.filterwarnings("ignore", message="class_weight presets", category=UserWarning)
                forest.fit(Xt, y_train)
            per_tree = (time.perf_counter() - t0) / max(forest.n_estimators - old, 1)
            chunk = int(np.clip(round(SECONDS_PER_CHUNK / max(per_tree, 1e-6)), threads, 50))
            new_trees = forest.estimators_[old:]
            votes_valid = votes_valid + _tree_votes(new_trees, watch, ctx.task)
            votes_train = votes_train + _tree_votes(new_trees, seen, ctx.task)
            n = forest.n_estimators
            valid_loss = _vote_loss(votes_valid / n, y_valid, ctx.task, forest)
            train_loss = _vote_loss(votes_train / n, y_train[sample], ctx.task, forest)
            ctx.emit(epoch_event(n, train_loss, valid_loss, started, max_epochs=n_trees))
            early.improved(n, valid_loss)
            if ctx.should_stop():
                cancelled = ctx.stop.is_set()
                out_of_time = not cancelled
                ctx.emit(stop_message(cancelled, f"at {n} trees", "The trees grown so far are kept.", ctx.time_budget))
                break
            if early.exhausted:
                # More trees never hurt a forest much, but they cost time: stop once the
                # validation loss has flattened.
                ctx.emit(Message("info", f"Stopped at {n} trees: more trees no longer lowered the validation loss."))
                break
        settings = {"n_estimators": int(forest.n_estimators), "max_features": common["max_features"],
                    "min_samples_leaf": common["min_samples_leaf"], "max_samples": common["max_samples"],
                    "class_weight": getattr(forest, "class_weight", None),
                    "log_target": bool(ctx.params.get("log_target"))}
        forest.set_params(warm_start=False, n_jobs=None)
        name = type(forest).__name__ + (" on log(target)" if ctx.params.get("log_target") else "")
        model = Pipeline([("prep", prep), ("fill", _NanFill()), ("model", _finish(ctx, forest))])
        return Fitted(model, settings, name, stopped_early=out_of_time or (early.exhausted and not cancelled),
                      cancelled=cancelled)


class _NanFill(BaseEstimator):
    """Missing values → -1 for the forest (ordinal codes and counts are ≥ 0, so -1 is 'missing')."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.nan_to_num(np.asarray(X, dtype=float), nan=-1.0)

    def fit_transform(self, X, y=None):
        return self.transform(X)


def _as_tree_input(X) -> np.ndarray:
    """Rows as a tree reads them (float32, C order), converted once: the forest's own predict does
    the same before skipping each tree's input checks."""
    return np.ascontiguousarray(X, dtype=np.float32)


def _tree_votes(trees, X: np.ndarray, task) -> np.ndarray:
    """The trees' summed predictions on ``X`` (``_as_tree_input``), without checking the input
    again for every tree: those checks were a sixth of a forest's fit on a 1,250-row table."""
    if task == "regression":
        return np.sum([t.predict(X, check_input=False) for t in trees], axis=0)
    return np.sum([t.predict_proba(X, check_input=False) for t in trees], axis=0)


def _vote_loss(pred, y, task, forest) -> float:
    if task == "regression":
        return float(mean_squared_error(y, pred))
    # Trees see labels as indexes into classes_; map string labels the same way.
    index = np.searchsorted(forest.classes_, y)
    pred = np.clip(pred, 1e-7, 1.0)
    return float(log_loss(index, pred / pred.sum(axis=1, keepdims=True), labels=np.arange(len(forest.classes_))))


class AveragedModels(BaseEstimator):
    """A blend: the average of fitted models' class probabilities (or predicted values), each
    member a whole pipeline that takes the raw columns. ``classes`` orders the columns of
    ``predict_proba``; empty for regression."""

    def __init__(self, members: list[Any] | None = None, classes: tuple[str, ...] = ()) -> None:
        self.members = members
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)

    def predict_proba(self, X) -> np.ndarray:
        from core.evaluation import class_probabilities

        return np.mean([class_probabilities(m, X, tuple(self.classes)) for m in self.members], axis=0)

    def predict(self, X) -> np.ndarray:
        if not self.classes:
            return np.mean([np.asarray(m.predict(X), dtype=float) for m in self.members], axis=0)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class BlendFamily(SklearnFamily):
    """The average of several scikit-learn families' models, made by the automatic contest when
    averaging beats its best single candidate by more than the noise (``core.contest``).
    ``params["members"]`` lists each member as ``{"model": key, "params": {...}}``."""

    key = "blend"
    label = "Blend of the best models"
    curve_unit = "fit"
    role = "ensemble"

    def fit(self, ctx: FitContext) -> Fitted:
        from core.models import get_family

        fitted = []
        for member in ctx.params.get("members", ()):
            family = get_family(member["model"])
            if family.family != "sklearn":
                raise ValueError(f"a blend member must be a scikit-learn family, not {member['model']!r}")
            sub = copy.copy(ctx)
            sub.params = dict(member.get("params") or {})
            fitted.append((member["model"], family.fit(sub)))
            if ctx.should_stop():
                break
        return self.combine(fitted, ctx.task, ctx.classes)

    @staticmethod
    def combine(members: list[tuple[str, Fitted]], task: str, classes: tuple[str, ...]) -> Fitted:
        """One blended model from fitted ``(family key, Fitted)`` members."""
        model = AveragedModels([f.model for _, f in members], tuple(classes) if task != "regression" else ())
        settings = {"members": [{"model": key, "params": f.params} for key, f in members]}
        return Fitted(model, settings, "Average of " + " + ".join(f.name for _, f in members),
                      cancelled=any(f.cancelled for _, f in members))
