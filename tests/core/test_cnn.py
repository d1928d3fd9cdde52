"""The cnn family: network shapes, training on a tiny separable set, stopping, save/load, saliency."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from core.errors import DataError, RunError
from core.events import EpochEnded, Message, NeverStop, RunFinished, RunStarted, StepEnded
from core.image_eval import saliency
from core.models import get_family
from core.models.base import FitContext
from core.models.cnn import ConvNet, conv_blocks_for, stem_stride_for, widths_for
from core.models.cnn_family import CNNFamily
from core.types import DeviceInfo

CPU = DeviceInfo("cpu", "test CPU", 1)


def bars(n: int, size: int = 16, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: a bright vertical bar; class 1: a bright horizontal bar; random place, noisy background."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        at = rng.integers(3, size - 5)
        if y[i] == 0:
            X[i, :, 2:-2, at:at + 3] = 255
        else:
            X[i, :, at:at + 3, 2:-2] = 255
    return X, y.astype(np.int64)


def context(emit=None, stop=None, params=None, n_train=48, n_valid=16, **kwargs) -> FitContext:
    X, y = bars(n_train + n_valid)
    settings = {"epochs": 4, "width": 8, "batch_size": 16, "lr": 0.01} | (params or {})
    return FitContext(X[:n_train], y[:n_train], X[n_train:], y[n_train:], "binary", ("vertical", "horizontal"),
                      settings, 0, CPU, emit or (lambda e: None), stop or NeverStop(), **kwargs)


@pytest.fixture(scope="module")
def trained():
    """One small model trained with recorded events and timing, shared by the read-only tests."""
    events, started = [], time.perf_counter()
    fitted = CNNFamily().fit(context(events.append, params={"epochs": 8}))
    return fitted, events, time.perf_counter() - started


# ---------------------------------------------------------------------------------- the network


@pytest.mark.parametrize("size", [32, 64, 96])
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shape_for_each_size_and_channel_count(size, channels):
    net = ConvNet(channels, 5, widths_for(size, 8), [0.5] * channels, [0.2] * channels,
                  stem_stride=stem_stride_for(size)).eval()
    x = torch.randint(0, 256, (2, channels, size, size), dtype=torch.uint8)
    with torch.no_grad():
        assert net(x).shape == (2, 5)
        last_map = net.features(net.mean.new_zeros(2, channels, size, size)).shape[-1]
    assert 6 <= last_map <= 8  # Grad-CAM resolution stays useful at every size


def test_blocks_and_widths_grow_with_image_size():
    assert [conv_blocks_for(s) for s in (32, 64, 96)] == [3, 4, 5]
    assert widths_for(32, 32) == [32, 64, 128]
    assert widths_for(96, 16) == [16, 32, 64, 128, 256]


def test_registry_names_the_family():
    family = get_family("cnn")
    assert isinstance(family, CNNFamily) and family.kinds == frozenset({"images"})


# ---------------------------------------------------------------------------------- training


def test_training_lowers_the_loss_and_separates_the_classes(trained):
    fitted, events, _ = trained
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert epochs[-1].train_loss < epochs[0].train_loss
    assert max(e.metrics["accuracy"] for e in epochs) >= 0.9
    X, y = bars(40, seed=1)
    assert (fitted.model.predict(X) == y).mean() >= 0.85
    assert not fitted.cancelled
    assert fitted.params["epochs_run"] == len(epochs) and 1 <= fitted.params["best_epoch"] <= len(epochs)
    assert fitted.name == "CNN (2 conv blocks, 16 px)"
    assert {"batch_size", "lr", "image_size", "channels", "augment"} <= fitted.params.keys()


def test_events_come_in_order_and_steps_are_throttled(trained):
    _, events, seconds = trained
    assert not any(isinstance(e, (RunStarted, RunFinished)) for e in events)
    assert isinstance(events[0], StepEnded)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == list(range(1, len(epochs) + 1))
    assert all(e.max_epochs == 8 for e in epochs)
    epoch_of_last_epoch_event = 0
    for event in events:  # no step is reported for an epoch that already ended
        if isinstance(event, EpochEnded):
            epoch_of_last_epoch_event = event.epoch
        elif isinstance(event, StepEnded):
            assert event.epoch == epoch_of_last_epoch_event + 1
            assert event.total_steps == 8 * 3
    steps = sum(isinstance(e, StepEnded) for e in events)
    assert steps <= 10 * seconds + 1


def test_stop_after_the_first_epoch_returns_a_usable_model():
    stop = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        if isinstance(event, EpochEnded):
            stop.set()

    fitted = CNNFamily().fit(context(emit, stop, params={"epochs": 10}))
    assert fitted.cancelled and not fitted.stopped_early
    assert fitted.params["epochs_run"] == 1 and fitted.params["best_epoch"] == 1
    assert sum(isinstance(e, EpochEnded) for e in events) == 1
    assert any(isinstance(e, Message) and "Stopped on request" in e.text for e in events)
    proba = fitted.model.predict_proba(bars(6)[0])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_time_budget_stops_early_not_cancelled():
    events = []
    fitted = CNNFamily().fit(context(events.append, time_budget=0.0))
    assert fitted.stopped_early and not fitted.cancelled
    assert any(isinstance(e, Message) and "time budget" in e.text for e in events)
    assert fitted.model.predict(bars(4)[0]).shape == (4,)


def test_early_stopping_restores_the_best_epoch():
    events = []
    ctx = context(events.append, params={"epochs": 30, "patience": 2})
    ctx.y_valid = 1 - ctx.y_valid  # validation labels swapped: the better it learns, the worse it validates
    fitted = CNNFamily().fit(ctx)
    losses = [e.valid_loss for e in events if isinstance(e, EpochEnded)]
    assert fitted.stopped_early and len(losses) < 30
    assert fitted.params["best_epoch"] == int(np.argmin(losses)) + 1
    assert any(isinstance(e, Message) and "Stopped early" in e.text for e in events)
    # the returned weights are the best epoch's: their validation loss (label-smoothed, as logged) matches
    proba = fitted.model.predict_proba(ctx.X_valid)
    smoothed = np.full(proba.shape, 0.1 / 2) + 0.9 * np.eye(2)[ctx.y_valid]
    loss = -(smoothed * np.log(proba)).sum(axis=1).mean()
    assert loss == pytest.approx(min(losses), rel=1e-4)


def test_same_seed_gives_the_same_model():
    X = bars(8, seed=3)[0]
    first = CNNFamily().fit(context(params={"epochs": 2})).model.predict_proba(X)
    second = CNNFamily().fit(context(params={"epochs": 2})).model.predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_max_epochs_caps_the_epochs():
    fitted = CNNFamily().fit(context(params={"epochs": 50}, max_epochs=2))
    assert fitted.params["epochs"] == 2 == fitted.params["epochs_run"]


def test_class_weights_when_imbalanced():
    events = []
    fitted = CNNFamily().fit(context(events.append, params={"epochs": 1}, imbalanced=True))
    assert fitted.params["class_weights"]
    assert any(isinstance(e, Message) and "weighs rare classes" in e.text for e in events)


def test_refuses_non_image_arrays():
    ctx = context()
    ctx.X_train = ctx.X_train.astype(np.float32)
    with pytest.raises(DataError, match="uint8"):
        CNNFamily().fit(ctx)


# ---------------------------------------------------------------------------------- prediction, saving


def test_predictions_are_probabilities_in_batches(trained):
    model = trained[0].model
    X = np.concatenate([bars(150, seed=s)[0] for s in (4, 5)])  # more than one prediction batch
    proba = model.predict_proba(X)
    assert proba.shape == (300, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    assert list(model.classes_) == [0, 1] and model.class_names == ("vertical", "horizontal")
    assert (model.image_size, model.channels) == (16, 1)


def test_wrong_image_shape_says_how_to_load(trained):
    with pytest.raises(DataError, match="image size 16 with 1 channel"):
        trained[0].model.predict(np.zeros((2, 3, 16, 16), dtype=np.uint8))


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    fitted = trained[0]
    family = CNNFamily()
    assert sorted(family.save(fitted, tmp_path)) == ["model.json", "model.pt"]
    loaded = family.load(tmp_path)
    X = bars(20, seed=6)[0]
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.model.predict_proba(X))
    assert loaded.class_names == fitted.model.class_names


def test_loading_a_missing_or_damaged_model_says_so(trained, tmp_path):
    with pytest.raises(RunError, match="missing"):
        CNNFamily().load(tmp_path)
    CNNFamily().save(trained[0], tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(RunError, match="damaged"):
        CNNFamily().load(tmp_path)


# ---------------------------------------------------------------------------------- saliency


def test_saliency_maps_shape_range_and_focus(trained):
    model = trained[0].model
    X, y = bars(6, seed=7)
    maps = saliency(model, X)
    assert maps.shape == (6, 16, 16) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.isclose(maps.reshape(6, -1).max(axis=1), 1.0).sum() >= 4  # most maps have a peak
    other = saliency(model, X, targets=1 - y)
    assert other.shape == maps.shape and not np.allclose(other, maps)
    assert all(p.grad is None for p in model.net.parameters())  # explaining does not touch the weights
