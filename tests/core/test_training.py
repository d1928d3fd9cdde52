"""core.training + core.models.tabular: events, stop flag, no leakage, reproducibility."""

import threading

import numpy as np
import pandas as pd
import pytest

from core.events import EpochEnded, Message, RunStarted
from core.models.tabular import ReportingHGBClassifier
from core.planner import Overrides, plan
from core.schema import prepare
from core.training import fit, split_rows
from tests.core.helpers import churn_like, regression_table, table


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like()), target="churned")


def record():
    events = []
    return events, events.append


def test_event_order_and_curve(churn):
    events, on_event = record()
    result = fit(churn, plan(churn, Overrides(model="hgb")), on_event)
    assert isinstance(events[0], RunStarted)
    assert events[0].n_train + events[0].n_valid == len(churn.X)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert len(epochs) >= 2, "boosting must report rounds while it trains"
    assert [e.epoch for e in epochs] == sorted(e.epoch for e in epochs)
    assert all(np.isfinite(e.train_loss) and np.isfinite(e.valid_loss) for e in epochs)
    assert epochs[-1].epoch == result.main.params["n_iter"]
    # The saved curve has every round, even though live events were throttled.
    assert [e.epoch for e in result.history] == list(range(1, result.main.params["n_iter"] + 1))
    assert result.baseline is not None and result.main.name == "HistGradientBoostingClassifier"


def test_baseline_events_stay_off_the_curve(churn):
    events, on_event = record()
    fit(churn, plan(churn, Overrides(model="hgb")), on_event)
    epochs = [e.epoch for e in events if isinstance(e, EpochEnded)]
    assert epochs[0] == 1 and epochs.count(1) == 1  # the linear baseline's single point is not reported


@pytest.mark.parametrize("model", ["hgb", "forest"])
def test_stop_flag_keeps_a_usable_model(churn, model):
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, EpochEnded):
            stop.set()  # the user clicks Stop as soon as the first point appears

    result = fit(churn, plan(churn, Overrides(model=model, max_epochs=400)), on_event, stop)
    assert result.main.cancelled
    assert not result.main.stopped_early
    said = [m for m in result.messages if m.text.startswith("Stopped on request")]
    assert len(said) == 1 and said[0].level == "warning"  # said once, in the words every family uses
    proba = result.main.model.predict_proba(result.X_valid)
    assert proba.shape == (len(result.X_valid), 2)
    rounds = result.main.params.get("n_iter") or result.main.params.get("n_estimators")
    assert rounds < 400


def test_hook_runs_every_round():
    """The live curve relies on scikit-learn calling _should_stop once per boosting round."""
    X = np.random.default_rng(0).normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    calls = []
    booster = ReportingHGBClassifier(max_iter=12, early_stopping=True, n_iter_no_change=100)
    booster._reporter = lambda b: calls.append(len(b.validation_score_)) or False
    booster.fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:])
    assert calls == list(range(1, 14))  # the score before any tree, then one per round


def test_no_leakage_preprocessing_sees_training_rows_only(churn):
    result = fit(churn, plan(churn, Overrides(model="linear")))
    prep = result.main.model.named_steps["prep"]
    imputer = prep.named_steps["encode"].named_transformers_["numeric"].named_steps["simpleimputer"]
    train_rows = np.setdiff1d(np.arange(len(churn.X)), result.valid_index)
    expected = np.nanmedian(churn.X.iloc[train_rows][["tenure", "charges"]].to_numpy(float), axis=0)
    assert np.allclose(imputer.statistics_[:2], expected)
    everything = np.nanmedian(churn.X[["tenure", "charges"]].to_numpy(float), axis=0)
    assert not np.allclose(imputer.statistics_[:2], everything)


def test_same_seed_same_scores(churn):
    a = fit(churn, plan(churn, Overrides(seed=3)))
    b = fit(churn, plan(churn, Overrides(seed=3)))
    assert np.array_equal(a.valid_index, b.valid_index)
    assert np.allclose(a.main.model.predict_proba(a.X_valid), b.main.model.predict_proba(b.X_valid))


