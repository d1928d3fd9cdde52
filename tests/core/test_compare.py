"""core.compare: identical folds for all, the budget honoured, the leaderboard ordered, the pick."""

import numpy as np
import pytest

from core.compare import Entry, choose_folds, compare, pick
from core.events import CandidateSkipped, FoldEnded
from core.schema import prepare
from tests.core.helpers import churn_like, regression_table, table


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like(n=300)), target="churned")


def test_every_candidate_sees_identical_folds(churn, monkeypatch):
    seen = {}
    import core.compare as cmp

    real = cmp._score_fold

    def spy(candidate, data, summary, train, valid, *rest):
        seen.setdefault(candidate.name, []).append((tuple(train), tuple(valid)))
        return real(candidate, data, summary, train, valid, *rest)

    monkeypatch.setattr(cmp, "_score_fold", spy)
    events = []
    result = compare(churn, candidates=("dummy", "linear", "forest"), n_folds=3, time_budget=300,
                     on_event=events.append)
    assert seen["dummy"] == seen["linear"] == seen["forest"] and len(seen["linear"]) == 3
    assert sum(isinstance(e, FoldEnded) for e in events) == 9
    board = result.leaderboard()
    assert [e.mean for e in board] == sorted((e.mean for e in board), reverse=True)
    assert board[-1].model == "dummy" and board[-1].mean == pytest.approx(0.5)
    assert result.best in ("linear", "forest")


def test_budget_skips_what_would_not_finish(churn):
    """Past the budget every candidate is skipped but the simplest, which always runs: a
    comparison (and the automatic contest) must end with a model."""
    events = []
    result = compare(churn, candidates=("dummy", "linear", "hgb"), n_folds=3, time_budget=0.0,
                     on_event=events.append)
    skipped = {e.model for e in events if isinstance(e, CandidateSkipped)}
    assert skipped == {"hgb"} and result.best == "linear"
    assert "budget" in next(e for e in result.entries if e.model == "hgb").skipped


def test_simpler_model_within_one_standard_error_wins():
    def entry(model, values):
        return Entry(model=model, metric="roc_auc", scores={"roc_auc": values}, fit_s=[0.1] * len(values))

    close = [entry("linear", [0.90, 0.91, 0.89]), entry("hgb", [0.905, 0.92, 0.89])]  # se 0.0087
    best, reasons = pick(close, "roc_auc", 3)
    assert best == "linear" and any("within one standard error" in r for r in reasons)
    far = [entry("linear", [0.80, 0.81, 0.79]), entry("hgb", [0.91, 0.92, 0.90])]
    assert pick(far, "roc_auc", 3)[0] == "hgb"


def test_fold_choice_by_size():
    y = np.array(["a", "b"] * 100)
    folds, words = choose_folds(y, "binary", None, 0)
    assert len(folds) == 5 and "stratified" in words
    big, words = choose_folds(np.zeros(600_000), "regression", None, 0)
    assert len(big) == 1 and "holdout" in words


def test_regression_compare():
    data = prepare(table(regression_table(n=200)), target="y")
    result = compare(data, candidates=("dummy", "linear"), n_folds=3, time_budget=300)
    assert result.metric == "r2" and result.best == "linear"
    assert set(result.as_dict()["leaderboard"][0]["scores"]) == {"r2", "mae", "rmse"}


def test_live_leaderboard_from_events():
    from core.compare import leaderboard_rows

    events = [FoldEnded("linear", 1, 2, "roc_auc", {"roc_auc": 0.8}, 0.1),
              FoldEnded("hgb", 1, 2, "roc_auc", {"roc_auc": 0.9}, 0.5),
              FoldEnded("linear", 2, 2, "roc_auc", {"roc_auc": 0.7}, 0.1),
              CandidateSkipped("mlp", "skipped: the 60 s budget would run out")]
    rows = leaderboard_rows(events)
    assert [r["key"] for r in rows] == ["hgb", "linear", "mlp"]
    assert rows[1]["mean"] == pytest.approx(0.75) and rows[1]["folds"] == "2/2"
    assert rows[2]["mean"] is None and "budget" in rows[2]["note"]


@pytest.mark.parametrize("model", ["linear", "hgb", "forest"])
def test_candidates_are_scored_with_the_settings_training_would_use(model, monkeypatch):
    """What a comparison scores is what "Train the winner" trains: the family's own tuning for the
    whole table (small-table trees, a log-scale target), not a copy of some of its rules."""
    import core.compare as cmp
    from core.planner import Overrides, plan

    frame = regression_table(n=300)
    frame["y"] = np.exp(frame["y"] / frame["y"].std() * 1.5)  # positive with a long tail
    data = prepare(table(frame), target="y")
    fitted_with = []
    family = cmp.get_family(model)
    real_fit = type(family).fit

    def spy(self, ctx):
        fitted_with.append(dict(ctx.params))
        return real_fit(self, ctx)

    monkeypatch.setattr(type(family), "fit", spy)
    compare(data, candidates=(model,), n_folds=2, time_budget=300)
    trained = plan(data, Overrides(model=model))
    assert fitted_with and all(params == dict(trained.params) for params in fitted_with)
    assert trained.params.get("log_target") is True


def test_a_saved_comparison_reads_back_as_the_same_leaderboard(churn, tmp_path):
    from core.compare import load_comparison, save_comparison

    result = compare(churn, candidates=("dummy", "linear"), n_folds=2, time_budget=300)
    back = load_comparison(save_comparison(tmp_path, result, "churn.csv"))
    assert back.best == result.best and back.folds == result.folds and back.reasons == result.reasons
    assert [(e.model, e.mean, e.std, e.fit_s) for e in back.leaderboard()] == \
        [(e.model, e.mean, e.std, e.fit_s) for e in result.leaderboard()]
