"""Section 8: Trainboard's automatic mode against FLAML, a peer AutoML, on the same folds and budget.

For every table (the five samples in ``sample_data/`` and the four public tables in
``bench/data/``) the rows are cut once into seeded outer folds (stratified for classes). On each
training fold, with the same time budget B:

- **Trainboard auto**: ``prepare`` → ``make_plan(Overrides(model="auto", time_budget=B))`` →
  ``core.training.fit``, exactly what the app does; the delivered ``result.main.model`` then
  predicts the outer test fold from its raw columns;
- **each single family** (``linear``, ``hgb``, ``forest``, ``mlp``) the same way, with
  ``model=<key>``: the best of them per table is the "best single candidate";
- **FLAML** ``AutoML.fit(task=…, time_budget=B, metric=<the same headline metric>)`` on the same
  training rows and the columns Trainboard uses (see ``flaml_frame``).

Every contender runs in its own fresh process per table (all folds in it), so one library's
thread pools never slow another's; the seconds are the fit's wall time (prepare + plan + fit, or
FLAML's frame conversion + fit), imports excluded (Trainboard's contenders preload what a worker loads). Scores are the headline metric per task
(``core.evaluation.MAIN_METRIC``) on the outer test folds: mean ± standard deviation over folds.

Settings: 3 folds (2 with ``--quick``); B per fold = 10 s under 1,000 rows, 20 s up to 10,000 rows,
60 s beyond (5 s everywhere with ``--quick``). For a reduced run, ``BENCH_PEER_FOLDS``, ``BENCH_PEER_BUDGET`` (seconds) and
``BENCH_PEER_TABLES`` (comma-separated file names, e.g. ``iris.csv,lending_club.csv``) override them.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any

from bench.common import ROOT, ChildError, Config, Section, Table, log, run_child

#: File → target for the five bundled samples (sample_data/README.md) …
SAMPLE_TABLES = {"iris.csv": "species", "wine.csv": "cultivar", "breast_cancer.csv": "diagnosis",
                 "diabetes.csv": "progression", "churn.csv": "churned"}
#: … and the four public tables (bench/data/README.md).
PUBLIC_TABLES = {"food_reviews.csv": "score", "chicago_ridership.csv": "ridership",
                 "lending_club.csv": "bad_loan", "ames_housing.csv": "Sale_Price"}
SINGLES = ("linear", "hgb", "forest", "mlp")
CONTENDERS = ("auto", *SINGLES, "flaml")
SEED = 0
#: Budget B per fold by table size: (rows below, seconds). A search on 150-569 rows settles within
#: 10 s; 20 s keeps the whole section near a quarter of an hour on 2 cores; past 10,000 rows, 60 s.
BUDGETS_S = ((1_000, 10.0), (10_001, 20.0))
LARGE_BUDGET_S = 60.0
QUICK_BUDGET_S = 5.0


def table_path(name: str):
    return ROOT / ("sample_data" if name in SAMPLE_TABLES else "bench/data") / name


def every_table() -> dict[str, str]:
    return {**SAMPLE_TABLES, **PUBLIC_TABLES}


# ------------------------------------------------------------------ the child: one contender, every fold


def contender_child(source: str, target: str, contender: str, n_folds: int, budget: float,
                    seed: int = SEED) -> dict[str, Any]:
    """Child task: ``contender`` ("auto", a registry key, or "flaml") fitted on every training fold
    and scored on its test fold; per fold the headline metric, the fit's seconds and what was delivered."""
    import warnings

    warnings.filterwarnings("ignore")  # FLAML's and the libraries' chatter; errors still raise
    from core.datasets import load_table
    from core.evaluation import MAIN_METRIC, class_probabilities
    from core.schema import prepare
    from core.types import TableData

    if contender == "flaml":
        import logging

        from flaml import AutoML

        logging.getLogger("flaml").setLevel(logging.ERROR)
    else:
        from bench.end_to_end import preload_worker
        from core.pipeline import make_plan
        from core.planner import Overrides
        from core.training import fit

        preload_worker()  # what a worker has loaded before a job (FLAML's imports are excluded too)

    table = load_table(source)
    frame = _rows_with_target(table.frame, target)
    whole = prepare(TableData(frame=frame, load=table.load), target=target)
    task, classes, metric = whole.task, whole.classes, MAIN_METRIC[whole.task]
    folds = []
    for train, test in outer_folds(whole.y, task, n_folds, seed):
        train_frame = frame.iloc[train].reset_index(drop=True)
        test_frame = frame.iloc[test].reset_index(drop=True)
        y_test = whole.y.iloc[test].reset_index(drop=True)  # labels made once, as every fold's prepare makes them
        t0 = time.perf_counter()
        prepared = prepare(TableData(frame=train_frame, load=table.load), target=target)
        if contender == "flaml":
            X_train = flaml_frame(train_frame, prepared)
            if not flaml_keeps(X_train):
                # FLAML would drop every column and LightGBM then fails on an empty table: score what
                # it can offer, the no-skill guess (so the comparison still has a row).
                from core.evaluation import baseline_predictions

                folds.append({"score": _score(task, classes, metric, y_test, baseline_predictions(
                    task, prepared.y, len(y_test), classes)), "seconds": time.perf_counter() - t0,
                    "delivered": "no usable column (no-skill guess)", "fitted": False})
                continue
            automl = AutoML()
            automl.fit(X_train, prepared.y, task="regression" if task == "regression" else "classification",
                       time_budget=budget, metric=metric, seed=seed, n_jobs=len(os.sched_getaffinity(0)),
                       verbose=0)
            seconds = time.perf_counter() - t0
            model, X_test = automl, flaml_frame(test_frame, prepared, like=X_train)
            delivered = str(automl.best_estimator)
        else:
            plan = make_plan(prepared, Overrides(model=contender, time_budget=budget, seed=seed))
            result = fit(prepared, plan)
            seconds = time.perf_counter() - t0
            model, X_test = result.main.model, test_frame[list(prepared.X.columns)]
            delivered = result.plan.model
        prediction = (model.predict(X_test) if task == "regression" else class_probabilities(model, X_test, classes))
        folds.append({"score": _score(task, classes, metric, y_test, prediction), "seconds": seconds,
                      "delivered": delivered})
    return {"task": task, "metric": metric, "rows": len(frame), "folds": folds}


