"""core.explain: partial dependence on planted effects, one row's attribution, the rows of a
confusion cell (at a binary threshold), and the validation inputs / thumbnails a run keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import explain
from core.evaluation import Confusion, at_threshold, confusion
from core.models.tabular import AveragedModels
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import load_manifest, read_run
from core.runs import load_model
from tests.core.helpers import churn_like, regression_table


class Planted:
    """A model with no ``fit`` (like the contest's blend): P(yes) = sigmoid(2·x1 − x2 + [g = "a"])."""

    classes_ = np.array(["no", "yes"], dtype=object)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        z = 2 * X["x1"].to_numpy(float) - X["x2"].to_numpy(float) + (X["g"] == "a").to_numpy(float)
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])


class Additive:
    """A regression model that adds up its columns' effects: 3·x1 − 2·x2 + 5·[g = "a"]."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return 3 * X["x1"].to_numpy(float) - 2 * X["x2"].to_numpy(float) + 5 * (X["g"] == "a").to_numpy(float)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 600
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})


BINARY = explain.output_for("binary", ("no", "yes"), "churned")
VALUE = explain.output_for("regression", (), "price")


# ---------------------------------------------------------------- partial dependence


def test_dependence_rises_with_a_planted_monotone_effect_and_falls_with_a_negative_one(frame):
    up = explain.partial_dependence(Planted(), frame, "x1", BINARY)
    assert len(up.grid) == explain.GRID_POINTS and np.all(np.diff(up.grid) > 0)
    assert np.all(np.diff(up.average) > 0)  # the planted effect of x1 is increasing everywhere
    assert up.average[-1] - up.average[0] > 0.5
    assert "rises" in explain.dependence_reading(up) and "as x1 rises" in explain.dependence_reading(up)
    down = explain.partial_dependence(Planted(), frame, "x2", BINARY)
    assert np.all(np.diff(down.average) < 0)
    assert "as x2 falls" in explain.dependence_reading(down)


def test_dependence_average_is_the_mean_of_the_rows_set_to_each_value(frame):
    dep = explain.partial_dependence(Planted(), frame, "x1", BINARY, max_rows=50, ice_rows=50, seed=3)
    assert dep.n_rows == 50 and len(dep.ice_rows) == 50  # every sampled row drawn: we know which rows they are
    # Recompute one grid point by hand on the same sampled rows.
    copy = frame.copy()
    copy["x1"] = dep.grid[4]
    everyone = Planted().predict_proba(copy)[:, 1]
    np.testing.assert_allclose(dep.ice[:, 4], everyone[dep.ice_rows - 1])
    assert dep.average[4] == pytest.approx(everyone[dep.ice_rows - 1].mean())
    np.testing.assert_allclose(dep.average, dep.ice.mean(axis=0))


def test_ice_lines_are_the_requested_number_of_distinct_rows(frame):
    rows = np.arange(1001, 1001 + len(frame))  # the file's row numbers of these validation rows
    dep = explain.partial_dependence(Planted(), frame, "x1", BINARY, ice_rows=25, rows=rows)
    assert dep.ice.shape == (25, len(dep.grid))
    assert len(set(dep.ice_rows)) == 25 and set(dep.ice_rows) <= set(rows)
    assert np.all(np.diff(dep.ice, axis=1) > 0)  # every single row rises too: no interaction planted
    few = explain.partial_dependence(Planted(), frame.head(7), "x1", BINARY, ice_rows=25)
    assert few.ice.shape[0] == 7


def test_categorical_dependence_names_the_highest_and_lowest_category(frame):
    dep = explain.partial_dependence(Planted(), frame, "g", BINARY, kind="categorical")
    assert set(dep.grid) == {"a", "b", "c"}
    best = dep.grid[int(np.argmax(dep.average))]
    assert best == "a"
    reading = explain.dependence_reading(dep)
    assert "highest when g is “a”" in reading


def test_a_column_the_model_ignores_reads_as_barely_moving(frame):
    frame = frame.assign(noise=np.random.default_rng(0).normal(size=len(frame)))
    dep = explain.partial_dependence(Planted(), frame, "noise", BINARY)
    assert np.ptp(dep.average) == pytest.approx(0, abs=1e-12)
    assert "barely moves" in explain.dependence_reading(dep)


def test_a_step_reads_as_a_threshold():
    X = pd.DataFrame({"tenure": np.arange(1, 73, dtype=float), "x2": 0.0, "g": "b", "x1": 0.0})

    class Step:
        classes_ = np.array(["no", "yes"], dtype=object)

        def predict_proba(self, X):
            p = np.where(X["tenure"].to_numpy() < 6, 0.41, 0.12)
            return np.column_stack([1 - p, p])

    reading = explain.dependence_reading(explain.partial_dependence(Step(), X, "tenure", BINARY))
    assert reading.startswith("The predicted chance of “yes” rises from 12% to 41% as tenure falls below")


def test_dependence_through_a_blend_of_pipelines_follows_the_planted_effect():
    data = regression_table(n=400)
    X = data.drop(columns="y")
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    def pipeline():
        return make_pipeline(make_column_transformer((OneHotEncoder(), ["group"]), remainder="passthrough"),
                             LinearRegression()).fit(X, data["y"])

    blend = AveragedModels([pipeline(), pipeline()])  # no fit of its own: sklearn's partial_dependence refuses it
    dep = explain.partial_dependence(blend, X, "x1", explain.output_for("regression", (), "y"))
    slope = np.polyfit(dep.grid.astype(float), dep.average, 1)[0]
    assert slope == pytest.approx(3, abs=0.2)  # y = 3·x1 − 2·x2 + …


def test_integer_columns_are_swept_on_observed_integers():
    X = pd.DataFrame({"calls": np.tile(np.arange(10), 30).astype(np.int64)})
    seen = []

    class Spy:
        def predict(self, X):
            seen.append(X["calls"].dtype)
            return X["calls"].to_numpy(float)

    dep = explain.partial_dependence(Spy(), X, "calls", VALUE)
    assert list(dep.grid) == list(range(10)) and seen == [np.int64]
    np.testing.assert_allclose(dep.average, np.arange(10))


def test_sweepable_ranks_by_importance_and_skips_text_and_dates():
    columns = [("age", "numeric"), ("note", "text"), ("plan", "categorical"), ("signup", "datetime"),
               ("calls", "numeric")]
    importances = [("note", 0.5), ("calls", 0.3), ("plan", 0.1), ("age", -0.01)]
    assert explain.sweepable(columns, importances) == ["calls", "plan", "age"]


# ---------------------------------------------------------------- one row explained


def test_row_pushes_add_up_to_the_gap_from_typical_rows_for_an_additive_model(frame):
    row = pd.DataFrame({"x1": [2.0], "x2": [-1.0], "g": ["a"]})
    expl = explain.explain_row(Additive(), row, frame, VALUE, name="row 7", n_background=80, seed=1)
    assert expl.n_background == 80
    assert sum(p.change for p in expl.pushes) == pytest.approx(expl.prediction - expl.typical)
    assert expl.prediction == pytest.approx(3 * 2 + 2 + 5)
    by_column = {p.column: p for p in expl.pushes}
    assert by_column["x1"].change > 0 and by_column["x2"].change > 0 and by_column["g"].change > 0
    # each push is its planted coefficient times the gap from the typical rows' values
    picked = frame.iloc[np.sort(np.random.default_rng(1).choice(len(frame), 80, replace=False))]
    assert by_column["x1"].change == pytest.approx(3 * (2.0 - picked["x1"].mean()))
    assert by_column["g"].change == pytest.approx(5 * (1 - (picked["g"] == "a").mean()))
    assert [p.column for p in expl.pushes] == sorted(by_column, key=lambda c: -abs(by_column[c].change))
    assert by_column["g"].value == "a" and by_column["x1"].value == "2"


def test_a_value_below_typical_pushes_down(frame):
    row = pd.DataFrame({"x1": [-2.5], "x2": [0.0], "g": ["b"]})
    expl = explain.explain_row(Planted(), row, frame, BINARY)
    pushes = {p.column: p.change for p in expl.pushes}
    assert pushes["x1"] < 0 and expl.pushes[0].column == "x1"
    reading = explain.row_reading(expl)
    assert reading.startswith("The model puts the chance of “yes” for this row at ") and "x1 = -2.5 lowers it by" in reading


def test_explain_row_refuses_more_than_one_row(frame):
    with pytest.raises(ValueError, match="one row"):
        explain.explain_row(Additive(), frame.head(2), frame, VALUE)


# ---------------------------------------------------------------- the rows behind a cell


@pytest.fixture(scope="module")
def binary_predictions() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 300
    p_yes = rng.random(n)
    truth = np.where(rng.random(n) < p_yes, "yes", "no")
    return pd.DataFrame({"row": np.arange(10, 10 + n), "true": truth, "predicted": np.where(p_yes >= 0.5, "yes", "no"),
                         "proba: no": 1 - p_yes, "proba: yes": p_yes})


def test_cell_rows_are_exactly_the_rows_of_that_cell(binary_predictions):
    classes = ("no", "yes")
    matrix = confusion(binary_predictions, classes)
    for i, true in enumerate(classes):
        for j, said in enumerate(classes):
            rows = explain.cell_rows(binary_predictions, classes, true, said)
            expected = binary_predictions[(binary_predictions["true"] == true) & (binary_predictions["predicted"] == said)]
            assert sorted(rows["row"]) == sorted(expected["row"]) and len(rows) == matrix.matrix[i, j]
            assert (rows["true"] == true).all() and (rows["predicted"] == said).all()
            assert np.all(np.diff(rows["confidence"]) <= 0)  # most confident first
            np.testing.assert_allclose(rows["confidence"], expected.set_index("row").loc[rows["row"],
                                                                                         f"proba: {said}"])


def test_cell_rows_follow_a_binary_threshold(binary_predictions):
    classes = ("no", "yes")
    point = at_threshold(binary_predictions, classes, 0.2)
    flagged = explain.cell_rows(binary_predictions, classes, "no", "yes", threshold=0.2)
    assert len(flagged) == point.confusion.matrix[0, 1]
    assert (binary_predictions.set_index("row").loc[flagged["row"], "proba: yes"] >= 0.2).all()
    assert len(flagged) > len(explain.cell_rows(binary_predictions, classes, "no", "yes"))  # more called "yes"
    missed = explain.cell_rows(binary_predictions, classes, "yes", "no", threshold=0.2)
    assert len(missed) == point.confusion.matrix[1, 0]


def test_cells_offer_the_biggest_mistake_first():
    conf = Confusion(("a", "b", "c"), np.array([[10, 0, 3], [7, 9, 0], [1, 0, 12]]))
    order = [(c.true, c.predicted, c.count) for c in explain.cells(conf)]
    assert order[0] == ("b", "a", 7) and order[1] == ("a", "c", 3)
    assert [c for c in order if c[2] == 0] == order[-3:]  # empty cells last
    key = explain.cells(conf)[0].key
    assert explain.split_cell_key(key) == ("b", "a")


def test_with_inputs_keeps_rows_outside_the_sample_blank():
    rows = pd.DataFrame({"row": [3, 5], "true": ["a", "a"], "predicted": ["b", "b"], "confidence": [0.9, 0.8]})
    kept = pd.DataFrame({"row": [5, 9], "x": [1.5, 2.5]})
    out = explain.with_inputs(rows, kept)
    assert list(out["row"]) == [3, 5] and np.isnan(out["x"].iloc[0]) and out["x"].iloc[1] == 1.5


# ---------------------------------------------------------------- what the run keeps


def test_input_sample_is_bounded_and_numbers_rows_like_the_predictions():
    X = pd.DataFrame({"x": np.arange(100.0)}, index=np.arange(100) * 2)  # validation rows: every other row
    out = explain.input_sample(X, max_rows=30, seed=0)
    assert len(out) == 30 and list(out.columns) == ["row", "x"]
    assert np.all(np.diff(out["row"]) > 0)  # file order
    np.testing.assert_array_equal(out["row"], out["x"].astype(int) * 2 + 1)  # 1-based numbers of those rows
    assert len(explain.input_sample(X)) == 100


def test_a_saved_table_run_keeps_inputs_that_reproduce_its_predictions(tmp_path):
    churn_like(n=300).to_csv(tmp_path / "churn.csv", index=False)
    run_dir = run_job(JobSpec(source=str(tmp_path / "churn.csv"), target="churned", runs_dir=str(tmp_path / "runs"),
                              overrides=Overrides(model="linear")))
    assert explain.VALID_INPUTS_FILE in load_manifest(run_dir)["files"]
    run = read_run(run_dir)
    kept = explain.read_inputs(run_dir)
    assert sorted(kept["row"]) == sorted(run.predictions["row"])  # 60 validation rows: all kept
    model, _ = load_model(run_dir, tmp_path / "runs")
    again = explain.output_for(run.task, run.classes, run.data.target).values(model, kept[list(run.data.feature_columns)])
    saved = run.predictions.set_index("row").loc[kept["row"], "proba: yes"].to_numpy()
    np.testing.assert_allclose(again, saved, atol=1e-9)


def test_thumbnails_cover_every_cell_within_the_caps():
    rng = np.random.default_rng(0)
    n = 90
    images = rng.integers(0, 255, (n, 3, 128, 128), dtype=np.uint8)
    truth = np.array(["a", "b", "c"] * 30)
    said = np.where(np.arange(n) % 10 == 0, "a", truth)
    predictions = pd.DataFrame({"row": np.arange(500, 500 + n), "true": truth, "predicted": said})
    files = [f"folder/img{i}.png" for i in range(n)]
    arrays = explain.thumbnail_sample(images, predictions, files, per_cell=5, max_total=100, size=32)
    assert arrays["images"].shape[1:] == (3, 32, 32) and arrays["images"].dtype == np.uint8
    kept = predictions.set_index("row").loc[arrays["row"]]
    counts = kept.groupby(["true", "predicted"]).size()
    cells = predictions.groupby(["true", "predicted"]).size()
    assert set(counts.index) == set(cells.index)  # every cell has pictures
    assert all(counts[c] == min(5, cells[c]) for c in cells.index)
    positions = arrays["row"] - 500
    assert list(arrays["files"]) == [f"img{i}.png" for i in positions]
    capped = explain.thumbnail_sample(images, predictions, per_cell=50, max_total=12)
    assert len(capped["images"]) <= 12


def test_thumbnails_keep_the_picture():
    image = np.zeros((1, 64, 64), dtype=np.uint8)
    image[:, :32] = 255  # top half white
    small = explain._shrink(image, 16)
    assert small.shape == (1, 16, 16)
    assert small[0, :7].min() > 200 and small[0, 9:].max() < 50


def test_readings_word_values_for_people(frame):
    assert [explain.percent(v) for v in (0.001, 0.084, 0.5, 0.9996)] == ["under 1%", "8%", "50%", "over 99%"]
    row = pd.DataFrame({"x1": [1.0], "x2": [0.0], "g": ["a"]})
    reading = explain.row_reading(explain.explain_row(Additive(), row, frame, VALUE, name="row 12"))
    assert reading.startswith("The model predicts price 8 for row 12; a typical row gets ")
    assert "g = a raises it by" in reading and "x1 = 1 raises it by" in reading


@pytest.mark.parametrize(("effect", "words"), [
    (lambda X: 3 * X["x1"] + X["x2"], "move alike"),  # additive: every row moves as the average
    (lambda X: X["x1"] * (1.5 + np.sign(X["x2"])), "some far more than others"),  # same way, different sizes
    (lambda X: X["x1"] * (np.sign(X["x2"]) + 0.3), "go different ways"),  # rises for some rows, falls for others
])
def test_the_reading_says_how_single_rows_follow_the_average(frame, effect, words):
    class Model:
        def predict(self, X):
            return np.asarray(effect(X), dtype=float)

    reading = explain.dependence_reading(explain.partial_dependence(Model(), frame, "x1", VALUE))
    assert words in reading
