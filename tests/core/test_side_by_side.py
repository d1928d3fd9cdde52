"""Runs side by side (``core.side_by_side`` and ``core.plots.pr_curves_compared``): which runs
share their data, the scores table with the best marked, the plan diff, the overlaid PR curves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import plots, side_by_side
from core.datasets import SAMPLE_DIR
from core.evaluation import Curve, Threshold
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import read_run
from tests.core.helpers import churn_like


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs on the same churn table (a linear model; boosting capped at 15 rounds) and one on iris."""
    folder = tmp_path_factory.mktemp("side")
    churn_like(n=300).to_csv(folder / "churn.csv", index=False)
    runs_dir = str(folder / "runs")
    churn = dict(source=str(folder / "churn.csv"), target="churned", runs_dir=runs_dir)
    return {"linear": run_job(JobSpec(**churn, overrides=Overrides(model="linear"))),
            "hgb": run_job(JobSpec(**churn, overrides=Overrides(model="hgb", max_epochs=15, valid_fraction=0.25))),
            "iris": run_job(JobSpec(source=str(SAMPLE_DIR / "iris.csv"), runs_dir=runs_dir,
                                    overrides=Overrides(model="linear")))}


def test_runs_on_the_same_source_rows_and_target_share_their_data(runs):
    linear, hgb, iris = (read_run(runs[k], predictions=False) for k in ("linear", "hgb", "iris"))
    assert side_by_side.same_data([linear, hgb])
    assert not side_by_side.same_data([linear, iris])
    groups = side_by_side.by_data([linear, iris, hgb])
    assert [len(g) for g in groups.values()] == [2, 1]
    key = side_by_side.data_key(linear)
    assert key.words == "churn.csv (300 rows, predicting churned)"
    # the same file name with other rows, or another target, is other data
    assert not side_by_side.same_data([linear, replace(hgb, data=replace(hgb.data, n_rows=299))])
    assert not side_by_side.same_data([linear, replace(hgb, data=replace(hgb.data, target="contract"))])


def test_metric_rows_mark_the_best_run_per_score(runs):
    linear, hgb = read_run(runs["linear"], predictions=False), read_run(runs["hgb"], predictions=False)
    rows = {row["key"]: row for row in side_by_side.metric_rows([linear, hgb])}
    assert set(rows) == set(linear.metrics)
    auc, loss = rows["roc_auc"], rows["log_loss"]
    assert auc["values"] == {linear.run_id: linear.metrics["roc_auc"], hgb.run_id: hgb.metrics["roc_auc"]}
    assert auc["best"] == max(auc["values"], key=auc["values"].get)
    assert loss["best"] == min(loss["values"], key=loss["values"].get)  # lower is better
    assert loss["score"] == "Log loss (lower is better)"
    tie = side_by_side.metric_rows([linear, replace(linear, run_id="copy")])
    assert all(row["best"] is None for row in tie)


def test_plan_diff_lists_only_what_differs_model_first(runs):
    linear, hgb = read_run(runs["linear"], predictions=False), read_run(runs["hgb"], predictions=False)
    diff = {d.setting: d.values for d in side_by_side.plan_diff([linear, hgb])}
    assert list(diff)[0] == "model"
    assert diff["model"] == ("Linear model (linear)", "Histogram gradient boosting (hgb)")
    assert diff["validation share"] == ("20%", "25%")
    assert diff["training rows"] == ("240", "225")
    assert diff["most epochs / rounds"] == ("the model's own", "15")
    assert "seed" not in diff and "split" not in diff and "columns used" not in diff  # the same for both
    # a setting only one model has reads as missing for the other
    only_hgb = next(name for name in diff if name.startswith("setting: ") and diff[name][0] == side_by_side.MISSING)
    assert diff[only_hgb][1] != side_by_side.MISSING
    moved = replace(linear, threshold=Threshold(0.3, None, "you"))
    assert side_by_side.plan_diff([linear, moved])[0].setting == "threshold"
    assert side_by_side.plan_diff([linear, linear]) == []


def _curve(label: str, area: float, prevalence: float = 0.3) -> Curve:
    return Curve(label, np.linspace(0, 1, 5), np.linspace(1, prevalence, 5), area, prevalence)


def test_pr_curves_compared_draws_one_line_per_run_and_the_shared_no_skill_line():
    fig = plots.pr_curves_compared({"run-a": (_curve("yes", 0.81),), "run-b": (_curve("yes", 0.74),)})
    names = [t.name for t in fig.data]
    assert names == ["run-a (AP 0.810)", "run-b (AP 0.740)", "no skill (0.30)"]
    assert fig.layout.title.text.startswith("Precision-recall")
    assert fig.data[0].line.color != fig.data[1].line.color  # each run a colour of its own
    losses = plots.loss_curves_compared({"run-a": [{"epoch": 1, "train_loss": 1.0, "valid_loss": 0.9}],
                                         "run-b": [{"epoch": 1, "train_loss": 1.1, "valid_loss": 0.8}]})
    assert losses.data[0].line.color != losses.data[1].line.color
    several = plots.pr_curves_compared({"run-a": (_curve("x", 0.5), _curve("y", 0.6)), "run-b": (_curve("x", 0.7),)})
    assert [t.name for t in several.data] == ["run-a · x (AP 0.500)", "run-a · y (AP 0.600)", "run-b (AP 0.700)"]
    other = plots.pr_curves_compared({"a": (_curve("yes", 0.8, 0.3),), "b": (_curve("yes", 0.8, 0.4),)})
    assert len(other.data) == 2  # no one no-skill line when the runs' positive shares differ