def _score(task, classes, metric: str, y_true, prediction) -> float | None:
    from core.evaluation import metrics_for

    score = metrics_for(task, classes, y_true, prediction).get(metric)
    return None if score is None else float(score)


def _rows_with_target(frame, target: str):
    """The rows ``prepare`` keeps (a target value), renumbered, so fold positions index both."""
    values = frame[target]
    keep = values.notna() & (values.astype(str).str.strip() != "")
    return frame.loc[keep].reset_index(drop=True)


def outer_folds(y, task: str, n_folds: int, seed: int) -> list[tuple[Any, Any]]:
    """Seeded K-fold row positions, stratified by class for classification."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    splitter = (KFold(n_folds, shuffle=True, random_state=seed) if task == "regression"
                else StratifiedKFold(n_folds, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(y)), y))


def flaml_frame(frame, prepared, like=None):
    """The columns Trainboard uses (its ID, constant and empty columns dropped), typed the way FLAML
    reads them: dates as datetimes (FLAML splits them into parts), numbers stored as text as numbers,
    yes/no as 0/1, and every other non-numeric column as a pandas category (FLAML's way to say
    "categorical"; it has no text featuriser, and drops a text column whose values all differ).
    ``like`` is the converted training frame: a test fold gets its categories."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for column in prepared.used_columns:
        values = frame[column.name]
        if column.role == "datetime":
            values = values if pd.api.types.is_datetime64_any_dtype(values) else \
                pd.to_datetime(values, errors="coerce", format="mixed")
        elif column.role == "numeric" and not pd.api.types.is_numeric_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        elif pd.api.types.is_bool_dtype(values):
            values = values.astype("int8")
        elif not pd.api.types.is_numeric_dtype(values):
            categories = like[column.name].cat.categories if like is not None else None
            values = pd.Categorical(values, categories=categories)
        out[column.name] = values
    return out


def flaml_keeps(X) -> list[str]:
    """The columns FLAML's ``DataTransformer`` keeps (flaml/automl/data.py): it drops a non-numeric
    column with one value or a different value in every row, and a numeric one with one value."""
    import pandas as pd

    kept = []
    for name in X.columns:
        values = X[name]
        distinct = values.nunique(dropna=True)
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            if distinct >= 2:
                kept.append(name)
        elif distinct > 1 and distinct != values.notna().sum():
            kept.append(name)
    return kept


# ------------------------------------------------------------------ the section


