"""core.evaluation, core.runs and core.run_record: metrics, curves, the manifest contract, the typed
record, rebuilding without retraining."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import RunError
from core.evaluation import (
    PROBA_PREFIX,
    Threshold,
    at_threshold,
    class_probabilities,
    classification_metrics,
    decide,
    verdict,
    worst_errors,
)
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import load_manifest, read_run, report_from_run
from core.runs import list_runs, load_model, resolve_run, save_threshold
from tests.core.helpers import churn_like, regression_table, with_free_text

MANIFEST_KEYS = {"schema_version", "run_id", "created", "data", "task", "model", "device", "split", "metrics",
                 "baseline", "history", "confusion_matrix", "feature_importance", "timings", "stopped_early",
                 "cancelled", "versions", "threshold"}


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    path = folder / "churn.csv"
    churn_like(n=400).to_csv(path, index=False)
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(folder / "runs"),
                              overrides=Overrides(model="hgb")))
    return run_dir, folder / "runs"


def test_manifest_has_every_contract_key(churn_run):
    manifest = load_manifest(churn_run[0])
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["schema_version"] == 1 and manifest["task"] == "binary"
    assert manifest["data"]["classes"] == ["no", "yes"] and manifest["data"]["target"] == "churned"
    # the job lets go of the table's rows after splitting; the manifest still counts them
    assert manifest["data"]["n_rows"] == 400 == manifest["split"]["n_train"] + manifest["split"]["n_valid"]
    dropped = manifest["data"]["dropped_columns"]
    assert [c["name"] for c in dropped] == ["customer_id"] and "every row" in dropped[0]["why"]
    assert manifest["model"]["key"] == "hgb" and manifest["model"]["params"]["n_iter"] >= 1
    assert manifest["baseline"]["key"] == "linear" and "roc_auc" in manifest["baseline"]["metrics"]
    assert set(manifest["metrics"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc",
                                        "average_precision", "log_loss"}
    assert sum(map(sum, manifest["confusion_matrix"]["matrix"])) == manifest["split"]["n_valid"]
    assert {i["feature"] for i in manifest["feature_importance"]} == {"tenure", "charges", "contract", "region",
                                                                     "signup"}
    json.dumps(manifest, allow_nan=False)  # strict JSON: no NaN sneaks in


def test_report_rebuilds_from_the_folder_alone(churn_run):
    run_dir, _ = churn_run
    report = report_from_run(run_dir)
    run = report.run
    manifest = load_manifest(run_dir)
    assert run.confusion.matrix.tolist() == manifest["confusion_matrix"]["matrix"]
    assert len(report.pr_curves) == 1 and report.pr_curves[0].label == "yes"
    assert report.roc_curves[0].area == pytest.approx(manifest["metrics"]["roc_auc"], abs=1e-9)
    importances = [i.importance for i in run.importances]
    assert len(importances) == 5 and importances == sorted(importances, reverse=True)
    # the sentence names the linear baseline and quotes both scores (not merely some reference)
    key = run.main_metric
    sentence = verdict(key, run.metrics, run.baseline_metrics, run.dummy_metrics).text
    assert "the linear baseline" in sentence
    assert f"{run.metrics[key]:.3f}" in sentence and f"{run.baseline_metrics[key]:.3f}" in sentence
    assert not run.worst.empty and (run.worst["true"] != run.worst["predicted"]).all()
    assert any(c.startswith("input: ") for c in run.worst.columns)


def test_the_record_reads_every_section_typed(churn_run):
    run_dir, _ = churn_run
    manifest, run = load_manifest(run_dir), read_run(run_dir)
    assert (run.run_id, run.task, run.classes) == (manifest["run_id"], "binary", ("no", "yes"))
    assert run.model.key == "hgb" and run.model.curve_unit == "boosting round" and run.model.reasons
    assert run.split.n_train + run.split.n_valid == run.data.n_rows == 400
    assert "customer_id" not in run.data.feature_columns and "tenure" in run.data.feature_columns
    assert run.value == manifest["metrics"]["roc_auc"] and run.baseline_key == "linear"
    assert run.device.badge.startswith("CPU")
    assert len(run.predictions) == run.split.n_valid
    listed = read_run(run_dir, predictions=False)
    assert listed.predictions is None and listed.metrics == run.metrics


def test_the_confusion_matrix_is_read_from_the_run_not_recomputed(churn_run, tmp_path):
    """Computed once after training and saved: the record shows the saved one."""
    import shutil

    copy = tmp_path / "runs" / Path(churn_run[0]).name
    shutil.copytree(churn_run[0], copy)
    manifest = load_manifest(copy)
    manifest["confusion_matrix"]["matrix"] = [[1, 2], [3, 4]]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert read_run(copy).confusion.matrix.tolist() == [[1, 2], [3, 4]]


def test_the_verdict_says_better_only_when_the_model_wins():
    assert verdict("r2", {"r2": 0.8}, {"r2": 0.5}, {"r2": 0.0}).better
    worse = verdict("r2", {"r2": 0.5}, {"r2": 0.8}, {"r2": 0.0})
    assert not worse.better and "is worse than" in worse.text
    assert not verdict("r2", {"r2": 0.5}, {"r2": 0.502}, {"r2": 0.0}).better  # a tie is no win
    assert verdict("r2", {"r2": 0.5}, {}, {"r2": 0.0}).better  # no baseline: judged against guessing


def test_model_round_trip_predicts_the_same(churn_run):
    run_dir, runs = churn_run
    model, run = load_model(run_dir, runs)
    frame = churn_like(n=400)
    predictions = read_run(run_dir).predictions
    rows = predictions["row"].to_numpy() - 1
    proba = class_probabilities(model, frame.iloc[rows], run.classes)
    assert np.allclose(proba[:, 1], predictions["proba: yes"].to_numpy())


def test_models_load_only_from_the_runs_folder(churn_run, tmp_path):
    run_dir, runs = churn_run
    from core.errors import RunError

    with pytest.raises(RunError, match="Only runs saved by this app"):
        resolve_run(run_dir, tmp_path)
    assert [r.path for r in list_runs(runs)] == [run_dir]


def test_regression_run(tmp_path):
    path = tmp_path / "reg.csv"
    regression_table().to_csv(path, index=False)
    run_dir = run_job(JobSpec(source=str(path), target="y", runs_dir=str(tmp_path), overrides=Overrides(seed=1)))
    manifest = load_manifest(run_dir)
    assert manifest["task"] == "regression" and manifest["confusion_matrix"] is None
    assert manifest["threshold"] is None and read_run(run_dir).threshold is None  # no threshold for numbers
    assert manifest["metrics"]["r2"] > 0.8
    assert manifest["metrics"]["r2"] > manifest["baseline"]["dummy_metrics"]["r2"]
    report = report_from_run(run_dir)
    assert "residual" in report.run.predictions and report.run.confusion is None and not report.pr_curves


def test_metrics_known_values():
    classes = ("a", "b")
    y = np.array(["a", "a", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    m = classification_metrics(y, proba, classes)
    assert m["accuracy"] == 0.75 and m["roc_auc"] == 0.75
    assert m["balanced_accuracy"] == 0.75


def test_class_order_follows_classes_not_sklearn_sorting():
    class Model:
        classes_ = np.array(["10", "2"])  # sklearn sorts strings: "10" < "2"

        def predict_proba(self, X):
            return np.array([[0.2, 0.8]])

    assert class_probabilities(Model(), None, ("2", "10")).tolist() == [[0.8, 0.2]]


def test_worst_errors_confidently_wrong_first():
    frame = pd.DataFrame({"row": [1, 2, 3], "true": ["a", "a", "b"], "predicted": ["b", "b", "b"],
                          "proba: a": [0.4, 0.1, 0.2], "proba: b": [0.6, 0.9, 0.8]})
    worst = worst_errors(frame, "binary")
    assert worst["row"].tolist() == [2, 1]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_permutation_importance_finds_the_signal(task):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from core.importance import permutation_importances

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"signal": rng.normal(size=600), "noise": rng.normal(size=600)})
    y = X["signal"] * 3 + rng.normal(0, 0.1, 600)
    if task == "binary":
        y = np.where(y > 0, "up", "down")
        model = HistGradientBoostingClassifier(max_iter=50).fit(X[:400], y[:400])
    else:
        model = HistGradientBoostingRegressor(max_iter=50).fit(X[:400], y[:400])
    items, rows = permutation_importances(model, X[400:], np.asarray(y)[400:], task)
    by_name = {i.feature: i for i in items}
    assert rows == 200 and items[0].feature == "signal"
    signal, noise = by_name["signal"], by_name["noise"]
    assert signal.importance > 0.3 and abs(noise.importance) < 0.05
    # the spread is over distinct shuffles (not one shuffle repeated), and small next to a real signal
    assert 0 < signal.std < signal.importance / 5
    # the unused column's importance is zero within its own spread (a tiny epsilon for float noise)
    assert abs(noise.importance) <= 3 * noise.std + 1e-9


def test_no_skill_baseline_counts_labels_as_text():
    from core.evaluation import baseline_predictions

    y_train = pd.Series(["1", "2", "2", "10"], dtype="str")
    shares = baseline_predictions("multiclass", y_train, 2, ("1", "2", "10"))
    assert shares.tolist() == [[0.25, 0.5, 0.25]] * 2
    assert baseline_predictions("multiclass", np.array([0, 1, 1, 1]), 1, ("a", "b")).tolist() == [[0.25, 0.75]]
    with pytest.raises(KeyError, match="'3'"):
        baseline_predictions("multiclass", ["1", "3"], 1, ("1", "2"))


# ---------------------------------------------------------------- the operating point


def test_operating_point_counts_by_hand():
    """Six rows, positive class "yes" (the last): at 0.5 three are called yes, two of them rightly."""
    predictions = pd.DataFrame({"true": ["no", "no", "no", "yes", "yes", "yes"],
                                PROBA_PREFIX + "yes": [0.1, 0.4, 0.6, 0.3, 0.5, 0.9]})
    point = at_threshold(predictions, ("no", "yes"), 0.5)
    assert point.positive == "yes" and point.confusion.labels == ("no", "yes")
    assert point.confusion.matrix.tolist() == [[2, 1], [1, 2]]  # rows true no/yes, columns predicted no/yes
    assert point.precision == pytest.approx(2 / 3) and point.recall == pytest.approx(2 / 3) and point.n_flagged == 3
    low = at_threshold(predictions, ("no", "yes"), 0.25)
    assert low.confusion.matrix.tolist() == [[1, 2], [0, 3]] and low.recall == 1.0 and low.precision == 0.6
    none = at_threshold(predictions, ("no", "yes"), 0.95)
    assert none.n_flagged == 0 and none.precision is None and none.recall == 0.0
    assert decide(np.array([[0.6, 0.4], [0.3, 0.7]]), ("no", "yes"), 0.35).tolist() == [1, 1]
    assert decide(np.array([[0.6, 0.4], [0.3, 0.7]]), ("no", "yes")).tolist() == [0, 1]  # no threshold: argmax


def test_operating_point_lies_on_the_pr_curve(churn_run):
    report = report_from_run(churn_run[0])
    run = report.run
    threshold = float(np.median(run.predictions["proba: yes"]))
    point = at_threshold(run.predictions, run.classes, threshold)
    curve = report.pr_curves[0]
    assert np.isclose(curve.x, point.recall).any() and np.isclose(curve.y, point.precision).any()
    at_default = at_threshold(run.predictions, run.classes, run.threshold.value)
    assert at_default.confusion.matrix.tolist() == run.confusion.matrix.tolist()  # 0.5 = the saved argmax


def test_binary_runs_record_the_default_threshold(churn_run, tmp_path):
    run_dir, _ = churn_run
    assert load_manifest(run_dir)["threshold"] == {"value": 0.5, "metric": None, "chosen_by": "default"}
    assert read_run(run_dir).threshold == Threshold(0.5, None, "default")
    older = tmp_path / "runs" / Path(run_dir).name  # saved before the key existed
    shutil.copytree(run_dir, older)
    manifest = load_manifest(older)
    del manifest["threshold"]
    (older / "manifest.json").write_text(json.dumps(manifest))
    assert read_run(older).threshold == Threshold(0.5, None, "default")


def test_a_saved_threshold_round_trips(churn_run, tmp_path):
    run_dir, runs = churn_run
    copy = tmp_path / "runs" / Path(run_dir).name
    shutil.copytree(run_dir, copy)
    before = load_manifest(copy)
    saved = save_threshold(copy.name, 0.3, tmp_path / "runs")  # a bare run id, as the CLI allows
    assert saved.threshold == Threshold(0.3, None, "you") == read_run(copy).threshold
    after = load_manifest(copy)
    assert after["threshold"] == {"value": 0.3, "metric": None, "chosen_by": "you"}
    assert {k: v for k, v in after.items() if k != "threshold"} == {k: v for k, v in before.items() if k != "threshold"}
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in Path(run_dir).iterdir())  # no temp left
    with pytest.raises(RunError, match="between 0 and 1"):
        save_threshold(copy, 1.5, tmp_path / "runs")
    with pytest.raises(RunError, match="Only runs saved by this app"):
        save_threshold(run_dir, 0.3, tmp_path / "runs")
    assert read_run(run_dir).threshold.value == 0.5  # the original, outside that folder, is untouched


def _three_columns(task: str):
    """An informative, a weak and a noise column (plus a category), a fitted Trainboard pipeline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from core.features import ColumnCaster

    rng = np.random.default_rng(1)
    n = 900
    X = pd.DataFrame({"strong": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
                      "group": rng.choice(["a", "b", "c"], n)})
    y = 3 * X["strong"] + 0.7 * X["weak"] + np.where(X["group"] == "a", 1.0, 0.0) + rng.normal(0, 0.5, n)
    if task == "binary":
        y = np.where(y > 0.3, "up", "down")
    ct = ColumnTransformer([("numeric", "passthrough", ["strong", "weak", "noise"]),
                            ("categorical", OrdinalEncoder(), ["group"])])
    ct.set_output(transform="pandas")
    booster = (HistGradientBoostingClassifier if task == "binary" else HistGradientBoostingRegressor)(
        max_iter=60, random_state=0)
    roles = {"strong": "numeric", "weak": "numeric", "noise": "numeric", "group": "categorical"}
    model = Pipeline([("prep", Pipeline([("cast", ColumnCaster(roles)), ("encode", ct)])), ("model", booster)])
    model.fit(X[:600], np.asarray(y)[:600])
    return model, X[600:], np.asarray(y)[600:]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_transform_once_gives_the_whole_pipelines_importances(task):
    from core import importance

    model, X, y = _three_columns(task)
    assert importance._ColumnScorer.build(model, X.reset_index(drop=True), y, task) is not None  # the fast path ran
    fast, _ = importance.permutation_importances(model, X, y, task, seed=3)
    plain, _ = importance.permutation_importances(model, X, y, task, seed=3, fast=False)
    # the same shuffles through either path: the same numbers, not merely close ones
    assert [i.feature for i in fast] == [i.feature for i in plain]
    assert np.allclose([i.importance for i in fast], [i.importance for i in plain], atol=1e-9)
    assert np.allclose([i.std for i in fast], [i.std for i in plain], atol=1e-9)
    by_name = {i.feature: i for i in fast}
    assert [i.feature for i in fast][:2] == ["strong", "weak"]  # ranking: informative, then weak
    assert by_name["weak"].importance > 3 * by_name["weak"].std > 0  # the weak one is clearly there
    assert abs(by_name["noise"].importance) < by_name["weak"].importance / 5


