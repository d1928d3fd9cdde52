"""A click on a confusion-matrix cell in a real browser picks that cell for Evaluate's drill-down
(AppTest cannot drive plotly's selection events; tests/app/test_closer.py covers the picker)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.screenshot import wait_for_app
from tests.e2e.test_browser import chart_titled, open_evaluate, open_page, outcome, start_training

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PICKER = "Cell of the confusion matrix (true class → predicted class)"


def expect_picked(page, cell: str) -> None:
    """The drill-down's picker shows ``cell`` ("true a → predicted b")."""
    expect(page.get_by_role("combobox", name=PICKER)).to_have_value(re.compile("^" + re.escape(cell)))


def test_clicking_a_cell_shows_its_rows(page):
    page.get_by_role("tab", name="Try a sample").click()
    page.get_by_role("button", name="iris.csv").click()
    page.get_by_text("Ready: 4 columns will be used to predict 'species'.").wait_for()
    wait_for_app(page)
    open_page(page, "Train")
    start_training(page)
    expect(outcome(page)).to_have_text(re.compile(r"^Finished\. Model: "))
    open_evaluate(page)

    matrix = chart_titled(page, "Confusion matrix")
    matrix.wait_for()
    matrix.scroll_into_view_if_needed()
    cells = matrix.locator(".scatterlayer .point")  # one clear marker over each of the 3 × 3 cells
    expect(cells).to_have_count(9)
    box = cells.nth(0).bounding_box()  # true setosa → predicted setosa
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for_app(page)
    expect_picked(page, "true setosa → predicted setosa")
    expect(page.get_by_text(re.compile(r"validation rows of class “setosa” the model called “setosa”"))).to_be_visible()

    # Two different cells in turn: whatever the picker started on, only working clicks show both.
    box = cells.nth(4).bounding_box()  # true versicolor → predicted versicolor
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for_app(page)
    expect_picked(page, "true versicolor → predicted versicolor")