def settings(cfg: Config) -> tuple[int, float | None, list[str]]:
    """Folds, a budget that overrides the per-size one (None: by size), and the tables to run."""
    folds = int(os.environ.get("BENCH_PEER_FOLDS") or (2 if cfg.quick else 3))
    budget = os.environ.get("BENCH_PEER_BUDGET")
    fixed = float(budget) if budget else (QUICK_BUDGET_S if cfg.quick else None)
    names = [n.strip() for n in os.environ.get("BENCH_PEER_TABLES", "").split(",") if n.strip()]
    unknown = [n for n in names if n not in every_table()]
    if unknown:
        raise ValueError(f"BENCH_PEER_TABLES names unknown tables {unknown}; known: {', '.join(every_table())}")
    return folds, fixed, names or list(every_table())


def budget_for(n_rows: int, fixed: float | None) -> float:
    if fixed is not None:
        return fixed
    return next((seconds for below, seconds in BUDGETS_S if n_rows < below), LARGE_BUDGET_S)


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    _check_flaml()
    n_folds, fixed, names = settings(cfg)
    section = Section(
        "8. Auto vs FLAML: the automatic mode against a peer AutoML",
        f"{n_folds}-fold cross-validation (seed {SEED}; stratified for classes), the same outer folds and the same "
        "time budget B per fold for every contender. Trainboard (auto, and each single family) trains on the "
        "training fold as the app does — `prepare` → `make_plan(Overrides(model=…, time_budget=B))` → `fit` — "
        "and its delivered model predicts the test fold; FLAML `AutoML.fit(time_budget=B, metric=<the headline "
        "metric>)` gets the same training rows and the columns Trainboard uses. Scores: mean ± std over folds "
        "of the headline metric (ROC AUC binary, macro F1 multiclass, R² regression; higher is better) on the "
        "outer test folds; seconds: mean fit wall time per fold. FLAML spends its whole budget by design; "
        "Trainboard stops when its plan is done.")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    budgets: dict[str, float] = {}
    for name in names:
        n_rows = _count_rows(table_path(name))
        budget = budget_for(n_rows, fixed)
        budgets[name] = budget
        results[name] = {}
        for contender in CONTENDERS:
            log(f"auto vs FLAML: {name} — {contender} ({n_folds} folds, B = {budget:g} s)")
            try:
                results[name][contender] = run_child(
                    "peer:contender_child", timeout=n_folds * (3 * budget + 120) + 60, source=str(table_path(name)),
                    target=every_table()[name], contender=contender, n_folds=n_folds, budget=budget).data
            except ChildError as err:
                log(f"auto vs FLAML: {name} — {contender} failed")
                section.notes.append(f"{name}, {contender}: failed — `{str(err).splitlines()[-1][:200]}`")
    _tables(section, results, budgets, n_folds)
    section.notes += [
        f"Budget B per fold: {_budget_words(budgets)}. Every contender may use all "
        f"{len(os.sched_getaffinity(0))} usable cores (FLAML `n_jobs` = that).",
        "FLAML: `flaml` with `lightgbm` and `xgboost-cpu` (requirements-dev.txt), default `estimator_list` "
        "(lgbm, rf, xgboost, extra_tree, xgb_limitdepth, sgd, plus lrl1 for classification), default "
        "`eval_method` and `retrain_full`. It sees the columns Trainboard uses (Trainboard's ID, constant and "
        "empty columns dropped), dates as datetimes, other non-numeric columns as pandas categories. It has no "
        "text featuriser: it drops a text column whose values all differ, and food_reviews has nothing else "
        "(its `product` is an ID), so there FLAML would fit on an empty table (LightGBM fails); its row is the "
        "no-skill guess (the training fold's class shares), marked `no usable column`.",
        "Targets per table: **vs best** — auto ≥ best single candidate's mean − its standard error "
        "(std/√folds); **vs FLAML** — auto ≥ FLAML's mean − FLAML's fold std; **time** — auto's mean seconds ≤ "
        "½ FLAML's. Misses are findings for the contest, listed in the summary.",
        "`auto delivered` is `result.plan.model` per fold (a × count when folds differ); `FLAML picked` is "
        "its `best_estimator`.",
    ]
    return section


def _check_flaml() -> None:
    """Fail the section at once, in words, when the peer is missing (without importing it here)."""
    from importlib.util import find_spec

    missing = [m for m in ("flaml", "lightgbm", "xgboost") if find_spec(m) is None]
    if missing:
        raise RuntimeError(f"FLAML's AutoML needs {', '.join(missing)}: `.venv/bin/pip install -r requirements-dev.txt` "
                           "(flaml, lightgbm, xgboost-cpu).")


