"""Apply a saved run to new data (the Predict page and ``python -m core predict``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError
from core.evaluation import class_probabilities
from core.runs import load_model, predictions_for_table
from core.types import TableData


def predict_table(run_dir: str | Path, data: TableData, runs_dir: str | Path | None = None) -> pd.DataFrame:
    """The uploaded table with prediction columns appended."""
    model, manifest = load_model(run_dir, runs_dir)
    return predictions_for_table(model, manifest, data.frame)


def predict_images(run_dir: str | Path, source: Any, name: str | None = None,
                   runs_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per image: file name, predicted class, confidence and class probabilities."""
    from core.images import load_unlabelled_images

    model, manifest = load_model(run_dir, runs_dir)
    if manifest["data"]["kind"] != "images":
        raise DataError("This run was trained on a table: give it a table file, not images.")
    data = manifest["data"]
    images, names = load_unlabelled_images(source, name=name, image_size=data["image_size"],
                                           channels=data["channels"])
    classes = tuple(data["classes"])
    proba = class_probabilities(model, images, classes)
    out = pd.DataFrame({"file": names, "predicted class": np.asarray(classes, dtype=object)[proba.argmax(axis=1)],
                        "confidence": proba.max(axis=1)})
    for i, c in enumerate(classes):
        out[f"probability of {c}"] = proba[:, i]
    return out


def predict_file(run_dir: str | Path, path: str | Path, runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Predictions for a table file, or an image folder / zip, at ``path``."""
    from core.datasets import load_table
    from core.runs import load_manifest, resolve_run

    path = Path(path)
    if not path.exists():
        raise DataError(f"There is no file or folder '{path}'. Check the path.")
    kind = load_manifest(resolve_run(run_dir, runs_dir))["data"]["kind"]
    if kind == "images":
        return predict_images(run_dir, path, path.name, runs_dir)
    return predict_table(run_dir, load_table(path), runs_dir)
