"""The offline report (``core.export.report``): its sections, plotly.js embedded once, no address
outside the file, every user string escaped; for a contest table run with a threshold, a
regression run and an image run, and through ``python -m core report``."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core import cli, readings
from core.datasets import SAMPLE_DIR
from core.errors import RunError
from core.export.report import CHARTS_META, build_report, reading_html, write_report
from core.glossary import link
from core.importance import Importance
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import read_run
from tests.app.test_pages import tiny_shapes
from tests.core.helpers import churn_like

EVIL_COLUMN = "<script>alert(1)</script>"
EVIL_CLASS = "<b>yes</b>"
EVIL_SOURCE = "<img src=x onerror=alert(2)>.csv"


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parsed(page: str) -> _Tags:
    tags = _Tags()
    tags.feed(page)
    return tags


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A binary contest run on a table with a hostile column name, class label and file name; a
    regression run; an image run — all in one runs folder."""
    folder = tmp_path_factory.mktemp("report")
    frame = churn_like(n=240).rename(columns={"charges": EVIL_COLUMN})
    frame["churned"] = frame["churned"].replace({"yes": EVIL_CLASS})
    frame.to_csv(folder / "churn.csv", index=False)
    runs_dir = folder / "runs"
    specs = {
        "binary": JobSpec(source=str(folder / "churn.csv"), name=EVIL_SOURCE, target="churned",
                          runs_dir=str(runs_dir), overrides=Overrides(time_budget=12)),
        "regression": JobSpec(source=str(SAMPLE_DIR / "diabetes.csv"), runs_dir=str(runs_dir),
                              overrides=Overrides(model="hgb", max_epochs=20)),
        "images": JobSpec(source=str(tiny_shapes(folder)), runs_dir=str(runs_dir), overrides=Overrides(max_epochs=1)),
    }
    return {name: run_job(spec) for name, spec in specs.items()}


def curve_charts(run) -> int:
    """1 when the report draws the run's loss curve: a model fitted in one go has only its reading."""
    return int(len(run.history) > 1)


def headings(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def assert_self_contained(page: str) -> None:
    """plotly.js once, nothing that would reach the network, charts counted in the meta."""
    tags = parsed(page)
    assert page.count("* plotly.js v") == 1
    assert sum(len(s) > 1_000_000 for s in tags.scripts) == 1  # the library, inline
    for tag, attrs in tags.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        for name in ("src", "href", "action", "srcset"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, name, value)
            if tag == "img" and name == "src":
                assert value.startswith("data:image/png;base64,")
            if tag == "a" and name == "href":
                assert value.startswith("#term-")  # in-report glossary links only
        if tag == "script":
            assert "src" not in attrs
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page.split("<script>")[0])  # no remote CSS
    assert "glossary#" not in page  # the app's glossary page is not there offline
    meta = int(re.search(rf'<meta name="{CHARTS_META}" content="(\d+)">', page)[1])
    assert meta == page.count('class="plotly-graph-div"')
    assert f"This report holds {meta} chart" in page


def test_binary_contest_report_has_every_section_and_escapes_user_strings(runs):
    report = build_report(runs["binary"], runs["binary"].parent)
    page = report.html
    assert_self_contained(page)
    assert headings(page) == ["The data", "The plan and its reasons", "How the model was chosen: the contest",
                              "Scores against the baselines", "Training", "Where it errs", "Which columns matter",
                              "How the prediction moves with a column", "The worst errors", "Details",
                              "Words used in this report"]
    assert "<h3>What the checks found</h3>" in page and "looks like an ID" in page
    # the contest's leaderboard, the delivered model marked, and its reasons
    run = read_run(runs["binary"], predictions=False)
    assert page.count("← delivered") == 1 and all(r in page for r in map(_escaped, run.contest_reasons))
    # the binary threshold travels: the confusion matrix is drawn at it
    assert f"threshold {run.threshold.value:.2f}" in page
    # metric comparison, (the loss curve unless fitted in one go,) confusion, PR, ROC, importances and
    # three partial dependences
    assert report.charts == 8 + curve_charts(run)
    # hostile strings never reach the page as markup
    for evil in (EVIL_COLUMN, EVIL_CLASS, EVIL_SOURCE):
        assert evil not in page
        assert _escaped(evil) in page
    assert not any(t == "img" and a.get("onerror") for t, a in parsed(page).tags)
    assert not any("alert(1)" in s and "<script>" in s for s in parsed(page).scripts)
    # readings' glossary links point at the report's own glossary, which holds each of them
    linked = set(re.findall(r'href="#term-([a-z0-9-]+)"', page))
    defined = set(re.findall(r'<dt id="term-([a-z0-9-]+)">', page))
    assert {"recall", "precision", "permutation-importance", "partial-dependence"} <= linked == defined