def _count_rows(path) -> int:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _budget_words(budgets: dict[str, float]) -> str:
    distinct = sorted(set(budgets.values()))
    if len(distinct) == 1:
        return f"{distinct[0]:g} s on every table"
    return "; ".join(f"{b:g} s on " + ", ".join(n for n, v in budgets.items() if v == b) for b in distinct)


# ------------------------------------------------------------------ figures


class Scores:
    """One contender's folds on one table."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        self.folds = (data or {}).get("folds") or []
        values = [f["score"] for f in self.folds]
        self.values = [math.nan if v is None else v for v in values]

    @property
    def ok(self) -> bool:
        return bool(self.values) and not any(math.isnan(v) for v in self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.ok else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.ok and len(self.values) > 1 else 0.0

    @property
    def se(self) -> float:
        return self.std / math.sqrt(len(self.values)) if self.ok else math.nan

    @property
    def fitted(self) -> bool:
        """Every fold trained a model (FLAML's no-skill stand-in did not)."""
        return bool(self.folds) and all(f.get("fitted", True) for f in self.folds)

    @property
    def seconds(self) -> float:
        return statistics.fmean(f["seconds"] for f in self.folds) if self.folds else math.nan

    @property
    def delivered(self) -> str:
        picks = [f["delivered"] for f in self.folds]
        counts = {p: picks.count(p) for p in dict.fromkeys(picks)}
        return ", ".join(p if len(counts) == 1 else f"{p} ×{n}" for p, n in counts.items()) or "—"

    def text(self, with_seconds: bool = True) -> str:
        if not self.folds:
            return "failed"
        if not self.ok:
            return "—"
        cell = f"{self.mean:.3f} ± {self.std:.3f}"
        return f"{cell} ({self.seconds:.1f} s)" if with_seconds else cell


def _tables(section: Section, results: dict[str, dict[str, dict[str, Any]]], budgets: dict[str, float],
            n_folds: int) -> None:
    main = Table(["table", "task", "metric", "B (s)", "Trainboard auto", "auto delivered", "best single candidate",
                  "plain HGB", "linear", "FLAML", "FLAML picked", "vs best", "vs FLAML", "time"],
                 title="Side by side (mean ± std over folds, mean seconds per fold)")
    every = Table(["table", *CONTENDERS], title="Every contender (mean ± std, mean seconds per fold)")
    section.tables += [main, every]
    for name, by in results.items():
        scores = {c: Scores(by.get(c)) for c in CONTENDERS}
        first = next((d for d in by.values() if d), {})
        task, metric = first.get("task", "?"), first.get("metric", "?")
        auto, flaml = scores["auto"], scores["flaml"]
        singles = [(c, scores[c]) for c in SINGLES if scores[c].ok]
        best_key, best = max(singles, key=lambda s: s[1].mean) if singles else (None, Scores(None))
        verdicts = _verdicts(section, name, auto, best_key, best, flaml)
        main.add(name, task, metric, f"{budgets[name]:g}", auto.text(), auto.delivered,
                 f"{best_key}: {best.text()}" if best_key else "—", scores["hgb"].text(), scores["linear"].text(),
                 flaml.text(), flaml.delivered, *verdicts)
        every.add(name, *(scores[c].text() for c in CONTENDERS))
    main.note = (f"{n_folds} folds. Verdicts: vs best = auto ≥ best single − its SE; vs FLAML = auto ≥ FLAML − "
                 "FLAML's fold std; time = auto seconds ≤ ½ FLAML seconds.")


def _verdicts(section: Section, name: str, auto: Scores, best_key: str | None, best: Scores,
              flaml: Scores) -> list[str]:
    out = []
    checks = [
        ("vs best", auto.ok and best.ok, lambda: auto.mean >= best.mean - best.se,
         lambda: f"auto {auto.mean:.3f} < best single ({best_key}) {best.mean:.3f} − SE {best.se:.3f}"),
        ("vs FLAML", auto.ok and flaml.ok, lambda: auto.mean >= flaml.mean - flaml.std,
         lambda: f"auto {auto.mean:.3f} < FLAML {flaml.mean:.3f} − fold std {flaml.std:.3f}"),
        ("time", auto.fitted and flaml.fitted, lambda: auto.seconds <= 0.5 * flaml.seconds,
         lambda: f"auto {auto.seconds:.1f} s > ½ × FLAML {flaml.seconds:.1f} s"),
    ]
    for what, judgeable, passed, why in checks:
        if not judgeable:
            out.append("—")
        elif passed():
            out.append("PASS")
        else:
            out.append("MISS")
            section.misses.append(f"auto vs FLAML, {name}, {what}: {why()}")
    return out
