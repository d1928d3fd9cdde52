"""The PyTorch MLP: it learns, predicts in the target's units, follows scikit-learn's rules,
saves and loads exactly, stops when asked, and reports its progress in order."""

from __future__ import annotations

import json
import threading
import types

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import core.models.base as base
from core.errors import PlanError
from core.events import EpochEnded, Message, NeverStop, StepEnded
from core.models.base import FitContext
from core.models.mlp import (
    TorchMLPClassifier,
    TorchMLPRegressor,
    auto_batch_size,
    load_mlp,
    save_mlp,
)
from core.models.mlp_family import MLPFamily
from core.run_record import SCHEMA_VERSION
from core.trusted import seal, trusted_folder
from core.types import ColumnInfo, DeviceInfo, Prepared

#: Small, quick settings: the tests check behaviour, not the defaults' accuracy.
QUICK = {"hidden": (32, 16), "max_epochs": 30, "lr": 3e-3}


def quick(**overrides) -> dict:
    return {**QUICK, **overrides}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks gain nothing from threads, and on a busy shared machine two OpenMP threads
    make them ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _features(n: int, seed: int = 0, width: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width))


def _binary(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = _features(n, seed)
    return X, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no").astype(object)


def _multiclass(n: int = 900, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = _features(n, seed)
    return X, X[:, :3].argmax(axis=1)


def _regression(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A target with mean ≈ 1000 and std ≈ 100, mostly explained by two inputs."""
    X = _features(n, seed)
    signal = X[:, 0] + 0.5 * np.tanh(X[:, 1])
    noise = np.random.default_rng(seed + 1).normal(scale=0.1, size=n)
    return X, 1000 + 100 * (signal + noise) / signal.std()


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


# -- learning ----------------------------------------------------------------------------------
def test_classifier_learns_a_binary_target_with_string_labels():
    X_train, y_train, X_test, y_test = _split(*_binary(), 450)
    model = TorchMLPClassifier(**QUICK).fit(X_train, y_train)
    assert model.classes_.tolist() == ["no", "yes"]
    assert accuracy_score(y_test, model.predict(X_test)) > 0.9  # trivial: ~0.5
    proba = model.predict_proba(X_test)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.n_epochs_ >= model.best_epoch_ >= 1
    assert [h["epoch"] for h in model.history_] == list(range(1, model.n_epochs_ + 1))


def test_classifier_learns_a_multiclass_target():
    X_train, y_train, X_test, y_test = _split(*_multiclass(), 700)
    model = TorchMLPClassifier(**QUICK).fit(X_train, y_train)
    assert model.classes_.tolist() == [0, 1, 2]
    assert accuracy_score(y_test, model.predict(X_test)) > 0.8  # trivial: ~0.35


def test_regressor_predicts_in_the_targets_units():
    X_train, y_train, X_valid, y_valid = _split(*_regression(), 600)
    events = []
    model = TorchMLPRegressor(**quick(callback=events.append)).fit(X_train, y_train, X_valid, y_valid)
    predictions = model.predict(X_valid)
    assert r2_score(y_valid, predictions) > 0.8
    assert abs(predictions.mean() - 1000) < 30 and 60 < predictions.std() < 140
    # The RMSE reported at the best epoch is the restored model's error, in the target's units.
    best = next(e for e in events if isinstance(e, EpochEnded) and e.epoch == model.best_epoch_)
    actual_rmse = np.sqrt(np.mean((predictions - y_valid) ** 2))
    assert best.metrics["rmse"] == pytest.approx(actual_rmse, rel=1e-3)


def test_sparse_input_gives_the_same_model_as_dense():
    X, y = _binary(200)
    dense = TorchMLPClassifier(**quick(max_epochs=3)).fit(X, y)
    sparse = TorchMLPClassifier(**quick(max_epochs=3)).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(dense.predict_proba(X), sparse.predict_proba(sp.csr_matrix(X)))


def test_same_seed_same_predictions_and_another_seed_differs():
    X, y = _binary(300)
    first = TorchMLPClassifier(**quick(max_epochs=5, random_state=1)).fit(X, y).predict_proba(X)
    torch.manual_seed(99)  # the estimator's seed, not torch's global state, decides
    again = TorchMLPClassifier(**quick(max_epochs=5, random_state=1)).fit(X, y).predict_proba(X)
    other = TorchMLPClassifier(**quick(max_epochs=5, random_state=2)).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_fit_leaves_torchs_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TorchMLPClassifier(**quick(max_epochs=2)).fit(*_binary(100))
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize(("n_rows", "size"), [(500, 64), (5_000, 128), (30_000, 256), (99_999, 512),
                                              (1_000_000, 1024)])
def test_auto_batch_size_grows_with_the_table(n_rows, size):
    assert auto_batch_size(n_rows) == size


# -- scikit-learn compliance -------------------------------------------------------------------
@parametrize_with_checks([TorchMLPClassifier(hidden=(16,), max_epochs=20, lr=1e-2),
                          TorchMLPRegressor(hidden=(16,), max_epochs=20, lr=1e-2)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


# -- save / load -------------------------------------------------------------------------------
@pytest.mark.parametrize(("make", "data"), [(TorchMLPClassifier, _binary), (TorchMLPRegressor, _regression)])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, make, data):
    X, y = data(300)
    model = make(**quick(max_epochs=5)).fit(X, y)
    assert sorted(save_mlp(model, tmp_path)) == ["mlp.json", "mlp.pt"]
    loaded = load_mlp(tmp_path)
    assert type(loaded) is make and loaded.hidden == (32, 16)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if make is TorchMLPClassifier:
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert json.loads((tmp_path / "mlp.json").read_text())["classes"] == ["no", "yes"]


def test_estimator_pickles_without_callback_or_stop():
    import pickle

    X, y = _binary(200)
    model = TorchMLPClassifier(**quick(max_epochs=3)).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict_proba(X), model.predict_proba(X))


# -- stopping and events -----------------------------------------------------------------------
def test_stop_flag_set_after_the_first_epoch_cancels_and_keeps_a_usable_model():
    X_train, y_train, X_test, y_test = _split(*_binary(), 450)
    stop, events = threading.Event(), []

    def on_event(event):
        events.append(event)
        if isinstance(event, EpochEnded) and event.epoch == 1:
            stop.set()

    model = TorchMLPClassifier(**quick(callback=on_event, stop=stop)).fit(X_train, y_train)
    assert model.cancelled_ and not model.stopped_early_
    assert model.n_epochs_ == 1 and model.best_epoch_ == 1
    assert events[-1] == Message("warning", "Stopped on request during epoch 2. Keeping the weights of epoch 1, "
                                            "the best one.")
    assert accuracy_score(y_test, model.predict(X_test)) > 0.6


def test_time_budget_stops_the_run_with_a_message():
    events = []
    X, y = _binary(200)
    model = TorchMLPClassifier(**quick(time_budget=0.0, callback=events.append)).fit(X, y)
    assert model.stopped_early_ and not model.cancelled_ and model.n_epochs_ == 0
    assert isinstance(events[-1], Message) and "time budget" in events[-1].text
    assert set(model.predict(X)) <= {"no", "yes"}


def test_events_come_in_order_and_early_stopping_restores_the_best_epoch():
    X, _ = _binary(400)
    noise = np.random.default_rng(5).integers(0, 2, size=400)  # nothing to learn: validation loss rises
    events = []
    model = TorchMLPClassifier(hidden=(64, 64), lr=1e-2, max_epochs=100, patience=3, batch_size=50,
                               callback=events.append).fit(X[:300], noise[:300], X[300:], noise[300:])
    assert model.stopped_early_ and model.n_epochs_ < 100
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == list(range(1, model.n_epochs_ + 1))
    assert all(e.max_epochs == 100 and "accuracy" in e.metrics for e in epochs)
    assert isinstance(events[-1], Message) and "Stopped early" in events[-1].text
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert steps and all(s.total_steps == 100 * 6 for s in steps)
    assert [s.step for s in steps] == sorted({s.step for s in steps})
    # Every StepEnded comes before the EpochEnded of its epoch.
    order = [(e.epoch, isinstance(e, EpochEnded)) for e in events if isinstance(e, (StepEnded, EpochEnded))]
    assert order == sorted(order)
    # The weights kept are the best epoch's: their validation loss is the best one recorded.
    best_loss = min(h["valid_loss"] for h in model.history_)
    assert model.history_[model.best_epoch_ - 1]["valid_loss"] == best_loss
    assert model.best_epoch_ < model.n_epochs_
    logits = torch.from_numpy(np.log(model.predict_proba(X[300:])))
    restored_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(noise[300:])).item()
    assert restored_loss == pytest.approx(best_loss, rel=1e-4)


def test_step_events_are_throttled(monkeypatch):
    # A frozen clock: after the first StepEnded, no further one is ever due.
    monkeypatch.setattr(base, "time", types.SimpleNamespace(perf_counter=lambda: 1000.0))
    events = []
    X, y = _binary(300)
    TorchMLPClassifier(**quick(max_epochs=3, batch_size=32, callback=events.append)).fit(X, y)
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert len(steps) == 1 and steps[0].step == 1 and np.isfinite(steps[0].train_loss)
    assert sum(isinstance(e, EpochEnded) for e in events) == 3


# -- the family ------------------------------------------------------------------------------
def _table(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    number = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    frame = pd.DataFrame({"size": number, "colour": colour})
    frame.loc[::37, "size"] = np.nan
    frame.loc[::41, "colour"] = None
    label = np.where(np.nan_to_num(number) + 1.5 * (colour == "red") > 0.5, "big", "small")
    return frame, pd.Series(label, name="label")


COLUMNS = (ColumnInfo("size", "numeric", "numbers", "float64", 390, 11),
           ColumnInfo("colour", "categorical", "few distinct values", "str", 3, 10))


def _context(events: list, params: dict | None = None, **overrides) -> FitContext:
    X, y = _table()
    prepared = Prepared(X=X, y=y, task="binary", target="label", classes=("big", "small"), columns=COLUMNS)
    fields = dict(X_train=X.iloc[:300], y_train=y.iloc[:300], X_valid=X.iloc[300:], y_valid=y.iloc[300:],
                  task="binary", classes=("big", "small"), params=params or {"hidden": [32, 16], "lr": 3e-3},
                  seed=0, device=DeviceInfo("cpu", "test CPU", 2), emit=events.append, stop=NeverStop(),
                  prepared=prepared, max_epochs=30)
    return FitContext(**{**fields, **overrides})


def test_family_fits_on_raw_columns_saves_and_loads(tmp_path):
    events = []
    ctx = _context(events)
    family = MLPFamily()
    fitted = family.fit(ctx)
    model = fitted.model
    assert fitted.name == "MLP (32-16)" and not fitted.cancelled
    assert fitted.params["hidden"] == [32, 16] and fitted.params["epochs_run"] == model[-1].n_epochs_
    assert model[-1].callback is None and model[-1].stop is None
    assert any(isinstance(e, EpochEnded) for e in events)
    assert accuracy_score(ctx.y_valid, model.predict(ctx.X_valid)) > 0.8
    files = family.save(fitted, tmp_path)
    assert sorted(files) == ["mlp.json", "mlp.pt", "preprocess.joblib"]
    # A run folder, as core.runs.load_model opens one: its manifest names the files the run wrote.
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "files": files,
                                                        "seal": seal(tmp_path, files)}))
    with trusted_folder(tmp_path, tmp_path.parent):
        loaded = family.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(ctx.X_valid), model.predict_proba(ctx.X_valid))
    np.testing.assert_array_equal(loaded.predict(ctx.X_valid), model.predict(ctx.X_valid))


def test_family_uses_class_weights_for_imbalance_and_the_planned_epochs():
    fitted = MLPFamily().fit(_context([], imbalanced=True, max_epochs=2))
    assert fitted.model[-1].class_weight == "balanced" and fitted.params["epochs_run"] == 2


def test_family_refuses_unknown_settings():
    with pytest.raises(PlanError, match="no setting 'depth'"):
        MLPFamily().fit(_context([], params={"depth": 3}))