def test_stratified_split_keeps_every_class():
    y = np.array(["a"] * 90 + ["b"] * 8 + ["c"] * 2)
    train, valid = split_rows(y, "multiclass", 0.2, 0)
    assert set(y[valid]) == {"a", "b", "c"} and set(y[train]) == {"a", "b", "c"}
    assert len(np.intersect1d(train, valid)) == 0


def test_imbalance_weights_and_warns():
    data = prepare(table(churn_like(n=500, positive_share=0.08)), target="churned")
    events, on_event = record()
    result = fit(data, plan(data, Overrides(model="hgb")), on_event)
    assert result.main.params["class_weight"] == "balanced"
    assert any(isinstance(e, Message) and "accuracy" in e.text for e in events)


def test_regression_and_log_target():
    data = prepare(table(regression_table()), target="y")
    result = fit(data, plan(data, Overrides(model="hgb")))
    assert result.main.name == "HistGradientBoostingRegressor"
    frame = regression_table()
    frame["y"] = np.exp(frame["y"] / 2)  # positive, heavy tail
    skewed = prepare(table(frame), target="y")
    p = plan(skewed, Overrides(model="hgb"))
    assert p.params.get("log_target") and any("logarithm" in r for r in p.reasons)
    result = fit(skewed, p)
    assert result.main.model.predict(result.X_valid).min() > 0  # back in original (positive) units
    assert "log(target)" in result.main.name


def test_time_budget_stops_and_keeps_model(churn):
    events, on_event = record()
    result = fit(churn, plan(churn, Overrides(model="forest", time_budget=0.0, max_epochs=300)), on_event)
    assert result.main.params["n_estimators"] < 300
    assert result.main.model.predict(result.X_valid).shape == (len(result.X_valid),)


def test_a_split_without_rows_trains_the_same(churn):
    from core.training import fit_split, split_data

    the_plan = plan(churn, Overrides(model="hgb", seed=3))
    whole = fit(churn, the_plan)
    parts = split_data(churn, the_plan, keep_rows=False)
    assert len(parts.data.X) == 0 and len(parts.data.y) == 0 and parts.data.columns == churn.columns
    assert len(parts.X_train) + len(parts.X_valid) == len(churn.X)
    lean = fit_split(parts, the_plan)
    assert lean.valid_index.tolist() == whole.valid_index.tolist()
    assert np.allclose(lean.main.model.predict_proba(churn.X), whole.main.model.predict_proba(churn.X))


@pytest.mark.parametrize("model", ["hgb", "forest", "mlp"])
def test_a_spent_time_budget_stops_early_and_is_not_a_cancel(churn, model):
    """Running out of time is not the user's Stop: the run is not marked "stopped by you"."""
    result = fit(churn, plan(churn, Overrides(model=model, max_epochs=5000, time_budget=1e-9)))
    assert result.main.stopped_early and not result.main.cancelled
    said = [m.text for m in result.messages if "time budget" in m.text]
    assert len(said) == 1 and said[0].startswith("Stopped ") and "s was spent" in said[0]


def test_the_linear_model_learns_from_a_bounded_sample(churn, monkeypatch):
    """On a large table the linear model (the baseline, and the contest's linear candidate) fits a
    random sample of the training rows; the baseline says so."""
    monkeypatch.setattr("core.models.tabular.LINEAR_ROWS", 100)
    events, on_event = record()
    result = fit(churn, plan(churn, Overrides(model="hgb")), on_event)
    assert result.baseline.params["fit_rows"] == 100 < result.n_train
    assert any(isinstance(e, Message) and "on a sample of 100 training rows" in e.text for e in events)


