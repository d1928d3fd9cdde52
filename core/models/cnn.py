"""How the ``cnn`` family (its facts: ``core.models.cnn_family``) trains: a compact convolutional
network for images, in PyTorch.

The network (blocks of two conv–BN–ReLU layers, global average pooling, a linear head) takes raw
uint8 images N×C×H×W and normalises inside (per-channel mean and std of the training images are
buffers), so a saved model needs nothing else to predict. Training:
AdamW with a one-cycle schedule, label smoothing, light shift/scale augmentation on tensors
(mirroring only when asked: it would confuse digits and letters), early stopping on the
validation loss with the best weights restored, in ``core.models.torch_loop``'s loop.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import DataError
from core.events import Message
from core.models.base import FitContext, Fitted
from core.models.torch_loop import (
    Batches,
    EarlyStop,
    Loop,
    Schedule,
    StepEvents,
    StopOrBudget,
    reading_saved_model,
    seeded,
)

DEFAULT_WIDTH = 16  # channels of the first block on the CPU: 3× faster than 32 there, 99% on both samples
ACCELERATOR_WIDTH = 32  # on CUDA/MPS the wider network costs little
MAX_WIDTH = 256
DEFAULT_LR = 3e-3
WEIGHT_DECAY = 0.01
LABEL_SMOOTHING = 0.1
DROPOUT = 0.3
PATIENCE = 5
CONVS_PER_BLOCK = 2  # one conv per block reached only ~50% on the shapes sample, two reach 99%
WARMUP_SHARE = 0.25  # the first quarter of the schedule raises the learning rate; no early stop in it
MAX_SHIFT = 0.125  # random shift, as a share of the image side
MAX_ZOOM = 0.1  # random zoom in or out by up to 10%
PREDICT_BATCH = 256
STATS_SAMPLE = 4096  # images used for the normalisation statistics
FORMAT = "trainboard-cnn"


# --------------------------------------------------------------------------------------------
# The network


def conv_blocks_for(image_size: int) -> int:
    """Blocks so the last one works on a map of about 6–8 pixels: 3 for 32 px, 4 for 64, 5 for 96."""
    return max(2, min(6, 1 + round(math.log2(image_size / 8))))


def widths_for(image_size: int, width: int = DEFAULT_WIDTH) -> list[int]:
    """Channels per block, doubling from ``width`` up to ``MAX_WIDTH``: 16-32-64…"""
    return [min(width * 2**i, MAX_WIDTH) for i in range(conv_blocks_for(image_size))]


def stem_stride_for(image_size: int) -> int:
    """2 from 64 px up: the first block then halves the image by a strided convolution instead of a
    max-pool after it, which made 64 and 96 px training 1.4–1.8× faster on the CPU (same output size)."""
    return 2 if image_size >= 64 else 1


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class ConvNet(nn.Module):
    """Blocks of (conv–BN–ReLU)×2, the map halved between blocks; global average pooling, dropout, linear head.

    Takes uint8 (or float 0–255) images and normalises them with its ``mean``/``std`` buffers.
    """

    def __init__(self, channels: int, n_classes: int, widths: list[int], mean: list[float], std: list[float],
                 dropout: float = DROPOUT, stem_stride: int = 1, convs_per_block: int = CONVS_PER_BLOCK) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        blocks, c_in = [], channels
        for i, width in enumerate(widths):
            stride = stem_stride if i == 0 else 1
            layers = _conv_bn_relu(c_in, width, stride)
            for _ in range(convs_per_block - 1):
                layers += _conv_bn_relu(width, width, 1)
            if i < len(widths) - 1 and stride == 1:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c_in, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / 255.0 - self.mean) / self.std
        if x.device.type != "mps":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))

    def place(self, device: torch.device | str) -> ConvNet:
        """Move to ``device`` in its fastest memory layout: channels-last on CPU (15–35% faster
        here, measured) and CUDA; the default layout on Apple MPS."""
        device = torch.device(device)
        layout = torch.contiguous_format if device.type == "mps" else torch.channels_last
        return self.to(device=device, memory_format=layout)


# --------------------------------------------------------------------------------------------
# The fitted model: what predicts, saves and explains


class ImageClassifier:
    """A trained ``ConvNet`` that predicts from raw uint8 images N×C×H×W, in batches."""

    def __init__(self, net: ConvNet, spec: dict[str, Any]) -> None:
        self.net = net
        self.spec = spec
        self.class_names = tuple(spec["class_names"])
        self.image_size = int(spec["image_size"])
        self.channels = int(spec["channels"])
        self.classes_ = np.arange(len(self.class_names))

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> ImageClassifier:
        """Move the network (e.g. to "cuda"); inputs follow it."""
        self.net.place(device)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K), float64 rows summing to 1, columns in ``class_names`` order."""
        X = self.check(X)
        self.net.eval()
        out = [np.empty((0, len(self.class_names)))]
        with torch.inference_mode():
            for start in range(0, len(X), PREDICT_BATCH):
                logits = self.net(torch.tensor(X[start:start + PREDICT_BATCH], device=self.device))
                out.append(torch.softmax(logits.cpu().double(), dim=1).numpy())  # MPS has no float64
        return np.concatenate(out)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class indexes (int64) into ``class_names``."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    def check(self, X: np.ndarray) -> np.ndarray:
        """``X`` as uint8 N×C×S×S of this model's shape, or a ``DataError`` that says how to load it."""
        X = np.asarray(X)
        expected = (self.channels, self.image_size, self.image_size)
        if X.ndim != 4 or X.shape[1:] != expected or X.dtype != np.uint8:
            raise DataError(f"These images have shape {X.shape[1:]} ({X.dtype}) but the model expects uint8 "
                            f"{expected} (channels, height, width). Load them at image size {self.image_size} "
                            f"with {self.channels} channel(s).")
        return X