def test_importances_match_sklearn_within_the_spread():
    from sklearn.inspection import permutation_importance

    from core.importance import permutation_importances

    model, X, y = _three_columns("binary")
    ours = {i.feature: i for i in permutation_importances(model, X, y, "binary", seed=0)[0]}
    theirs = permutation_importance(model, X, y, scoring="neg_log_loss", n_repeats=10, random_state=0)
    for name, mean, std in zip(X.columns, theirs.importances_mean, theirs.importances_std, strict=True):
        assert abs(ours[name].importance - mean) <= 3 * max(std, ours[name].std) + 1e-3, name


def test_unmappable_models_go_through_the_whole_pipeline():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from core import importance

    model, X, y = _three_columns("binary")
    bare = HistGradientBoostingClassifier(max_iter=30).fit(X[["strong", "weak", "noise"]], y)
    assert importance._ColumnScorer.build(bare, X[["strong", "weak", "noise"]], y, "binary") is None
    items, _ = importance.permutation_importances(bare, X[["strong", "weak", "noise"]], y, "binary")
    assert items[0].feature == "strong"
    # a step before the ColumnTransformer that is not a known column-wise cast: no fast path
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    odd = Pipeline([("mix", FunctionTransformer()), *model.steps])
    assert importance._ColumnScorer.build(odd, X, y, "binary") is None


