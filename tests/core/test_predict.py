"""Prediction as a job: chunked with progress, answers first, CSV + Parquet written."""

import pandas as pd
import pytest

import core.predict
from core.errors import DataError
from core.events import RunFinished, StepEnded
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from tests.core.helpers import churn_like


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    path = folder / "churn.csv"
    churn_like(n=300).to_csv(path, index=False)
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(folder / "runs"),
                              overrides=Overrides(model="linear")))
    return folder, run_dir


def test_predict_job_writes_answers_first(run, monkeypatch):
    folder, run_dir = run
    monkeypatch.setattr(core.predict, "CHUNK_ROWS", 120)  # three slices: progress is reported per slice
    new = churn_like(n=300, seed=5).drop(columns=["churned"])
    new.to_csv(folder / "new.csv", index=False)
    events = []
    out = run_job(JobSpec(source=str(folder / "new.csv"), mode="predict", run_dir=str(run_dir),
                          out=str(folder / "out" / "p.csv"), runs_dir=str(folder / "runs")), events.append)
    frame = pd.read_csv(out)
    assert list(frame.columns[:2]) == ["predicted churned", "confidence"]
    assert len(frame) == 300 and frame["customer_id"].tolist() == new["customer_id"].tolist()
    assert [e.step for e in events if isinstance(e, StepEnded)] == [1, 2, 3]
    assert isinstance(events[-1], RunFinished) and events[-1].run == str(out)
    assert pd.read_parquet(out.with_suffix(".parquet")).shape == frame.shape


def test_missing_columns_are_named(run):
    folder, run_dir = run
    churn_like(n=20).drop(columns=["tenure", "churned"]).to_csv(folder / "bad.csv", index=False)
    with pytest.raises(DataError, match="tenure"):
        run_job(JobSpec(source=str(folder / "bad.csv"), mode="predict", run_dir=str(run_dir),
                        out=str(folder / "bad-out.csv"), runs_dir=str(folder / "runs")))


def test_predict_applies_the_runs_threshold(run, tmp_path):
    """Saved at the median probability, rows between it and 0.5 flip class; confidence follows."""
    import shutil

    import numpy as np

    from core.predict import predict_table
    from core.runs import save_threshold
    from tests.core.helpers import table

    folder, run_dir = run
    runs = tmp_path / "runs"
    copy = shutil.copytree(run_dir, runs / run_dir.name)
    new = table(churn_like(n=200, seed=7).drop(columns=["churned"]))
    before = predict_table(copy, new, runs)
    p_yes = before["probability of yes"].to_numpy()
    threshold = float(np.median(p_yes))
    assert abs(threshold - 0.5) > 0.02, "the median should be away from 0.5 for rows to flip"
    save_threshold(copy, threshold, runs)
    after = predict_table(copy, new, runs)
    flipped = before["predicted churned"] != after["predicted churned"]
    between = (p_yes >= min(threshold, 0.5)) & (p_yes < max(threshold, 0.5))
    assert flipped.any() and (flipped.to_numpy() == between).all()
    assert (after["predicted churned"] == np.where(p_yes >= threshold, "yes", "no")).all()
    expected = np.where(after["predicted churned"] == "yes", p_yes, 1 - p_yes)
    assert np.allclose(after["confidence"], expected)  # the probability of the class predicted
