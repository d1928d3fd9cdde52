"""The "look closer" figures (core.plots): what a reader sees must match the result objects."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import explain, plots
from core.evaluation import Confusion


def test_clickable_cells_put_one_marker_on_each_cell_and_outline_the_picked_one():
    conf = Confusion(("a", "b", "c"), np.array([[5, 1, 0], [2, 6, 0], [0, 0, 7]]))
    fig = plots.clickable_cells(plots.confusion_matrix(conf), conf, picked=("b", "a"))
    heatmap, markers = fig.data
    assert heatmap.type == "heatmap" and markers.type == "scatter"
    cells = [tuple(c) for c in markers.customdata]
    assert len(cells) == 9 and set(cells) == {(t, p) for t in conf.labels for p in conf.labels}
    assert [(markers.y[i], markers.x[i]) for i in range(9)] == cells  # y is the true class, x the prediction
    assert list(markers.selectedpoints) == [cells.index(("b", "a"))]
    assert fig.layout.clickmode == "event+select"
    assert plots.clickable_cells(plots.confusion_matrix(conf), conf).data[1].selectedpoints is None


def test_partial_dependence_figure_draws_the_average_and_every_ice_line():
    X = pd.DataFrame({"x": np.linspace(0, 1, 50)})

    class Line:
        def predict(self, X):
            return 2 * X["x"].to_numpy()

    dep = explain.partial_dependence(Line(), X, "x", explain.output_for("regression", (), "y"), ice_rows=7)
    ice, average = plots.partial_dependence(dep).data
    assert np.isnan(np.asarray(ice.y, dtype=float)).sum() == 7  # seven lines, one gap after each
    np.testing.assert_allclose(np.asarray(average.y, dtype=float), dep.average)
    assert average.name == "average of 50 rows"


def test_row_pushes_colour_by_direction_largest_on_top():
    output = explain.output_for("binary", ("no", "yes"), "churned")
    pushes = (explain.Push("tenure", "2", "30", 0.25), explain.Push("plan", "yearly", "monthly", -0.1),
              explain.Push("region", "north", "south", 0.01))
    expl = explain.RowExplanation("row 4", 0.7, 0.3, pushes, 50, output)
    bars = plots.row_pushes(expl).data[0]
    assert list(bars.y) == ["region = north", "plan = yearly", "tenure = 2"]  # plotly draws the last on top
    np.testing.assert_allclose(np.asarray(bars.x, dtype=float), [1.0, -10.0, 25.0])  # percentage points
    assert list(bars.marker.color) == ["#d62728", "#1f77b4", "#d62728"]


def test_thumbnail_grid_keeps_a_few_pictures_small():
    images = np.zeros((3, 3, 16, 16), dtype=np.uint8)
    fig = plots.thumbnail_grid(images, ["a", "b", "c"], columns=8)
    assert sum(t.type == "image" for t in fig.data) == 3
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "c"]
    assert fig.layout.height == plots.thumbnail_grid(np.zeros((8, 3, 16, 16), dtype=np.uint8), list("abcdefgh")).layout.height
