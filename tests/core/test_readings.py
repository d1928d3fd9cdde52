"""The readings under the charts: each says this run's numbers, for small made-up results whose
numbers are known, for the edge cases (no curve, one point, perfect, ties, NaN), and for real
runs of the bundled samples (the numbers in their manifests appear in the text)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core import readings
from core.datasets import SAMPLE_DIR
from core.evaluation import PROBA_PREFIX, Confusion, Curve, at_threshold, pr_curves, roc_curves
from core.events import EpochEnded
from core.glossary import PAGE_URL, TERMS, link, terms
from core.importance import Importance
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import report_from_run
from tests.core.helpers import churn_like

LINK = re.compile(r"\]\(" + PAGE_URL + r"#([a-z0-9-]+)\)")


def history(valid, train=None, unit_start=1):
    train = train if train is not None else [1.0 / (i + 1) for i in range(len(valid))]
    return [{"epoch": unit_start + i, "train_loss": t, "valid_loss": v}
            for i, (t, v) in enumerate(zip(train, valid, strict=True))]


def assert_links_resolve(text: str) -> None:
    for key in LINK.findall(text):
        assert key in TERMS, f"a reading links to a missing glossary term: {key}"


# ---------------------------------------------------------------- the training curve


def test_loss_says_where_it_was_lowest_where_it_stopped_and_that_boosting_keeps_every_round():
    curve = history([0.9, 0.6, 0.40, 0.41, 0.43, 0.45])
    text = readings.loss_curve(curve, "boosting round", stopped_early=True, family="sklearn")
    assert "lowest at boosting round 3 (0.4)" in text
    assert "stopped early](glossary#early-stopping) at boosting round 6" in text
    assert "keeps all 6 boosting rounds, ending at 0.45" in text
    assert "rose 12%" in text and "(glossary#overfitting)" in text  # 0.40 → 0.45 while training fell
    assert_links_resolve(text)


def test_a_network_keeps_the_epoch_its_early_stopping_kept_not_a_hair_lower_one():
    # Epoch 5 is lower than epoch 4 by less than early stopping's margin: the fit kept epoch 4.
    curve = history([0.9, 0.7, 0.5, 0.30000, 0.299999, 0.31, 0.32])
    text = readings.loss_curve(curve, "epoch", stopped_early=True, family="torch")
    assert "lowest at epoch 5" in text and "stopped early](glossary#early-stopping) at epoch 7" in text
    assert "kept the weights of epoch 4." in text


def test_a_curve_still_falling_at_the_end_asks_for_more_rounds_and_no_overfitting():
    text = readings.loss_curve(history([0.9, 0.7, 0.5, 0.45]), "boosting round")
    assert "lowest at boosting round 4 (0.45), its last point" in text and "more boosting rounds might help" in text
    assert "overfitting" not in text and "stopped" not in text


def test_a_stopped_run_says_you_stopped_it_and_a_forest_counts_trees():
    curve = history([0.5, 0.4, 0.41], unit_start=40)
    text = readings.loss_curve(curve, "trees", cancelled=True)
    assert "lowest at 41 trees (0.4); you stopped training at 42 trees, and the model keeps all 42 trees" in text


def test_a_flat_validation_loss_with_falling_training_loss_is_no_overfitting_alarm():
    text = readings.loss_curve(history([0.5, 0.4, 0.401, 0.402]), "epoch", stopped_early=True, family="torch")
    assert "overfitting" not in text  # a 0.5% rise is noise, not memorising


def test_loss_edge_cases_no_curve_one_point_no_validation_loss():
    assert "no training curve" in readings.loss_curve([], "fit")
    one = readings.loss_curve(history([0.167], [0.149]), "fit")
    assert "no training curve, only one point" in one and "0.149 on the training rows and 0.167 on the validation rows" in one
    assert "a slice of the training rows" in readings.loss_curve(history([0.167], [0.149]), "fit", contest=True)
    blind = readings.loss_curve(history([float("nan")] * 3, [0.9, 0.5, 0.3]), "epoch")
    assert blind.startswith("Only the training loss") and "0.9 at epoch 1" in blind and "0.3 at epoch 3" in blind


def test_an_automatic_runs_curve_says_its_validation_line_is_a_slice_of_the_training_rows():
    text = readings.loss_curve(history([0.9, 0.5, 0.6]), "boosting round", stopped_early=True, contest=True)
    assert "measured on a slice of the training rows" in text and "untouched validation rows" in text
    # A refit that grew its folds' rounds watched the validation rows, which decided nothing.
    grown = readings.loss_curve(history([0.9, 0.5, 0.4]), "boosting round", contest=True,
                                contest_curve="validation rows")
    assert "slice" not in grown and "the validation rows it is measured on decided nothing" in grown


def test_the_live_curve_says_where_training_is_and_how_long_ago_it_was_best():
    events = [EpochEnded(epoch=e, train_loss=1 / e, valid_loss=v, max_epochs=500)
              for e, v in zip(range(1, 7), [0.9, 0.6, 0.4, 0.41, 0.43, 0.45], strict=True)]
    text = readings.live_curve(events, "boosting round")
    assert text.startswith("Boosting round 6 of at most 500: validation loss 0.45.")
    assert "Lowest so far: 0.4 at boosting round 3, 3 boosting rounds ago." in text
    assert "risen 12%" in text and "(glossary#overfitting)" in text
    falling = readings.live_curve(events[:3], "boosting round")
    assert "Still falling, from 0.9 at boosting round 1." in falling and "overfitting" not in falling
    assert readings.live_curve([], "epoch") == "The curve appears after the first epoch."


# ---------------------------------------------------------------- the confusion matrix


def test_multiclass_confusion_names_the_mistake_it_makes_most_with_its_counts():
    conf = Confusion(("1st", "2nd", "3rd"), np.array([[50, 0, 0], [0, 26, 29], [0, 3, 52]]))
    text = readings.confusion(conf)
    assert "It gets 128 of the 160 validation rows right (80%)." in text
    assert "It most often takes “2nd” for “3rd”: 29 of the 55 “2nd” rows." in text


def test_confusion_ties_perfect_and_empty():
    tied = Confusion(("a", "b", "c"), np.array([[8, 2, 0], [0, 9, 0], [2, 0, 7]]))
    text = readings.confusion(tied)
    assert "most common mistakes, 2 rows each" in text
    assert "“c” taken for “a”" in text and "“a” taken for “b”" in text
    assert text.index("“c” taken for “a”") < text.index("“a” taken for “b”")  # 2 of 9 before 2 of 10
    one = readings.confusion(Confusion(("a", "b", "c"), np.array([[10, 0, 0], [0, 10, 0], [0, 1, 9]])))
    assert one.endswith("Its one mistake takes a “c” row for “b”.")
    alike = readings.confusion(Confusion(("a", "b", "c"), np.array([[10, 0, 0], [0, 10, 0], [0, 2, 8]])))
    assert alike.endswith("All its mistakes are one kind: 2 of the 10 “c” rows taken for “b”.")
    perfect = readings.confusion(Confusion(("a", "b", "c"), np.diag([10, 10, 10])))
    assert "all 30 validation rows right" in perfect
    assert "no validation rows" in readings.confusion(Confusion(("a", "b", "c"), np.zeros((3, 3), dtype=int)))


def test_binary_confusion_counts_found_missed_and_false_alarms_at_the_threshold():
    conf = Confusion(("no", "yes"), np.array([[725, 91], [62, 122]]))
    text = readings.confusion(conf, threshold=0.689)
    assert text == ("At threshold 0.69, it finds 122 of the 184 real “yes” rows and misses 62; it also calls 91 of "
                    "the 816 “no” rows “yes”.")
    assert "all 20 validation rows right" in readings.confusion(Confusion(("no", "yes"), np.array([[12, 0], [0, 8]])))


# ---------------------------------------------------------------- curves and the operating point


@pytest.fixture(scope="module")
def buyers() -> pd.DataFrame:
    """18 buyers (11 scored 0.9, 7 scored 0.1) among 100 rows; 44 of the 82 others scored 0.8."""
    p_yes = np.r_[np.full(11, 0.9), np.full(7, 0.1), np.full(44, 0.8), np.full(38, 0.2)]
    true = np.r_[np.full(18, "yes"), np.full(82, "no")]
    return pd.DataFrame({"row": np.arange(1, 101), "true": true, "predicted": np.where(p_yes >= 0.5, "yes", "no"),
                         PROBA_PREFIX + "no": 1 - p_yes, PROBA_PREFIX + "yes": p_yes})


def test_pr_reading_says_what_share_it_finds_and_how_many_alarms_are_right(buyers):
    point = at_threshold(buyers, ("no", "yes"), 0.5)
    curves = pr_curves(buyers, ("no", "yes"))
    text = readings.pr_curves(curves, point)
    assert "At threshold 0.50 it finds 61% of the real “yes” rows, 11 of 18" in text
    assert "20% of its alarms are right, about 1 in 5" in text
    assert f"{curves[0].area:.3f}, against 0.180 for guessing" in text
    assert_links_resolve(text)
    none_flagged = readings.pr_curves(curves, at_threshold(buyers, ("no", "yes"), 0.95))
    assert "it calls no row “yes”, so it finds none of the 18 real ones" in none_flagged


def test_roc_reading_turns_the_area_into_a_chance_and_gives_the_false_alarm_rate(buyers):
    point = at_threshold(buyers, ("no", "yes"), 0.5)
    curves = roc_curves(buyers, ("no", "yes"))
    text = readings.roc_curves(curves, point, imbalanced=True)
    auc = curves[0].area
    assert f"ROC AUC](glossary#roc-auc) {auc:.3f}" in text and f"{auc:.0%} of the time" in text
    assert "wrongly flags 54% of the “no” rows to find 61% of the “yes” ones" in text  # 44 of 82, 11 of 18
    assert "only 18% of the rows, the precision-recall curve is the sterner test" in text


def test_several_classes_curves_name_the_hardest_class_or_say_all_are_perfect():
    curves = [Curve("a", np.zeros(2), np.zeros(2), 0.95, 0.3), Curve("b", np.zeros(2), np.zeros(2), 0.62, 0.3),
              Curve("c", np.zeros(2), np.zeros(2), float("nan"), 0.4)]
    text = readings.pr_curves(curves)
    assert "runs from 0.620 for “b”, the class hardest to pick out, to 0.950 for “a”" in text
    assert "about 0.33" in text
    assert "runs from 0.620 for “b”" in readings.roc_curves(curves)
    perfect = [Curve(c, np.zeros(2), np.zeros(2), 1.0, 0.5) for c in "ab"]
    assert "1.000" in readings.roc_curves(perfect) and "ranked above every other row" in readings.roc_curves(perfect)
    assert "single class" in readings.pr_curves([])


def test_precision_in_words_uses_tenths_above_a_half_and_one_in_k_below():
    assert readings._alarms(0.57, 100, 57) == "57% of its alarms are right, about 6 in 10"
    assert readings._alarms(0.2, 55, 11) == "20% of its alarms are right, about 1 in 5"
    assert readings._alarms(1.0, 12, 12) == "all 12 of its alarms are right"


# ---------------------------------------------------------------- importances


def test_importance_names_the_column_that_matters_most_in_the_score_it_was_measured_with():
    items = [Importance("sex", 0.21, 0.02), Importance("age", 0.08, 0.01), Importance("fare", 0.0, 0.01),
             Importance("port", -0.01, 0.01)]
    text = readings.importances(items, "multiclass")
    assert "Shuffling `sex` raises the [log loss](glossary#log-loss) by 0.21 (± 0.02)" in text
    assert "no other column matters half as much" in text
    assert "2 of the 4 columns have grey bars" in text
    close = readings.importances([Importance("ltg", 0.342, 0.05), Importance("bmi", 0.185, 0.09)], "regression")
    assert "lowers [R²](glossary#r2) by 0.342" in close and "next comes `bmi` (0.185)" in close
    assert "grey" not in close


def test_importance_edge_cases_nothing_helps_one_column_noise_nan():
    assert "Shuffling no column made the model worse" in readings.importances(
        [Importance("a", 0.0, 0.0), Importance("b", -0.02, 0.01)], "binary")
    assert "it is the only column" in readings.importances([Importance("a", 0.3, 0.0)], "binary")
    noisy = readings.importances([Importance("a", 0.01, 0.02), Importance("b", 0.009, 0.02)], "binary")
    assert "within the spread of the shuffles" in noisy
    assert "No column importance" in readings.importances([Importance("a", float("nan"), 0.0)], "binary")


# ---------------------------------------------------------------- regression


def regression_frame(true, pred) -> pd.DataFrame:
    true, pred = np.asarray(true, dtype=float), np.asarray(pred, dtype=float)
    return pd.DataFrame({"row": np.arange(1, len(true) + 1), "true": true, "predicted": pred, "residual": true - pred})


def test_predicted_vs_actual_quotes_the_typical_miss_the_biggest_and_the_pull_to_the_middle():
    true = np.arange(100, 200, dtype=float)  # predictions pulled halfway to 150: errors up to 24.5
    pred = 150 + (true - 150) / 2
    text = readings.predicted_vs_actual(regression_frame(true, pred))
    error = np.abs(true - pred)
    assert f"within ±{readings.number(np.median(error))}" in text and f"{readings.number(error.mean())} off" in text
    assert "The biggest miss is row 1: 125 predicted for an actual 100." in text
    assert "pulls the extremes towards the middle" in text
    assert "Every prediction is exact" in readings.predicted_vs_actual(regression_frame([1, 2, 3], [1, 2, 3]))
    assert "no validation rows" in readings.predicted_vs_actual(regression_frame([], []))


def test_residuals_find_a_funnel_and_an_overall_lean():
    rng = np.random.default_rng(0)
    pred = np.linspace(10, 100, 90)
    funnel = pred * rng.choice([-0.2, 0.2], 90)  # errors as large as a fifth of the prediction
    text = readings.residuals(regression_frame(pred + funnel, pred))
    assert "Errors grow with the prediction" in text and "(a funnel)" in text
    low = readings.residuals(regression_frame(pred + 5 + rng.normal(0, 1, 90), pred))
    assert "on average the model predicts 5" in low and "too low" in low and "no funnel" in low
    assert "Every residual is 0" in readings.residuals(regression_frame([1, 2], [1, 2]))


# ---------------------------------------------------------------- the image gallery and names


def test_gallery_counts_the_mistakes_and_the_mix_up_they_repeat():
    conf = Confusion(("circle", "square", "triangle"), np.array([[40, 6, 2], [1, 45, 2], [0, 1, 47]]))
    true = ["circle"] * 6 + ["square", "triangle"]
    predicted = ["square"] * 6 + ["circle", "square"]
    text = readings.gallery(true, predicted, [0.9, 0.8, 0.7, 0.6, 0.6, 0.55, 0.5, 0.45], conf)
    assert "It got 12 of the 144 validation images wrong; here are the 8 it was surest about" in text
    assert "45% to 90% sure" in text and "“circle” taken for “square”, 6 times" in text
    assert "every validation image right" in readings.gallery([], [], [], Confusion(("a", "b"), np.diag([3, 3])))


def test_names_from_the_data_cannot_become_markdown():
    assert readings.quote("a*b_$c") == "“a\\*b\\_\\$c”"
    assert readings.code("odd`name") == "`` odd`name ``"
    conf = Confusion(("$5", "[x]"), np.array([[3, 1], [2, 4]]))
    assert "“\\[x\\]”" in readings.confusion(conf) and "“\\$5”" in readings.confusion(conf)


# ---------------------------------------------------------------- the glossary


def test_every_glossary_term_is_two_or_three_sentences_and_its_see_also_exists():
    for term in terms():
        sentences = re.findall(r"[.!?](?=\s|$)", term.text)
        assert 2 <= len(sentences) <= 3, f"{term.key}: {len(sentences)} sentences"
        assert set(term.see) <= set(TERMS), term.key
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", term.key)
    for word in ("precision", "recall", "f1", "roc-auc", "log-loss", "overfitting", "baseline", "validation-rows",
                 "class-weights", "threshold"):
        assert word in TERMS


def test_a_link_to_an_unknown_term_fails_loudly():
    assert link("recall") == "[Recall](glossary#recall)"
    with pytest.raises(KeyError):
        link("no-such-term")


# ---------------------------------------------------------------- real runs of the samples


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("readings")
    churn = folder / "churn.csv"
    churn_like(n=300).to_csv(churn, index=False)
    specs = {"iris": JobSpec(source=str(SAMPLE_DIR / "iris.csv"), runs_dir=str(folder), overrides=Overrides(model="hgb")),
             "diabetes": JobSpec(source=str(SAMPLE_DIR / "diabetes.csv"), runs_dir=str(folder),
                                 overrides=Overrides(model="hgb")),
             "churn": JobSpec(source=str(churn), target="churned", runs_dir=str(folder),
                              overrides=Overrides(model="linear"))}
    return {name: report_from_run(run_job(spec)) for name, spec in specs.items()}


def test_iris_run_readings_carry_its_numbers(sample_runs):
    report = sample_runs["iris"]
    run = report.run
    matrix = run.confusion.matrix
    assert f"It gets {np.trace(matrix)} of the {matrix.sum()} validation rows right" in readings.confusion(run.confusion)
    valid = np.array([h["valid_loss"] for h in run.history])
    best = run.history[int(np.argmin(valid))]["epoch"]
    text = readings.loss_curve(run.history, run.model.curve_unit, stopped_early=run.stopped_early,
                               family=run.model.family)
    assert f"lowest at boosting round {best} ({readings.number(valid.min())})" in text
    assert run.stopped_early  # iris stops well before its 500 rounds
    last = run.history[-1]["epoch"]
    assert f"stopped early](glossary#early-stopping) at boosting round {last}" in text
    assert f"keeps all {last} boosting rounds, ending at {readings.number(valid[-1])}" in text
    top = run.importances[0]
    assert f"Shuffling `{top.feature}` raises" in readings.importances(run.importances, run.task)
    assert f"by {readings.number(top.importance)}" in readings.importances(run.importances, run.task)
    lowest, highest = min(report.roc_curves, key=lambda c: c.area), max(report.roc_curves, key=lambda c: c.area)
    roc = readings.roc_curves(report.roc_curves)
    if lowest.area < 0.9995:
        assert f"from {lowest.area:.3f} for “{lowest.label}”" in roc and f"to {highest.area:.3f}" in roc
    else:
        assert "is 1.000" in roc


def test_churn_run_readings_carry_its_operating_point(sample_runs):
    report = sample_runs["churn"]
    run = report.run
    point = at_threshold(run.predictions, run.classes, run.threshold.value)
    (tn, fp), (fn, tp) = point.confusion.matrix.tolist()
    pr = readings.pr_curves(report.pr_curves, point)
    assert f"{tp} of {tp + fn}" in pr and f"{readings.percent(tp / (tp + fp))} of its alarms are right" in pr
    assert f"{report.pr_curves[0].area:.3f}" in pr
    roc = readings.roc_curves(report.roc_curves, point)
    assert f"{run.metrics['roc_auc']:.3f}" in roc and f"{readings.percent(fp / (tn + fp))} of the “no” rows" in roc
    assert f"It finds {tp} of the {tp + fn} real “yes” rows and misses {fn}" in readings.confusion(point.confusion)


def test_diabetes_run_readings_carry_its_errors(sample_runs):
    run = sample_runs["diabetes"].run
    text = readings.predicted_vs_actual(run.predictions)
    assert f"they are {readings.number(run.metrics['mae'])} off" in text  # the mean absolute error tile's number
    worst = run.predictions.loc[run.predictions["residual"].abs().idxmax()]
    assert f"The biggest miss is row {int(worst['row'])}: {readings.number(worst['predicted'])} predicted" in text
    res = readings.residuals(run.predictions)
    q1, q3 = np.percentile(run.predictions["residual"], [25, 75])
    assert f"between {readings.signed(q1)} and {readings.signed(q3)}" in res
    assert "lowers [R²](glossary#r2)" in readings.importances(run.importances, run.task)