def test_readings_markdown_becomes_safe_html_with_in_report_glossary_links():
    terms: dict[str, None] = {}
    text = readings.importances([Importance(EVIL_COLUMN, 0.4, 0.01), Importance("a`b*c_", 0.3, 0.01)], "binary")
    shown = reading_html(text, terms)
    assert f"<code>{_escaped(EVIL_COLUMN)}</code>" in shown and "<code>a`b*c_</code>" in shown
    assert '<a href="#term-log-loss">log loss</a>' in shown and list(terms) == ["log-loss"]
    quoted = reading_html(f"It takes {readings.quote(EVIL_CLASS)} for {readings.quote('[x](y)')}.")
    assert quoted == f"It takes “{_escaped(EVIL_CLASS)}” for “[x](y)”."  # no stray backslash, no link
    assert reading_html(f"see {link('recall')} and [elsewhere](https://example.com)") == \
        'see <a href="#term-recall">Recall</a> and [elsewhere](https://example.com)'  # only glossary links


def test_regression_report_draws_its_own_charts(runs):
    report = build_report(runs["regression"], runs["regression"].parent)
    assert_self_contained(report.html)
    assert "Predicted vs actual" in report.html and "Residuals" in report.html
    assert "How the model was chosen" not in report.html  # one model picked by hand: no contest
    assert "Confusion matrix" not in report.html
    assert "How the prediction moves with a column" in headings(report.html)
    # scores, loss, predicted vs actual, residuals, importances and three partial dependences
    assert report.charts == 8 and curve_charts(read_run(runs["regression"], predictions=False)) == 1


def test_image_report_embeds_the_mistakes_as_pictures(runs):
    report = build_report(runs["images"], runs["images"].parent)
    page = report.html
    assert_self_contained(page)
    assert "The most confident mistakes" in headings(page)
    assert "Which columns matter" not in headings(page)
    pictures = [a for t, a in parsed(page).tags if t == "img"]
    shown = page.count("<figure>")
    assert shown >= 1 and len(pictures) == 2 * shown  # each mistake, and where the network looked
    assert report.charts == 4 + curve_charts(read_run(runs["images"], predictions=False))  # scores, confusion, PR, ROC


def test_only_runs_inside_the_runs_folder_are_reported(runs, tmp_path):
    with pytest.raises(RunError, match="inside its runs folder"):
        build_report(runs["regression"], tmp_path)


def test_cli_writes_the_report(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    code = cli.main(["report", str(runs["regression"]), "--out", str(out), "--runs-dir",
                     str(runs["regression"].parent)])
    assert code == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["out"] == str(out) and said["charts"] == 8 and said["kb"] == pytest.approx(
        out.stat().st_size / 1024, abs=0.1)
    assert_self_contained(out.read_text(encoding="utf-8"))
    assert cli.main(["report", str(runs["regression"]), "--out", str(out), "--runs-dir", str(tmp_path)]) == 2
    assert "error: Only runs saved by this app" in capsys.readouterr().err


def test_write_report_returns_what_it_wrote(runs, tmp_path):
    out = tmp_path / "r.html"
    report = write_report(runs["images"], out, runs["images"].parent)
    assert out.read_text(encoding="utf-8") == report.html


def _escaped(text: str) -> str:
    import html

    return html.escape(text)