def test_boosting_on_coded_categories_is_the_same_model_without_the_copies(churn):
    """``_coded_categories`` skips scikit-learn's re-encoding of the codes the tree preprocessor
    made (two copies of the numbers); the model must not change."""
    from core.features import tree_preprocessor
    from core.models.tabular import _category_codes

    prep, categorical = tree_preprocessor(churn.used_columns, churn.task)
    Xt = prep.fit_transform(churn.X, churn.y)
    mask = np.zeros(Xt.shape[1], dtype=bool)
    mask[categorical] = True
    assert categorical  # the table has categories, so the path is exercised
    probas = []
    for coded in (False, True):
        booster = ReportingHGBClassifier(max_iter=30, categorical_features=mask, random_state=0)
        if coded:
            booster._coded_categories = _category_codes(prep, categorical, Xt.shape[1])
        booster.fit(Xt, churn.y)
        probas.append(booster.predict_proba(Xt))
        assert list(booster.is_categorical_) == list(mask)
        assert (booster._preprocessor is None) == coded  # no re-encoding copy on the coded path
    assert np.allclose(probas[0], probas[1])


def _noisy_binary(n=300, noise_columns=60, seed=0):
    """One column carries the signal, many carry noise: a line needs strong regularisation here."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, noise_columns)), columns=[f"n{i}" for i in range(noise_columns)])
    frame["signal"] = rng.normal(size=n)
    frame["y"] = np.where(frame["signal"] + rng.normal(scale=1.5, size=n) > 0, "yes", "no")
    return frame


def test_the_linear_model_chooses_its_regularisation_on_its_training_rows(monkeypatch):
    import core.models.tabular as tabular

    searched = []

    class Spy(tabular.LogisticRegressionCV):
        def fit(self, X, y, **kw):
            searched.append(len(y))
            return super().fit(X, y, **kw)

    monkeypatch.setattr(tabular, "LogisticRegressionCV", Spy)
    data = prepare(table(_noisy_binary()), target="y")
    result = fit(data, plan(data, Overrides(model="linear")))
    params = result.main.params
    assert searched == [result.n_train]  # the training rows only: the validation rows never choose
    assert params["regularisation"].startswith("chosen by 3-fold cross-validation")
    assert params["C"] < 1.0  # 60 noise columns on 240 rows: stronger than the default
    mine = fit(data, plan(data, Overrides(model="linear", params={"C": 1.0})))
    assert mine.main.params["C"] == 1.0 and mine.main.params["regularisation"] == "set by you"
    assert searched == [result.n_train]  # the user's C is not searched


def test_the_ridge_chooses_its_alpha_by_cross_validation():
    data = prepare(table(regression_table(n=300)), target="y")
    params = fit(data, plan(data, Overrides(model="linear"))).main.params
    assert params["regularisation"].startswith("chosen by leave-one-out") and params["alpha"] > 0


def test_strengths_that_tie_keep_the_weakest():
    """Separable rows: every strength ranks them perfectly (ROC AUC 1), so the search keeps the weakest
    rather than flattening the probabilities for nothing."""
    from core.models.tabular import LINEAR_CS

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    data = prepare(table(frame), target="y")
    assert fit(data, plan(data, Overrides(model="linear"))).main.params["C"] == max(LINEAR_CS)


def test_a_model_on_a_log_scale_predicts_within_the_targets_it_learnt_from():
    """exp of a line's extrapolation explodes (one huge house in the Ames table: 2.5 M$ predicted
    where the dearest training house cost 755 k$): log predictions are held within the training range."""
    from sklearn.linear_model import LinearRegression

    from core.models.tabular import LogTargetRegressor

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, size=(200, 1))
    y = np.exp(1 + x[:, 0] + rng.normal(scale=0.1, size=200))
    fitted = LogTargetRegressor(LinearRegression()).fit(x, y)
    far = fitted.predict(np.array([[10.0], [-10.0], [1.5]]))
    assert far[0] == pytest.approx(y.max()) and far[1] == pytest.approx(y.min())
    assert y.min() < far[2] < y.max() and far[2] == pytest.approx(np.exp(2.5), rel=0.1)
    wrapped = LogTargetRegressor.wrap(fitted.regressor_, np.log(y))
    np.testing.assert_allclose(wrapped.predict(np.array([[10.0]])), y.max())
    legacy = LogTargetRegressor.wrap(fitted.regressor_, np.log(y))
    del legacy.log_range_  # a model saved before the bounds predicts as it did
    assert legacy.predict(np.array([[10.0]]))[0] > 1e4
