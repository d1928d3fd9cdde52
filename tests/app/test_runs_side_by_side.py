"""The Runs page comparing runs side by side (only runs on the same data), and the offline report's
download on Runs and Evaluate, through AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.datasets import SAMPLE_DIR
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from tests.app.test_pages import app, figures, open_evaluate, texts
from tests.core.helpers import churn_like


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs on one churn table (linear; boosting capped at 15 rounds) and one on iris."""
    folder = tmp_path_factory.mktemp("side-page")
    churn_like(n=300).to_csv(folder / "churn.csv", index=False)
    runs_dir = str(folder / "runs")
    churn = dict(source=str(folder / "churn.csv"), target="churned", runs_dir=runs_dir)
    return {"linear": run_job(JobSpec(**churn, overrides=Overrides(model="linear"))),
            "hgb": run_job(JobSpec(**churn, overrides=Overrides(model="hgb", max_epochs=15))),
            "iris": run_job(JobSpec(source=str(SAMPLE_DIR / "iris.csv"), runs_dir=runs_dir,
                                    overrides=Overrides(model="linear")))}


@pytest.fixture(autouse=True)
def _runs_folder(runs, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(runs["iris"].parent))


def test_two_runs_on_the_same_data_side_by_side(runs):
    at = app("app_pages/runs.py")
    at.multiselect(key="runs_picked").set_value([str(runs["linear"]), str(runs["hgb"])]).run()
    assert not at.exception, at.exception
    assert "Comparing 2 runs on churn.csv (300 rows, predicting churned)" in texts(at.subheader)
    ids = [runs["linear"].name, runs["hgb"].name]
    scores = at.dataframe[1].value
    assert list(scores.columns) == ["score", *ids]
    assert "ROC AUC" in set(scores["score"]) and scores[ids].notna().all().all()
    plan = at.dataframe[2].value
    assert list(plan.columns) == ["setting", *ids]
    model = plan.set_index("setting").loc["model"]
    assert list(model) == ["Linear model (linear)", "Histogram gradient boosting (hgb)"]
    assert "seed" not in set(plan["setting"])  # only what differs
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert titles == ["Validation loss while training (lower is better)",
                      "Precision-recall (higher and further right is better)"]
    pr = figures(at)[1]["data"]
    assert [t["name"].split(" (AP")[0] for t in pr[:2]] == ids and pr[2]["name"].startswith("no skill")
    assert not at.warning


def test_runs_on_different_data_are_not_compared_and_the_page_offers_those_that_are(runs):
    at = app("app_pages/runs.py")
    at.multiselect(key="runs_picked").set_value([str(runs["linear"]), str(runs["iris"])]).run()
    assert not at.exception, at.exception
    assert "trained on different data" in texts(at.warning)
    assert "iris.csv (150 rows, predicting species)" in texts(at.warning)
    assert not at.get("plotly_chart") and not any(s.value.startswith("Comparing") for s in at.subheader)
    offer = [b for b in at.button if b.label.startswith("Compare the")]
    assert [b.label for b in offer] == ["Compare the 2 runs on churn.csv (300 rows, predicting churned)"]
    offer[0].click().run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="runs_picked").value) == {str(runs["linear"]), str(runs["hgb"])}
    assert "Comparing 2 runs on churn.csv" in texts(at.subheader)
    assert len(at.get("plotly_chart")) == 2


def test_the_report_is_prepared_on_click_on_runs_and_evaluate(runs):
    at = app("app_pages/runs.py")
    at.multiselect(key="runs_picked").set_value([str(runs["linear"])]).run()
    assert not report_downloads(at)  # nothing is built until asked for
    next(b for b in at.button if b.label == "Prepare the offline report").click().run()
    assert not at.exception, at.exception
    assert len(report_downloads(at)) == 1
    assert "opens from disk" in texts(at.caption)

    at = open_evaluate(runs["hgb"])
    assert "Take it with you" in texts(at.subheader) and not report_downloads(at)
    next(b for b in at.button if b.label == "Prepare the offline report").click().run()
    assert not at.exception, at.exception
    assert len(report_downloads(at)) == 1


def report_downloads(at):
    """The report's download buttons (the bundle's sits beside them, built lazily on click)."""
    return [d for d in at.get("download_button") if d.proto.label == "Download the report (HTML)"]