# --------------------------------------------------------------------------------------------
# Fitting for the family


class CNNTrainer:
    """How ``core.models.cnn_family.CNNFamily`` fits, saves and loads (this module imports torch)."""

    def fit(self, ctx: FitContext) -> Fitted:
        """Train on uint8 images; returns the best epoch's weights (also when stopped)."""
        settings = _settings(ctx)
        device = torch.device(ctx.device.type)
        with seeded(ctx.seed, device) as generator:
            model = _build(ctx, settings, device)
            loop = _loop(ctx, settings, model.net, generator, device).run()
        name = f"CNN ({len(settings['widths'])} conv blocks, {settings['image_size']} px)"
        ran = {"epochs_run": loop.epochs_run, "best_epoch": loop.best_epoch, "steps": loop.step,
               "device": device.type}
        return Fitted(model=model, params={**settings, **ran}, name=name,
                      stopped_early=loop.stopped_early, cancelled=loop.cancelled)

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        """``model.pt`` (the state dict only) and ``model.json`` (the architecture)."""
        model: ImageClassifier = fitted.model
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.net.state_dict().items()}, folder / "model.pt")
        (folder / "model.json").write_text(json.dumps(model.spec, indent=2), encoding="utf-8")
        return ["model.pt", "model.json"]

    def load(self, folder: Path) -> ImageClassifier:
        """Rebuild the network from ``model.json`` and load ``model.pt`` (tensors only, on the CPU)."""
        folder = Path(folder)
        with reading_saved_model(folder):
            spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            net = _net_from_spec(spec).place("cpu")
            state = torch.load(folder / "model.pt", weights_only=True, map_location="cpu")
            net.load_state_dict(state)
        net.eval()
        return ImageClassifier(net, spec)


def _net_from_spec(spec: dict[str, Any]) -> ConvNet:
    if spec.get("format") != FORMAT:
        raise ValueError("not a Trainboard CNN")
    return ConvNet(int(spec["channels"]), len(spec["class_names"]), [int(w) for w in spec["widths"]],
                   [float(m) for m in spec["normalisation"]["mean"]], [float(s) for s in spec["normalisation"]["std"]],
                   float(spec["dropout"]), int(spec["stem_stride"]), int(spec["convs_per_block"]))


def _build(ctx: FitContext, settings: dict[str, Any], device: torch.device) -> ImageClassifier:
    mean, std = _channel_stats(ctx.X_train, ctx.seed)
    spec = {"format": FORMAT, "version": 1, "channels": settings["channels"], "image_size": settings["image_size"],
            "widths": settings["widths"], "stem_stride": stem_stride_for(settings["image_size"]),
            "convs_per_block": settings["convs_per_block"], "n_classes": len(ctx.classes),
            "class_names": list(ctx.classes), "dropout": DROPOUT,
            "normalisation": {"input": "uint8 pixels / 255", "mean": mean, "std": std}}
    return ImageClassifier(_net_from_spec(spec).place(device), spec)


