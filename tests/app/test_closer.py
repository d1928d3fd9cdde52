"""Evaluate's and Predict's "look closer" sections through AppTest: the rows behind a confusion cell
(picked in the "true → predicted" box, the accessible twin of a click on the matrix), following a
binary threshold; thumbnails for image runs; partial dependence and one row explained."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import explain
from core.datasets import SAMPLE_DIR
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import read_run
from tests.app.test_pages import APP, confusion_shown, csv_bytes, figures, open_evaluate, texts, tiny_shapes
from tests.core.helpers import churn_like
from ui import closer_view
from ui.state import cell_key, threshold_key


@pytest.fixture(scope="module")
def closer_runs(tmp_path_factory) -> dict[str, Path]:
    """A yes/no (churn-like, linear), a three-class (iris, boosting) and an image run (shapes)."""
    folder = tmp_path_factory.mktemp("closer-runs")
    data = tmp_path_factory.mktemp("closer-data")
    churn_like(n=300).to_csv(data / "churn.csv", index=False)
    specs = {"churn": JobSpec(source=str(data / "churn.csv"), target="churned", runs_dir=str(folder),
                              overrides=Overrides(model="linear")),
             "iris": JobSpec(source=str(SAMPLE_DIR / "iris.csv"), runs_dir=str(folder),
                             overrides=Overrides(model="hgb", max_epochs=20)),
             "shapes": JobSpec(source=str(tiny_shapes(data, per_class=12)), runs_dir=str(folder),
                               overrides=Overrides(max_epochs=1))}
    return {name: run_job(spec) for name, spec in specs.items()}


@pytest.fixture(autouse=True)
def _inline_jobs(monkeypatch, closer_runs):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(next(iter(closer_runs.values())).parent))


def evaluate(run_dir: Path) -> AppTest:
    return open_evaluate(run_dir, timeout=90)


def cell_table(at: AppTest) -> pd.DataFrame:
    """The drill-down's table: the first table with a confidence column (the worst errors follow it)."""
    tables = [d.value for d in at.dataframe if "confidence" in d.value.columns]
    assert len(tables) == 2, f"expected the cell's table and the worst errors, found {len(tables)}"
    return tables[0]


def figure_titled(at: AppTest, start: str) -> dict:
    shown = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith(start)]
    assert len(shown) == 1, f"expected one figure titled {start!r}, found {len(shown)}"
    return shown[0]


# ---------------------------------------------------------------- the rows behind a cell


def test_picking_a_cell_shows_exactly_its_rows_and_follows_the_threshold(closer_runs):
    run_dir = closer_runs["churn"]
    run = read_run(run_dir)
    predictions = run.predictions
    at = evaluate(run_dir)
    assert "Look closer: the rows behind a cell" in texts(at.subheader)
    picker = at.selectbox(key=cell_key(run.run_id))
    assert len(picker.options) == 4  # every cell of a 2×2 matrix
    _, counts = confusion_shown(at)
    biggest_mistake = max([(counts[0, 1], ("no", "yes")), (counts[1, 0], ("yes", "no"))])[1]
    assert picker.value == explain.cell_key(*biggest_mistake)  # the largest mistake first

    picker.set_value(explain.cell_key("no", "yes")).run()
    assert not at.exception
    shown = cell_table(at)
    expected = predictions[(predictions["true"] == "no") & (predictions["predicted"] == "yes")]
    assert sorted(shown["row"]) == sorted(expected["row"]) and len(shown) == counts[0, 1]
    assert set(shown["true"]) <= {"no"} and set(shown["predicted"]) <= {"yes"}
    assert {"tenure", "contract"} <= set(shown.columns)  # the rows' own inputs, kept with the run
    kept = explain.read_inputs(run_dir).set_index("row")
    np.testing.assert_allclose(shown["tenure"].to_numpy(float), kept.loc[shown["row"], "tenure"].to_numpy(float))
    assert "validation rows of class “no” the model called “yes”" in texts(at.caption)

    at.slider(key=threshold_key(run.run_id)).set_value(0.2).run()  # more rows called "yes"
    assert not at.exception
    _, lowered = confusion_shown(at)
    shown = cell_table(at)
    p_yes = predictions.set_index("row")["proba: yes"]
    expected = predictions[(predictions["true"] == "no") & (predictions["proba: yes"] >= 0.2)]
    assert sorted(shown["row"]) == sorted(expected["row"]) and len(shown) == lowered[0, 1] > counts[0, 1]
    assert (p_yes.loc[shown["row"]] >= 0.2).all()
    assert at.selectbox(key=cell_key(run.run_id)).value == explain.cell_key("no", "yes")  # the pick stays


