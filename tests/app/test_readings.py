"""The Evaluate page's charts read themselves: under every chart a reading with this run's numbers
and, beside it, a folded "How to read this"; the Glossary the readings link to is reachable from
every page (AppTest, runs trained beforehand, inline)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.datasets import SAMPLE_DIR
from core.evaluation import at_threshold
from core.glossary import PAGE_URL, TERMS, terms
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import load_manifest, read_run
from tests.app.test_pages import APP, open_evaluate, tiny_shapes
from tests.core.helpers import churn_like
from ui.chart_notes import HOW_TO_READ

LINK = re.compile(r"\]\(" + PAGE_URL + r"#([a-z0-9-]+)\)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each kind of run Evaluate draws differently, in one runs folder."""
    folder = tmp_path_factory.mktemp("runs")
    churn = tmp_path_factory.mktemp("data") / "churn.csv"
    churn_like(n=300).to_csv(churn, index=False)
    specs = {"iris": (SAMPLE_DIR / "iris.csv", None, Overrides(model="hgb")),
             "diabetes": (SAMPLE_DIR / "diabetes.csv", None, Overrides(model="hgb")),
             "churn": (churn, "churned", Overrides(model="linear")),
             "shapes": (tiny_shapes(tmp_path_factory.mktemp("images")), None, Overrides(max_epochs=2))}
    return {name: run_job(JobSpec(source=str(source), target=target, runs_dir=str(folder), overrides=over))
            for name, (source, target, over) in specs.items()}


@pytest.fixture(autouse=True)
def _inline_jobs(monkeypatch, runs):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(next(iter(runs.values())).parent))


def evaluate(run_dir: Path) -> AppTest:
    return open_evaluate(run_dir, timeout=60)


def chart_notes(at: AppTest) -> list[tuple[str, str]]:
    """For every chart outside an expander, in page order: (its reading, its how-to text), checked
    to be the two elements right under it — the reading's caption, then the folded expander."""
    found = []

    def walk(block, in_expander: bool) -> None:
        kids = [block.children[k] for k in sorted(block.children)]
        for i, node in enumerate(kids):
            if getattr(node, "type", None) == "plotly_chart" and not in_expander:
                reading, how = kids[i + 1:i + 3]
                assert reading.type == "caption", f"no reading under chart {i}"
                assert how.type == "expander" and how.label == HOW_TO_READ, f"no '{HOW_TO_READ}' under chart {i}"
                found.append((reading.value, " ".join(c.value for c in how.caption)))
            if hasattr(node, "children") and node.type not in ("caption", "markdown"):
                walk(node, in_expander or node.type == "expander")

    walk(at.main, False)
    return found


def test_every_classification_chart_has_its_reading_and_a_how_to_read_this(runs):
    at = evaluate(runs["iris"])
    notes = chart_notes(at)
    assert len(notes) == 7  # confusion, ROC, precision-recall, loss, importances, dependence, one row explained
    readings, hows = [n[0] for n in notes], [n[1] for n in notes]
    run = read_run(runs["iris"])
    matrix = run.confusion.matrix
    assert f"It gets {np.trace(matrix)} of the {matrix.sum()} validation rows right" in readings[0]
    assert "Rows are the true class" in hows[0]  # the generic text moved beside it
    assert any("ROC AUC" in r for r in readings) and any("average precision" in r for r in readings)
    valid = [h["valid_loss"] for h in run.history]
    best = run.history[int(np.argmin(valid))]["epoch"]
    assert f"lowest at boosting round {best}" in readings[3] and "overfitting" in hows[3]
    assert f"Shuffling `{run.importances[0].feature}`" in readings[4]
    for reading, how in notes:
        assert set(LINK.findall(reading)) <= set(TERMS)
        assert LINK.findall(how) and set(LINK.findall(how)) <= set(TERMS)  # the chart's word in the glossary
    assert sum(e.label == HOW_TO_READ for e in at.expander) == 7


