"""Image-run extras for the Evaluate page: the most confidently wrong validation images, with
Grad-CAM saliency maps showing where the network looked. Stored as plain arrays (``np.savez``,
no pickles) in ``gallery.npz`` inside the run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.types import ImageData

GALLERY_FILE = "gallery.npz"
GALLERY_SIZE = 16


def gallery_arrays(data: ImageData, result: Any, evaluation: Any, size: int = GALLERY_SIZE) -> dict[str, np.ndarray]:
    """Arrays for the gallery: images (uint8 N×C×H×W), saliency (float32 N×H×W), true and
    predicted class names, confidence, file names — most confidently wrong first."""
    from core.models.cnn import saliency

    worst = evaluation.worst.head(size)  # wrong predictions, lowest probability for the truth first
    positions = worst.index.to_numpy()  # positions within the validation split
    images = np.asarray(result.X_valid)[positions] if len(positions) else \
        np.empty((0, data.channels, data.image_size, data.image_size), dtype=np.uint8)
    lookup = {c: i for i, c in enumerate(data.class_names)}
    predicted_index = np.asarray([lookup[p] for p in worst["predicted"]], dtype=np.int64)
    maps = saliency(result.main.model, images, predicted_index) if len(images) else \
        np.empty((0, data.image_size, data.image_size), dtype=np.float32)
    return {
        "images": images.astype(np.uint8),
        "saliency": maps.astype(np.float32),
        "true": worst["true"].astype(str).to_numpy(dtype="U"),
        "predicted": worst["predicted"].astype(str).to_numpy(dtype="U"),
        "confidence": worst["confidence"].to_numpy(dtype=float) if "confidence" in worst else np.zeros(len(worst)),
        "files": np.asarray([data.paths[result.valid_index[p]] for p in positions], dtype="U"),
    }


def gallery_writer(data: ImageData, result: Any, evaluation: Any) -> Callable[[Path], None]:
    """A writer for ``core.runs.save_run``'s ``extra_files``: computes the gallery now, writes it there."""
    arrays = gallery_arrays(data, result, evaluation)

    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    return write
