"""The whole path in a real browser: upload → target → train live → evaluate (ARCHITECTURE.md, "The flow").
A table's path, on to what a user takes away from Evaluate, is in test_takeaway_browser.py.

Drives headless Chromium (``/usr/bin/chromium``) with Playwright against ``streamlit run app.py``
(see conftest.py). Training runs in the app's real worker processes, so these take a minute.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.screenshot import wait_for_app

# No Chromium: the ``server`` and ``browser`` fixtures (conftest.py) skip, or fail when CI=true.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"
TRAIN_TIMEOUT_MS = 300_000
#: Stop → saved run: a step ends, the model is evaluated and saved (a hard kill comes after 10 s)
STOP_TIMEOUT_MS = 60_000
CHART = '[data-testid="stPlotlyChart"]'


def upload(page, label: str, path: Path) -> None:
    """Put a file into the real ``<input type=file>`` of the uploader labelled ``label``."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
    uploader.locator('input[type="file"]').set_input_files(str(path))


def open_page(page, name: str) -> None:
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, level=1).wait_for()
    wait_for_app(page)


def chart_titled(page, title: str):
    return page.locator(CHART).filter(has=page.locator(".gtitle", has_text=re.compile(title)))


def start_training(page):
    """On the Train page: start, wait for the live view (a loss chart, or an automatic run's contest
    leaderboard), or for the end of a run quicker than a poll; returns the live panel's Stop button."""
    page.get_by_role("button", name="Start training").click()
    live = page.locator(CHART).or_(page.locator('[data-testid="stDataFrame"]')) \
        .or_(page.get_by_role("link", name="Open in Evaluate"))
    live.first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    return page.locator('[data-testid="stMain"]').get_by_role("button", name=re.compile(r"Stop$"))


def outcome(page, timeout_ms: int = TRAIN_TIMEOUT_MS):
    """The Train page's verdict once the job has ended: the success line above 'Open in Evaluate'
    (a job that failed, or was killed for not stopping, shows an error instead and fails here)."""
    error = page.get_by_test_id("stAlertContentError")
    page.get_by_role("link", name="Open in Evaluate").or_(error).first.wait_for(timeout=timeout_ms)
    assert error.count() == 0, f"training ended in an error: {error.all_inner_texts()}"
    return page.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"^(Finished|Stopped by you)"))


def open_evaluate(page) -> None:
    page.get_by_role("link", name="Open in Evaluate").click()
    page.get_by_role("heading", name="Evaluate", level=1).wait_for()
    wait_for_app(page)


def set_setting(page, label: str, value: int) -> None:
    """Open the Train page's Settings (if closed) and type ``value`` into the number field ``label``."""
    field = page.get_by_label(label, exact=True)
    if not field.is_visible():
        page.locator("summary", has_text="Settings").click()
    field.fill(str(value))
    field.press("Enter")
    wait_for_app(page)


def set_most_epochs(page, epochs: int) -> None:
    set_setting(page, "Most epochs / boosting rounds / trees (0 = automatic)", epochs)


def test_changing_a_column_role_in_the_grid(page):
    page.get_by_role("tab", name="Try a sample").click()
    page.get_by_role("button", name="iris.csv").click()
    page.get_by_text("Ready: 4 columns will be used to predict 'species'.").wait_for()
    wait_for_app(page)
    grid = page.locator('[data-testid="stDataFrame"]').last  # the roles editor: a canvas grid
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    row_height, use_as_x = 35, 200  # header + rows of 35 px; "use as" is the second column
    page.mouse.dblclick(box["x"] + use_as_x, box["y"] + row_height * 4 + row_height / 2)  # petal_width
    page.get_by_role("option", name="ignore").click()
    page.get_by_text("Ready: 3 columns will be used to predict 'species'.").wait_for()
    assert page.get_by_text("Not used: 'petal_width' (ignored by you).").is_visible()


def test_stop_during_training_keeps_the_best_model_so_far(page):
    page.get_by_role("tab", name="Try a sample").click()
    page.get_by_role("button", name="shapes.zip").click()
    page.get_by_role("heading", name="Loaded: shapes.zip").wait_for(timeout=60_000)
    wait_for_app(page)
    open_page(page, "Train")
    # The CNN plans 30 epochs on shapes and may stop early only after the warm-up quarter plus its
    # patience (13 epochs, about 9 s each on two busy cores): after the first epoch it is still
    # training for a long while, so Stop is on screen and only a working Stop ends the run in time.
    stop = start_training(page)
    chart_titled(page, "Loss while training").wait_for(timeout=TRAIN_TIMEOUT_MS)  # epoch 1 is done
    expect(stop).to_have_count(1)
    expect(stop).to_be_enabled()
    stop.click()

    # Without a working Stop this waits in vain (or reads "Finished."): either way the test fails.
    verdict = outcome(page, timeout_ms=STOP_TIMEOUT_MS)
    expect(verdict).to_have_text(re.compile(r"^Stopped by you: the best model so far was saved\. Model: CNN"))
    expect(stop).to_have_count(0)  # the live panel is gone: the job ended
    expect(page.get_by_test_id("stSidebar").get_by_text("Job: stopped")).to_be_visible(timeout=10_000)

    open_evaluate(page)
    expect(page.get_by_test_id("stAlertContentWarning").filter(
        has_text="You stopped this run before it finished")).to_be_visible()
    chart_titled(page, "Confusion matrix").wait_for()


def test_upload_image_zip_train_a_few_epochs_and_evaluate(page):
    page.get_by_role("tab", name="Upload images").click()
    upload(page, "A zip of class folders", SAMPLES / "digits.zip")
    page.get_by_role("heading", name="Loaded: digits.zip").wait_for(timeout=60_000)
    wait_for_app(page)
    assert page.get_by_text("1,797 images").is_visible()

    open_page(page, "Train")
    set_most_epochs(page, 1)
    start_training(page)
    expect(outcome(page)).to_have_text(re.compile(r"^Finished\. Model: CNN"))
    open_evaluate(page)

    chart_titled(page, "Confusion matrix").wait_for()
    # the multiclass headline scores; a threshold (and its tiles) is for two classes only
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    assert [label.strip() for label in labels] == ["Macro F1", "Balanced accuracy", "Accuracy", "Log loss"]