def test_a_binary_runs_readings_follow_the_threshold_slider(runs):
    at = evaluate(runs["churn"])
    run = read_run(runs["churn"])
    slider = next(s for s in at.slider if s.label.startswith("Predict"))
    slider.set_value(0.3).run()
    assert not at.exception
    (tn, fp), (fn, tp) = at_threshold(run.predictions, run.classes, 0.3).confusion.matrix.tolist()
    readings = [n[0] for n in chart_notes(at)]
    assert readings[0].startswith(f"At threshold 0.30, it finds {tp} of the {tp + fn} real “yes” rows and misses {fn}")
    assert any("At threshold 0.30 it finds" in r and f"{tp} of {tp + fn}" in r for r in readings)  # the PR curve
    assert any(f"{run.metrics['roc_auc']:.3f}" in r for r in readings)  # the ROC curve


def test_regression_charts_read_their_errors(runs):
    at = evaluate(runs["diabetes"])
    notes = chart_notes(at)
    assert len(notes) == 6  # predicted vs actual, residuals, loss, importances, dependence, one row explained
    mae = load_manifest(runs["diabetes"])["metrics"]["mae"]
    assert f"{mae:.3g} off" in notes[0][0] and "Each dot is a validation row" in notes[0][1]
    assert "residuals" in notes[1][0] and "funnel" in notes[1][1]
    assert "lowers [R²]" in notes[3][0]


def test_the_image_gallery_reads_its_mistakes(runs):
    at = evaluate(runs["shapes"])
    notes = chart_notes(at)
    run = read_run(runs["shapes"])
    wrong = int(run.confusion.matrix.sum() - np.trace(run.confusion.matrix))
    gallery = next(n for n in notes if "Red marks the pixels" in n[1])
    assert f"It got {wrong} of the {run.confusion.matrix.sum()} validation images wrong" in gallery[0]


def _live_panel() -> None:
    """The Train page's live panel over a made-up job: boosting, best at round 3, now at round 6."""
    from types import SimpleNamespace

    from core.events import EpochEnded
    from ui.live import _running

    losses = [0.9, 0.6, 0.40, 0.41, 0.43, 0.45]
    events = [EpochEnded(epoch=e, train_loss=1 / e, valid_loss=v, max_epochs=500) for e, v in enumerate(losses, 1)]
    job = SimpleNamespace(job_id="job-1", events=events, cancel_requested=None, elapsed=4.0)
    _running(SimpleNamespace(cancel=lambda job_id: None), job)


def test_the_live_curve_reads_itself_while_it_grows():
    at = AppTest.from_function(_live_panel, default_timeout=30).run()
    assert not at.exception, at.exception
    (reading, how), = chart_notes(at)
    assert reading.startswith("Epoch 6 of at most 500: validation loss 0.45.")
    assert "Lowest so far: 0.4 at epoch 3, 3 epochs ago." in reading and "risen 12%" in reading
    assert "Both lines should fall" in how


# ---------------------------------------------------------------- the glossary


def test_the_glossary_shows_every_term_under_its_anchor():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/glossary.py").run()
    assert not at.exception
    assert at.title[0].value == "Glossary"
    assert [(h.value, h.proto.anchor) for h in at.subheader] == [(t.name, t.key) for t in terms()]
    assert "Of the rows that really are a class, the share the model finds." in " ".join(m.value for m in at.markdown)


@pytest.mark.parametrize("page", ["app_pages/data.py", "app_pages/train.py", "app_pages/evaluate.py",
                                  "app_pages/predict.py", "app_pages/runs.py"])
def test_the_glossary_is_reachable_from_every_page(page):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception
    at.switch_page("app_pages/glossary.py").run()  # refused when the page's navigation lacks it
    assert not at.exception
    assert at.title[0].value == "Glossary"


def test_the_readings_link_to_the_glossary_pages_address():
    at = AppTest.from_file(APP, default_timeout=60).run()
    addresses = {info.get("url_pathname") for info in at._registered_pages.values()}
    assert PAGE_URL in addresses  # "glossary#recall" opens that page at the term
