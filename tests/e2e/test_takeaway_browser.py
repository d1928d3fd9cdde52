"""What a user takes away, in a real browser (issue 13): upload a yes/no table, train it live, read
Evaluate, then download from it the model bundle, the offline report and the run's code, and check
each file does what it promises outside the app.

- the bundle, unzipped into a fresh folder, answers as the app does (its README's snippet in a clean
  interpreter against ``core.predict`` on the run's folder), at the run's threshold;
- the report opens from disk with the network off and draws every chart it declares;
- the script, run by an isolated interpreter in a fresh folder, prints the run's validation metrics.

One training for all of it (the helpers come from the bundle, report and code tests); it takes a
minute or two on two busy cores.
"""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from core.datasets import load_table
from core.predict import predict_table, prediction_column
from core.run_record import load_manifest, read_run
from tests.core.test_bundle import _assert_same_answers, _run_snippet, _unpack
from tests.core.test_code import run_script
from tests.e2e.screenshot import select_option, wait_for_app
from tests.e2e.test_browser import (
    SAMPLES,
    chart_titled,
    open_evaluate,
    open_page,
    outcome,
    set_setting,
    start_training,
    upload,
)
from tests.e2e.test_report_browser import assert_draws_offline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = SAMPLES / "churn.csv"
#: The contest's budget (seconds): enough for its simple candidates, so the test stays quick.
TIME_BUDGET = 8
#: What each family's bundle holds besides manifest.json, requirements.txt and README.md.
MODEL_FILES = {"sklearn": {"model.joblib"}, "torch": {"model.pt", "model.json", "predict.py"}}
#: How close the script's metrics come to the run's: exact for scikit-learn, 0.01 for torch (issue 13).
TOLERANCE = {"sklearn": 1e-9, "torch": 0.01}


def test_train_in_the_browser_then_take_the_model_report_and_code_away(page, browser, server_home, tmp_path):
    upload(page, "A table", SAMPLE)
    page.get_by_role("heading", name="Loaded: churn.csv").wait_for()
    wait_for_app(page)
    select_option(page, "Target column", "churned")
    page.get_by_text("a yes/no question").wait_for()
    assert page.get_by_text("Ready: 10 columns will be used to predict 'churned'.").is_visible()

    open_page(page, "Train")
    set_setting(page, "Time budget in seconds (0 = automatic)", TIME_BUDGET)
    page.get_by_text(f"takes at most {TIME_BUDGET} s (you set)").wait_for()  # the plan took the budget
    start_training(page)
    expect(outcome(page)).to_have_text(re.compile(r"^Finished\. Model: "))
    open_evaluate(page)

    assert page.get_by_text("churn.csv", exact=False).first.is_visible()
    chart_titled(page, "Confusion matrix").wait_for()
    chart_titled(page, "Precision-recall").wait_for()
    # churn is imbalanced (18% yes): the page says so and leads with precision-recall
    assert page.get_by_test_id("stAlertContentInfo").filter(has_text="accuracy misleads here").is_visible()
    # four headline scores, then the operating point of a binary run at its threshold
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    assert [label.strip() for label in labels] == ["ROC AUC", "Average precision", "Balanced accuracy", "Accuracy",
                                                  "Precision", "Recall", "Called “yes”"]

    bundle_zip = download(page, page.get_by_role("button", name="Download the model (zip)"), tmp_path)
    run_id = bundle_zip.name.removesuffix("-model.zip")
    runs_dir = server_home / "runs"
    run = read_run(runs_dir / run_id, predictions=False)
    assert run.task == "binary" and run.threshold is not None and run.time_budget == TIME_BUDGET
    assert_bundle_answers_as_the_app(bundle_zip, run, runs_dir, tmp_path)

    page.get_by_role("button", name="Prepare the offline report").click()
    report = download(page, page.get_by_role("button", name="Download the report (HTML)"), tmp_path)
    assert report.name == f"{run_id}-report.html"
    assert "churn.csv" in report.read_text(encoding="utf-8")
    assert_draws_offline(browser, report, pictures_expected=False)

    page.locator("summary", has_text="Show me the code").click()
    script = download(page, page.get_by_role("button", name="Download the script"), tmp_path)
    assert_script_reproduces(script.read_text(encoding="utf-8"), run, tmp_path)


def download(page, button, folder):
    """Click ``button`` (waiting for it: some are built on demand) and save what it downloads."""
    button.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as started:
        button.click()
    saved = folder / started.value.suggested_filename
    started.value.save_as(saved)
    return saved


def assert_bundle_answers_as_the_app(path, run, runs_dir, tmp_path) -> None:
    """The zip's members; unzipped in a fresh folder, its README's snippet (a clean interpreter, no
    Trainboard on its path) gives the app's answers for rows of the sample, at the run's threshold."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        data = path.read_bytes()
    assert names[:3] == ["README.md", "manifest.json", "requirements.txt"]
    assert MODEL_FILES[run.model.family] <= set(names)
    bundle = _unpack(data, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == run.run_id
    assert manifest["threshold"]["value"] == pytest.approx(run.threshold.value)

    rows = pd.read_csv(SAMPLE).iloc[::17].drop(columns=["churned"])  # ~300 rows, spread over the file
    rows.to_csv(bundle / "new_rows.csv", index=False)
    ours = predict_table(run.path, load_table(bundle / "new_rows.csv"), runs_dir)
    _run_snippet(bundle)
    theirs = pd.read_csv(bundle / "predictions.csv")
    label = prediction_column(run)
    _assert_same_answers(ours, theirs, label, run.classes)
    no, yes = run.classes
    at_threshold = np.where(theirs[f"probability of {yes}"] >= run.threshold.value, yes, no)
    assert theirs[label].astype(str).tolist() == at_threshold.tolist()


def assert_script_reproduces(script: str, run, tmp_path) -> None:
    """Run by ``python -I`` in a fresh folder on the sample, the script's last line is the manifest's metrics."""
    assert "import core" not in script and "from core" not in script
    got = run_script(script, tmp_path / "code", str(SAMPLE))
    expected = load_manifest(run.path)["metrics"]
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == (None if value is None else pytest.approx(value, abs=TOLERANCE[run.model.family])), key
