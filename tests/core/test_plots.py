"""core.plots builds figures from result objects without computing metrics; core.progress folds logs."""

import numpy as np
import pandas as pd

from core import plots
from core.evaluation import Confusion, Curve, OperatingPoint
from core.events import EpochEnded, Message, RunFinished, RunStarted, StepEnded
from core.importance import Importance
from core.progress import summarise
from core.types import DeviceInfo, Plan

HISTORY = [EpochEnded(epoch=e, train_loss=1 / e, valid_loss=0.5 + abs(e - 4) / 10, max_epochs=10) for e in range(1, 9)]


def test_loss_curve_marks_the_best_epoch():
    fig = plots.loss_curve(HISTORY)
    assert [t.name for t in fig.data] == ["training loss", "validation loss"]
    assert list(fig.data[1].y) == [h.valid_loss for h in HISTORY]
    assert fig.layout.shapes[0].x0 == 4  # lowest validation loss


def test_long_series_are_thinned():
    history = [{"epoch": e, "train_loss": 1.0, "valid_loss": 1.0} for e in range(1, 10_001)]
    fig = plots.loss_curve(history)
    assert len(fig.data[0].x) <= plots.MAX_POINTS + 1 and fig.data[0].x[-1] == 10_000


def test_confusion_counts_and_shares():
    conf = Confusion(("a", "b"), np.array([[8, 2], [1, 9]]))
    counts = plots.confusion_matrix(conf)
    shares = plots.confusion_matrix(conf, normalised=True)
    assert counts.data[0].z.tolist() == [[8, 2], [1, 9]]
    assert np.allclose(shares.data[0].z, [[0.8, 0.2], [0.1, 0.9]])
    assert shares.data[0].text[0][0] == "80%"


def test_pr_and_roc_legends_carry_the_areas():
    curve = Curve("yes", np.array([0, 0.5, 1.0]), np.array([1.0, 0.8, 0.3]), 0.812, 0.3)
    pr = plots.pr_curves([curve])
    assert "AP 0.812" in pr.data[0].name and pr.data[1].y[0] == 0.3  # the no-skill line at prevalence
    roc = plots.roc_curves([curve])
    assert "AUC 0.812" in roc.data[0].name and "guessing" in roc.data[-1].name


def test_pr_curve_marks_the_operating_point_and_the_matrix_names_it():
    curve = Curve("yes", np.array([0, 0.5, 1.0]), np.array([1.0, 0.8, 0.3]), 0.812, 0.3)
    conf = Confusion(("no", "yes"), np.array([[8, 2], [1, 9]]))
    point = OperatingPoint(threshold=0.42, positive="yes", confusion=conf, precision=0.8, recall=0.5, n_flagged=10)
    assert len(plots.pr_curves([curve]).data) == 2  # no point asked for: none drawn
    marked = plots.pr_curves([curve], point).data[-1]
    assert marked.name == "threshold 0.42" and list(marked.x) == [0.5] and list(marked.y) == [0.8]
    empty = OperatingPoint(threshold=0.99, positive="yes", confusion=conf, precision=None, recall=0.0, n_flagged=0)
    assert len(plots.pr_curves([curve], empty).data) == 2  # nothing flagged: precision undefined, no dot
    title = plots.confusion_matrix(conf, threshold=0.42).layout.title.text
    assert title == "Confusion matrix (counts, threshold 0.42)"
    assert plots.confusion_matrix(conf).layout.title.text == "Confusion matrix (counts)"


def test_importance_bars_largest_on_top_with_error_bars():
    fig = plots.feature_importance([Importance("a", 0.3, 0.05), Importance("b", 0.1, 0.01)])
    assert list(fig.data[0].y) == ["b", "a"] and list(fig.data[0].error_x.array) == [0.01, 0.05]


def test_regression_figures():
    frame = pd.DataFrame({"true": [1.0, 2.0, 3.0], "predicted": [1.5, 2.0, 2.5]})
    frame["residual"] = frame["true"] - frame["predicted"]
    assert len(plots.predicted_vs_actual(frame).data) == 2
    assert list(plots.residuals(frame).data[0].y) == [-0.5, 0.0, 0.5]


def test_progress_summary():
    plan = Plan(model="mlp", task="binary", reasons=())
    events = [RunStarted(plan=plan, device=DeviceInfo("cpu", "x", 2), n_train=80, n_valid=20),
              StepEnded(step=5, epoch=1, train_loss=0.9, total_steps=50), *HISTORY[:2],
              Message("info", "hello")]
    p = summarise(events)
    assert p.started and p.n_train == 80 and p.fraction == 0.2 and p.steps.tolist() == [5]
    assert "Epoch 2 of at most 10" in p.status_line()
    done = summarise(events + [RunFinished(run="/x", cancelled=True)])
    assert done.fraction == 1.0 and "best model so far" in done.status_line()


def test_a_one_point_curve_has_no_lowest_loss_marker():
    fig = plots.loss_curve(HISTORY[:1])  # a model fitted in one go: nothing to point at
    assert len(fig.data[0].x) == 1 and not fig.layout.shapes and not fig.layout.annotations
