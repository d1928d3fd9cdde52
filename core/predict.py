"""Apply a saved run to new data (the Predict page, ``python -m core predict``, predict jobs).

The model is loaded once and applied in slices of rows, with ``StepEnded`` events as progress,
so a million-row table shows how far it is. The answers come first, then the input columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError
from core.evaluation import class_probabilities, decide
from core.events import Callback, StepEnded, StopFlag, ignore
from core.run_record import RunRecord, read_run
from core.runs import load_model, resolve_run
from core.types import TableData

CHUNK_ROWS = 100_000


def predict_table(run_dir: str | Path, data: TableData, runs_dir: str | Path,
                  on_event: Callback = ignore, stop: StopFlag | None = None) -> pd.DataFrame:
    """The table's prediction columns followed by its own columns."""
    model, run = load_model(run_dir, runs_dir)
    frame = data.frame
    n_chunks = max(1, -(-len(frame) // CHUNK_ROWS))
    parts = []
    for i in range(n_chunks):
        if stop is not None and stop.is_set():
            raise DataError("Prediction was stopped before it finished; nothing was saved.")
        parts.append(predictions_for_table(model, run, frame.iloc[i * CHUNK_ROWS:(i + 1) * CHUNK_ROWS]))
        on_event(StepEnded(step=i + 1, epoch=1, train_loss=float("nan"), total_steps=n_chunks))
    out = pd.concat(parts) if len(parts) > 1 else parts[0]
    answers = [c for c in out.columns if c not in frame.columns]
    return out[answers + list(frame.columns)]


def predictions_for_table(model: Any, run: RunRecord, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the run's prediction (and class probabilities) appended as new columns."""
    if run.kind != "tabular":
        raise DataError("This run was trained on images: give it images, not a table.")
    needed = list(run.data.feature_columns)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(f"'{c}'" for c in missing[:8]) + (" …" if len(missing) > 8 else "")
        raise DataError(f"The new data lacks {len(missing)} column(s) the model needs: {shown}. Use a file with "
                        "the same columns as the training data (the target column may be missing).")
    if frame.empty:
        raise DataError("The new data has no rows to predict.")
    X = frame[needed]
    out = frame.copy()
    label = f"predicted {run.data.target}"
    if run.task == "regression":
        out[label] = model.predict(X)
        return out
    proba = class_probabilities(model, X, run.classes)
    index = _decide(proba, run)
    out[label] = np.asarray(run.classes, dtype=object)[index]
    out["confidence"] = proba[np.arange(len(proba)), index]
    for i, c in enumerate(run.classes):
        out[f"probability of {c}"] = proba[:, i]
    return out


def _decide(proba: np.ndarray, run: RunRecord) -> np.ndarray:
    """Predicted class indexes: a binary run's own threshold, else the most probable class.
    The confidence shown beside is the probability of the class predicted."""
    return decide(proba, run.classes, run.threshold.value if run.threshold is not None else None)


def predict_images(run_dir: str | Path, source: Any, name: str | None,
                   runs_dir: str | Path) -> pd.DataFrame:
    """One row per image: file name, predicted class, confidence and class probabilities."""
    from core.images import load_unlabelled_images

    model, run = load_model(run_dir, runs_dir)
    if run.kind != "images":
        raise DataError("This run was trained on a table: give it a table file, not images.")
    images, names = load_unlabelled_images(source, name=name, image_size=run.data.image_size,
                                           channels=run.data.channels)
    classes = run.classes
    proba = class_probabilities(model, images, classes)
    index = _decide(proba, run)
    out = pd.DataFrame({"file": names, "predicted class": np.asarray(classes, dtype=object)[index],
                        "confidence": proba[np.arange(len(proba)), index]})
    for i, c in enumerate(classes):
        out[f"probability of {c}"] = proba[:, i]
    return out


def predict_file(run_dir: str | Path, path: str | Path, runs_dir: str | Path,
                 name: str | None = None, on_event: Callback = ignore, stop: StopFlag | None = None) -> pd.DataFrame:
    """Predictions for a table file, or an image folder / zip, at ``path``."""
    from core.datasets import load_table

    path = Path(path)
    if not path.exists():
        raise DataError(f"There is no file or folder '{path}'. Check the path.")
    if read_run(resolve_run(run_dir, runs_dir), predictions=False).kind == "images":
        return predict_images(run_dir, path, name or path.name, runs_dir)
    return predict_table(run_dir, load_table(path, name=name), runs_dir, on_event, stop)


def write_predictions(frame: pd.DataFrame, out: str | Path) -> Path:
    """Save predictions as CSV (for people) and Parquet beside it (for a quick preview)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    _parquet_safe(frame).to_parquet(out.with_suffix(".parquet"), index=False)
    return out.with_suffix(".csv")


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types (as uploads have) become text, which Parquet can store."""
    mixed = [c for c in frame.columns if frame[c].dtype == object]
    return frame.astype({c: str for c in mixed}) if mixed else frame