def _channel_stats(X: np.ndarray, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixels/255 on a sample of images (a float copy of all could be huge)."""
    rng = np.random.default_rng(seed)
    sample = X if len(X) <= STATS_SAMPLE else X[np.sort(rng.choice(len(X), STATS_SAMPLE, replace=False))]
    pixels = sample.astype(np.float32) / 255.0
    mean = pixels.mean(axis=(0, 2, 3))
    std = np.maximum(pixels.std(axis=(0, 2, 3)), 1e-3)
    return [float(m) for m in mean], [float(s) for s in std]


def _settings(ctx: FitContext) -> dict[str, Any]:
    """Effective settings: the data's shape, sizes chosen from the data, and the user's overrides."""
    X, params = ctx.X_train, ctx.params
    if X.ndim != 4 or X.dtype != np.uint8 or X.shape[1] not in (1, 3) or X.shape[2] != X.shape[3]:
        raise DataError("The CNN needs square uint8 images (N×C×S×S with 1 or 3 channels). Load the images "
                        "with the image loader.")
    n, size = len(X), int(X.shape[-1])
    epochs = int(params["epochs"])  # the family's tuning sets it (``CNNFamily.fit`` for a bare context)
    if ctx.max_epochs:
        epochs = min(epochs, int(ctx.max_epochs))
    # Small sets get small batches, for enough optimiser steps per epoch (shapes: 100% with 32, 99% with 64).
    batch_size = int(params.get("batch_size") or (32 if n < 1_000 else 64 if n < 5_000 else 128))
    width = int(params.get("width") or (DEFAULT_WIDTH if ctx.device.type == "cpu" else ACCELERATOR_WIDTH))
    augment = bool(params.get("augment", True))
    flip = augment and bool(params.get("flip", False))
    return {"epochs": max(1, epochs), "batch_size": max(1, min(batch_size, n)),
            "lr": float(params.get("lr") or DEFAULT_LR), "width": width, "widths": widths_for(size, width),
            "convs_per_block": int(params.get("convs_per_block") or CONVS_PER_BLOCK),
            "image_size": size, "channels": int(X.shape[1]),
            "augment": ("shift+zoom+flip" if flip else "shift+zoom") if augment else "none", "flip": flip,
            "label_smoothing": LABEL_SMOOTHING, "weight_decay": WEIGHT_DECAY,
            "patience": int(params.get("patience") or PATIENCE), "class_weights": bool(ctx.imbalanced)}


# --------------------------------------------------------------------------------------------
# Training


def _loop(ctx: FitContext, settings: dict[str, Any], net: ConvNet, generator: torch.Generator,
          device: torch.device) -> Loop:
    """AdamW with a one-cycle schedule stepped per batch, label smoothing, augmentation drawn from
    the fit's generator; no early stop during the schedule's warm-up."""
    X, y = _tensor(ctx.X_train, device), _labels(ctx.y_train, device)
    X_valid, y_valid = _tensor(ctx.X_valid, device), _labels(ctx.y_valid, device)
    epochs, batches = settings["epochs"], Batches(len(X), settings["batch_size"], device, even=True)
    criterion = nn.CrossEntropyLoss(weight=_class_weights(ctx, device), label_smoothing=LABEL_SMOOTHING)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings["lr"], weight_decay=WEIGHT_DECAY)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings["lr"],
                                                    total_steps=epochs * len(batches), pct_start=WARMUP_SHARE)
    augment, flip = settings["augment"] != "none", settings["flip"]

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        images = _augment(X[index].float(), generator, flip) if augment else X[index]
        return criterion(net(images), y[index])

    hooks = [Schedule(one_cycle, per="batch"),
             EarlyStop(settings["patience"], warmup_epochs=math.ceil(WARMUP_SHARE * epochs)),
             StopOrBudget(ctx.stop, ctx.time_budget, ctx.started), StepEvents(ctx.emit)]
    return Loop(net, optimizer, batches, batch_loss, lambda: _evaluate(net, criterion, X_valid, y_valid), epochs,
                generator=generator, hooks=hooks, emit=ctx.emit)


def _class_weights(ctx: FitContext, device: torch.device) -> torch.Tensor | None:
    """Inverse class frequencies when the planner found the classes imbalanced."""
    if not ctx.imbalanced:
        return None
    counts = np.bincount(np.asarray(ctx.y_train), minlength=len(ctx.classes))
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1))
    ctx.emit(Message("info", "Classes are unevenly sized: the loss weighs rare classes more."))
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _evaluate(net: ConvNet, criterion: nn.Module, X_valid: torch.Tensor, y_valid: torch.Tensor
              ) -> tuple[float, dict[str, float]]:
    """Validation loss (same criterion as training, for comparable curves) and accuracy; NaN for both
    without a validation set."""
    net.eval()
    n = len(X_valid)
    if n == 0:
        return float("nan"), {"accuracy": float("nan")}
    loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, n, PREDICT_BATCH):
            logits = net(X_valid[start:start + PREDICT_BATCH])
            target = y_valid[start:start + PREDICT_BATCH]
            loss += float(criterion(logits, target)) * len(target)
            correct += int((logits.argmax(dim=1) == target).sum())
    return loss / n, {"accuracy": correct / n}


def _tensor(X: np.ndarray, device: torch.device) -> torch.Tensor:
    """Images as a uint8 tensor on ``device``, without a copy on the CPU when the array allows it."""
    X = np.ascontiguousarray(X, dtype=np.uint8)
    return (torch.from_numpy(X) if X.flags.writeable else torch.tensor(X)).to(device)


def _labels(y: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device)


def _augment(images: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
    """Random shift and zoom (and mirror when ``flip``) per image, edges repeated, in one grid_sample."""
    n = images.shape[0]
    zoom = 1 + (torch.rand(n, generator=generator) * 2 - 1) * MAX_ZOOM
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * MAX_SHIFT)  # grid spans 2 units
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = zoom * mirror
    theta[:, 1, 1] = zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