def test_settled_columns_stop_early_and_unsettled_ones_do_not():
    from core.importance import IMPORTANCE_REPEATS, MIN_REPEATS, _settled

    assert _settled([0.10, 0.11, 0.09], top=0.1)  # clearly positive
    assert _settled([0.0001, -0.0001, 0.0], top=0.1)  # clearly negligible
    assert not _settled([0.01, -0.008, 0.012], top=0.1)  # neither: keep shuffling
    assert 2 <= MIN_REPEATS < IMPORTANCE_REPEATS


def test_the_no_skill_guess_is_named_for_the_task():
    from core.evaluation import reference_name

    assert "guessing the average" in verdict("r2", {"r2": 0.5}, {}, {"r2": 0.0}).text
    assert "most common class" in verdict("macro_f1", {"macro_f1": 0.5}, {}, {"macro_f1": 0.2}).text
    assert reference_name("roc_auc", {"roc_auc": 0.7}) == "the linear baseline"


def test_importance_of_a_text_column_whose_vectors_are_sparse_in_a_dense_output(tmp_path):
    """The linear model's inputs are dense as a whole while the text part is a sparse matrix: a
    shuffled text column's vectors must still land in the dense copy (it once raised)."""
    path = tmp_path / "notes.csv"
    with_free_text(churn_like(n=200), 0).to_csv(path, index=False)
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(tmp_path / "runs"),
                              overrides=Overrides(model="linear")))
    assert "note" in {i["feature"] for i in load_manifest(run_dir)["feature_importance"]}
