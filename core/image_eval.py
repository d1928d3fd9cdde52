"""Image-run extras for the Evaluate page: the most confidently wrong validation images, with
Grad-CAM saliency maps showing where the network looked. Stored as plain arrays (``np.savez``,
no pickles) in ``gallery.npz`` inside the run folder.

torch is imported only when saliency is computed: ``ui.views`` and the offline report import this
module to read the gallery, and the app should not load torch to start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.types import ImageData

if TYPE_CHECKING:
    import torch

    from core.models.cnn import ConvNet, ImageClassifier

GALLERY_FILE = "gallery.npz"
GALLERY_SIZE = 16


def gallery_arrays(data: ImageData, result: Any, evaluation: Any, size: int = GALLERY_SIZE) -> dict[str, np.ndarray]:
    """Arrays for the gallery: images (uint8 N×C×H×W), saliency (float32 N×H×W), true and
    predicted class names, confidence, file names — most confidently wrong first."""
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


@dataclass(frozen=True, eq=False)
class Gallery:
    """The most confidently wrong validation images of an image run (``gallery.npz``)."""

    images: np.ndarray  # uint8 N×C×H×W
    saliency: np.ndarray | None  # float N×H×W, larger = mattered more to the prediction
    titles: tuple[str, ...]
    true: tuple[str, ...] = ()  # each image's true class, predicted class and the model's confidence
    predicted: tuple[str, ...] = ()
    confidence: tuple[float, ...] = ()


def read_gallery(run_dir: str | Path) -> Gallery | None:
    """Read ``gallery.npz`` (plain arrays, never pickles); None when the run has none."""
    path = Path(run_dir) / GALLERY_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        if "images" not in arrays or len(arrays["images"]) == 0:
            return None
        images = arrays["images"]
        saliency = arrays["saliency"] if "saliency" in arrays else None
        n = len(images)
        true = arrays["true"] if "true" in arrays else [""] * n
        predicted = arrays["predicted"] if "predicted" in arrays else [""] * n
        confidence = arrays["confidence"] if "confidence" in arrays else [float("nan")] * n
        files = arrays["files"] if "files" in arrays else [""] * n
    titles = tuple(f"true {t} → said {p} ({c:.0%})" + (f"<br>{Path(str(f)).name}" if str(f) else "")
                   for t, p, c, f in zip(true, predicted, confidence, files, strict=True))
    return Gallery(images=images, saliency=saliency, titles=titles, true=tuple(map(str, true)),
                   predicted=tuple(map(str, predicted)), confidence=tuple(float(c) for c in confidence))


def saliency(model: ImageClassifier, images: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM maps (N×H×W float32 in [0, 1]): where the last conv block saw evidence for the class.

    ``targets`` are class indexes to explain; by default each image's predicted class.
    """
    import torch

    from core.models.cnn import PREDICT_BATCH

    X = model.check(images)
    net, size = model.net, model.image_size
    net.eval()
    captured: dict[str, torch.Tensor] = {}
    hook = net.features[-1].register_forward_hook(lambda _m, _i, out: captured.update(act=out))
    maps = [np.empty((0, size, size), dtype=np.float32)]
    try:
        for start in range(0, len(X), PREDICT_BATCH):
            batch = torch.tensor(X[start:start + PREDICT_BATCH], device=model.device)
            wanted = None if targets is None else np.asarray(targets)[start:start + PREDICT_BATCH]
            maps.append(_grad_cam(net, batch, wanted, captured, size))
    finally:
        hook.remove()
    return np.concatenate(maps)


def _grad_cam(net: ConvNet, batch: torch.Tensor, targets: np.ndarray | None, captured: dict[str, torch.Tensor],
              size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    with torch.enable_grad():
        logits = net(batch)
        activation = captured["act"]
        target = (logits.argmax(dim=1) if targets is None
                  else torch.as_tensor(targets, dtype=torch.int64, device=logits.device))
        score = logits.gather(1, target[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, activation)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.clamp(0, 1).cpu().numpy().astype(np.float32)
