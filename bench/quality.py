"""Section 7: validation scores of the auto-pick next to a plain scikit-learn reference.

For every table sample: Trainboard's run (section 5's, the planner's choice through ``run_job``),
its linear sanity baseline (from the same manifest), and ``HistGradientBoostingClassifier()`` /
``Regressor()`` with defaults on the same rows and the same split, every non-numeric column
ordinal-encoded — what a practitioner writes in five minutes.
"""

from __future__ import annotations

from typing import Any

from bench.common import Config, Section, Table, log, run_child
from bench.end_to_end import RUNS

TABLE_SAMPLES = ("iris.csv", "wine.csv", "breast_cancer.csv", "diabetes.csv", "churn.csv")


def reference_child(source: str, target: str, valid_fraction: float, seed: int) -> dict[str, Any]:
    """Child task: the plain reference's validation metrics on Trainboard's split of the same rows."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from core.datasets import load_table
    from core.evaluation import metrics_for
    from core.schema import prepare
    from core.training import split_rows

    table = load_table(source)
    prepared = prepare(table, target=target)
    X = table.frame.loc[prepared.X.index].drop(columns=[target])  # every raw column, the rows Trainboard kept
    y = prepared.y
    train, valid = split_rows(np.asarray(y), prepared.task, valid_fraction, seed)
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan),
         text), remainder="passthrough")
    regression = prepared.task == "regression"
    model = make_pipeline(encode, HistGradientBoostingRegressor() if regression else HistGradientBoostingClassifier())
    model.fit(X.iloc[train], y.iloc[train])
    X_valid, y_valid = X.iloc[valid], y.iloc[valid]
    if regression:
        prediction = model.predict(X_valid)
    else:
        order = [list(model.classes_).index(c) for c in prepared.classes]
        prediction = model.predict_proba(X_valid)[:, order]
    return {"metrics": metrics_for(prepared.task, prepared.classes, y_valid, prediction), "task": prepared.task,
            "encoded_columns": text}


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    section = Section(
        "7. Quality: the auto-pick vs plain references",
        "Validation scores on each table sample: Trainboard's run (the planner's automatic choice through "
        "`run_job`), its linear baseline, and a plain `HistGradientBoostingClassifier()`/`Regressor()` with "
        "defaults (every non-numeric column through an `OrdinalEncoder`) on the same rows and the same split. "
        "Headline metric per task: ROC AUC (binary), macro F1 (multiclass), R² (regression); higher is better.")
    from bench.common import WORK

    runs = dict(shared.get("runs") or {})
    table = Table(["sample", "task", "Trainboard model", "metric", "Trainboard", "linear baseline",
                   "plain HGB defaults", "Trainboard − plain", "second metric: Trainboard / baseline / plain"])
    section.tables.append(table)
    for name in TABLE_SAMPLES:
        log(f"quality: {name}")
        run_dir = runs.get(name)
        if run_dir is None:
            run_dir = run_child("end_to_end:job_child", source=f"sample_data/{name}",
                                runs_dir=str(WORK / RUNS)).data["run_dir"]
        manifest = _manifest(run_dir)
        reference = run_child("quality:reference_child", source=f"sample_data/{name}",
                              target=manifest["data"]["target"], valid_fraction=manifest["split"]["valid_fraction"],
                              seed=manifest["split"]["seed"]).data
        task = manifest["task"]
        main, second = {"binary": ("roc_auc", "balanced_accuracy"), "multiclass": ("macro_f1", "accuracy"),
                        "regression": ("r2", "rmse")}[task]
        mine, base = manifest["metrics"], (manifest.get("baseline") or {}).get("metrics") or {}
        plain = reference["metrics"]
        gap = None if mine.get(main) is None or plain.get(main) is None else mine[main] - plain[main]
        table.add(name, task, manifest["model"]["name"], main, _num(mine.get(main)), _num(base.get(main)),
                  _num(plain.get(main)), "—" if gap is None else f"{gap:+.3f}",
                  f"{second}: {_num(mine.get(second))} / {_num(base.get(second))} / {_num(plain.get(second))}")
    section.notes.append("Small samples have small validation splits (iris: 30 rows), so differences of a few "
                         "hundredths there are one or two rows.")
    return section


def _manifest(run_dir: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    return json.loads((Path(run_dir) / "manifest.json").read_text())


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
