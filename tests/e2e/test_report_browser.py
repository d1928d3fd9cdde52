"""The offline report in a real browser, with the network off: opened from disk (``file://``), every
chart it says it holds is drawn by the embedded plotly.js, nothing is requested from anywhere else,
and the console stays clean. The report as a user gets it, downloaded from the Evaluate page after
training in the browser, is checked with this file's ``assert_draws_offline`` in test_takeaway_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.export.report import CHARTS_META, write_report
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from tests.app.test_pages import tiny_shapes
from tests.core.helpers import churn_like

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """A yes/no table run's report (a hostile column name among its columns) and an image run's."""
    folder = tmp_path_factory.mktemp("offline")
    churn_like(n=240).rename(columns={"charges": "<script>alert(1)</script>"}).to_csv(folder / "churn.csv",
                                                                                      index=False)
    runs_dir = folder / "runs"
    specs = {"table": JobSpec(source=str(folder / "churn.csv"), target="churned", runs_dir=str(runs_dir),
                              overrides=Overrides(model="linear")),
             "images": JobSpec(source=str(tiny_shapes(folder)), runs_dir=str(runs_dir),
                               overrides=Overrides(max_epochs=1))}
    out = {}
    for name, spec in specs.items():
        out[name] = folder / f"{name}.html"
        write_report(run_job(spec), out[name], runs_dir)
    return out


@pytest.mark.parametrize("kind", ["table", "images"])
def test_the_report_draws_every_chart_offline(browser, reports, kind):
    assert_draws_offline(browser, reports[kind], pictures_expected=kind == "images")


def assert_draws_offline(browser, path: Path, pictures_expected: bool) -> None:
    """Open ``path`` from disk with the network off: every promised chart drawn, no request
    beyond the file, no console error, no dialog."""
    promised = int(re.search(rf'<meta name="{CHARTS_META}" content="(\d+)">', path.read_text(encoding="utf-8"))[1])
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_offline(True)
    elsewhere: list[str] = []

    def refuse(route):
        if not route.request.url.startswith("file://"):
            elsewhere.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda err: errors.append(str(err)))
    dialogs: list[str] = []  # an escaped name must never run: no alert() may open
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        tab.goto(path.as_uri())
        tab.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {promised}",
                              timeout=30_000)
        drawn = tab.locator(".js-plotly-plot").count()
        pictures = tab.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        all_pictures = tab.evaluate("document.images.length")
    finally:
        context.close()
    assert promised >= 4 and drawn == promised
    assert pictures == all_pictures and (all_pictures > 0) == pictures_expected
    assert dialogs == []
    assert elsewhere == [], f"the report asked the network for {elsewhere}"
    assert errors == [], errors
