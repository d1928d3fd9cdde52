"""The registry is the one home of model facts: a family registered in one place (one class, one
registry line) shows up in the Train page's choices, the CLI, comparison and the progress text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline

from core.features import dense_preprocessor
from core.models import REGISTRY, comparison_candidates, families, get_family, trainable
from core.models.base import DataSummary, FitContext, Fitted, Tuned, epoch_event
from core.models.tabular import SklearnFamily
from core.schema import prepare
from tests.core.helpers import churn_like, table

TOY = "toy"


class ToyFamily(SklearnFamily):
    """Nearest neighbours: a model family written only for this test."""

    key = TOY
    label = "Toy nearest neighbours"
    curve_unit = "neighbour count"
    comparison_order = 5

    def tune(self, data: DataSummary) -> Tuned:
        k = 3 if data.n_rows < 1000 else 15
        return Tuned({"n_neighbors": k}, (f"{k} neighbours vote, for {data.n_rows:,} rows.",))

    def fit(self, ctx: FitContext) -> Fitted:
        started = time.perf_counter()
        model = (KNeighborsRegressor if ctx.task == "regression" else KNeighborsClassifier)(**ctx.params)
        pipeline = Pipeline([("prep", dense_preprocessor(ctx.prepared.used_columns)), ("model", model)])
        pipeline.fit(ctx.X_train, ctx.y_train)
        ctx.emit(epoch_event(ctx.params["n_neighbors"], 0.5, 0.6, started))
        return Fitted(pipeline, dict(ctx.params), type(model).__name__)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(REGISTRY, TOY, f"{__name__}:ToyFamily")
    return get_family(TOY)


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like(n=300)), target="churned")


def test_the_toy_family_is_everywhere_the_registry_reaches(toy):
    assert TOY in trainable("tabular") and TOY not in trainable("images")
    assert comparison_candidates("tabular")[-1] == TOY
    assert any(f.key == TOY for f in families("tabular"))


def test_the_cli_accepts_it(toy):
    from core.cli import _parser

    assert _parser().parse_args(["train", "data.csv", "--model", TOY]).model == TOY
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "data.csv", "--model", "no-such-model"])


def test_the_plan_uses_its_own_tuning_and_comparison_scores_it(toy, churn):
    from core.compare import compare
    from core.planner import Overrides, plan

    chosen = plan(churn, Overrides(model=TOY))
    assert chosen.params == {"n_neighbors": 3} and "3 neighbours vote, for 300 rows." in chosen.reasons
    assert chosen.baseline == "linear"
    result = compare(churn, n_folds=2, time_budget=300)
    scored = {e.model: e for e in result.entries}
    assert scored[TOY].mean is not None and scored[TOY].skipped is None


def test_the_progress_text_speaks_its_curve_unit(toy, churn):
    from core.events import EpochEnded, RunStarted
    from core.planner import Overrides, plan
    from core.progress import summarise
    from core.types import DeviceInfo

    started = RunStarted(plan=plan(churn, Overrides(model=TOY)), device=DeviceInfo("cpu", "CPU", 2),
                         n_train=240, n_valid=60)
    line = summarise([started, EpochEnded(epoch=3, train_loss=0.5, valid_loss=0.6)]).status_line()
    assert line.startswith("Neighbour count 3")


def test_the_train_page_offers_it(toy, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from core.datasets import SAMPLE_DIR

    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=60).run()
    at.button(key=f"sample-{(SAMPLE_DIR / 'iris.csv').name}").click().run()
    at.switch_page("app_pages/train.py").run()
    model = at.selectbox[0]
    assert TOY in model.options or ToyFamily.label in model.options
    model.select(TOY).run()
    assert not at.exception
    assert "The plan: Toy nearest neighbours" in [s.value for s in at.subheader]