def test_a_correct_cell_of_a_three_class_run(closer_runs):
    run = read_run(closer_runs["iris"])
    at = evaluate(closer_runs["iris"])
    at.selectbox(key=cell_key(run.run_id)).set_value(explain.cell_key("setosa", "setosa")).run()
    assert not at.exception
    shown = cell_table(at)
    _, counts = confusion_shown(at)
    assert len(shown) == counts[0, 0] and set(shown["true"]) == set(shown["predicted"]) == {"setosa"}
    assert np.all(np.diff(shown["confidence"].to_numpy()) <= 0)  # most confident first


def test_an_image_cell_shows_its_thumbnails(closer_runs):
    run = read_run(closer_runs["shapes"])
    at = evaluate(closer_runs["shapes"])
    picker = at.selectbox(key=cell_key(run.run_id))
    key = picker.value
    true, said = explain.split_cell_key(key)
    rows = explain.cell_rows(run.predictions, run.classes, true, said)
    assert len(rows) > 0  # the default is a cell with rows in it
    grids = [f for f in figures(at) if any(t["type"] == "image" for t in f["data"])]
    assert len(grids) == 2  # the cell's thumbnails, then the most confident mistakes
    titles = [a["text"] for a in grids[0]["layout"]["annotations"]]
    assert len(titles) == min(closer_view.SHOWN_IMAGES, len(rows))
    shown = rows[rows["row"].isin(explain.read_thumbnails(closer_runs["shapes"]).rows)].head(len(titles))
    assert [t.split("<br>")[0] for t in titles] == [f"{c:.0%}" for c in shown["confidence"]]  # most confident first
    assert f"images of class “{true}” the model called “{said}”" in texts(at.caption)


def test_a_click_on_the_matrix_names_its_cell():
    """The chart's selection state (what a click leaves) maps to the picker's cell."""
    click = {"selection": {"points": [{"x": "yes", "y": "no", "customdata": ["no", "yes"], "point_index": 1}]}}
    assert closer_view.clicked_cell(click) == explain.cell_key("no", "yes")
    assert closer_view.clicked_cell({"selection": {"points": [{"x": "b", "y": "a"}]}}) == explain.cell_key("a", "b")
    assert closer_view.clicked_cell({"selection": {"points": []}}) is None
    assert closer_view.clicked_cell(None) is None


# ---------------------------------------------------------------- dependence and one row explained


def test_dependence_and_row_explanation_on_a_table(closer_runs):
    run = read_run(closer_runs["churn"])
    at = evaluate(closer_runs["churn"])
    column = at.selectbox(key="evaluate_dependence")
    sweepable = [i.feature for i in run.importances if i.feature not in ("signup", "customer_id") and i.importance > 0]
    assert column.value == sweepable[0]  # the most important column that can be swept
    assert "signup" not in column.options  # a date has no grid to sweep
    assert "The predicted chance of “yes”" in texts(at.caption)
    fig = figure_titled(at, "How the prediction moves with")
    assert {t["type"] for t in fig["data"]} in ({"scatter"}, {"bar", "box"})  # a line and ICE, or bars and dots
    other = next(o for o in column.options if o != column.value)
    column.set_value(other).run()
    assert not at.exception
    assert figure_titled(at, "How the prediction moves with")["layout"]["title"]["text"].endswith(other)

    picker = at.selectbox(key="evaluate_explain_row")
    worst = int(run.worst["row"].iloc[0])
    assert picker.value == worst  # the worst error first
    assert f"The model puts the chance of “yes” for row {worst:,} at " in texts(at.caption)
    bars = figure_titled(at, f"Why row {worst:,} gets its prediction")["data"][0]
    assert len(bars["y"]) == len(run.data.feature_columns)


def test_a_run_saved_without_inputs_still_drills_down(closer_runs, tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    copy = Path(shutil.copytree(closer_runs["churn"], folder / closer_runs["churn"].name))
    (copy / explain.VALID_INPUTS_FILE).unlink()
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    at = evaluate(copy)
    assert "train it again" in texts(at.info)
    assert "kept no inputs of its validation rows" in texts(at.caption)
    assert len(cell_table(at)) > 0  # the cell's rows are still listed, from the predictions
    assert not any(f["layout"].get("title", {}).get("text", "").startswith("How the prediction")
                   for f in figures(at))


def test_predict_explains_one_new_row(closer_runs):
    new = churn_like(n=40, seed=5).drop(columns="churned")
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["run_dir"] = str(closer_runs["churn"])
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("new.csv", csv_bytes(new), "text/csv")).run()
    assert not at.exception
    assert "Why this prediction?" in texts(at.subheader)
    at.number_input(key="predict_explain_row").set_value(3).run()
    assert not at.exception
    chance = at.dataframe[0].value["probability of yes"].iloc[2]
    assert f"The model puts the chance of “yes” for row 3 at {explain.percent(chance)};" in texts(at.caption)
    assert figure_titled(at, "Why row 3 gets its prediction")
