"""Section 3: samples per second of Trainboard's torch loops vs a minimal hand-written loop.

Same tensors, same module (built by Trainboard's own builders), same batch size, optimiser and
learning-rate schedule, the same validation pass after each epoch, ``torch.set_num_threads(2)``,
a fixed number of epochs (patience far above it). Each side in a fresh process.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.common import Config, Section, Spread, Table, interleaved, log, ratios, run_child

TARGET = 0.95
THREADS = 2
MLP_FEATURES = 20


# ------------------------------------------------------------------ MLP


def _mlp_data(n_rows: int):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, MLP_FEATURES)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] * X[:, 2] + rng.logistic(size=n_rows) > 0, "yes", "no")
    n_valid = n_rows // 10
    return X[n_valid:], y[n_valid:], X[:n_valid], y[:n_valid]


def mlp_child(n_rows: int, epochs: int, variant: str) -> dict[str, Any]:
    """Child task: ``TorchMLPClassifier.fit`` with a recording callback, or the hand loop."""
    import torch

    torch.set_num_threads(THREADS)
    X, y, X_valid, y_valid = _mlp_data(n_rows)
    if variant == "trainboard":
        from core.models.mlp import TorchMLPClassifier

        events: list = []
        model = TorchMLPClassifier(max_epochs=epochs, patience=10**6, callback=events.append)
        t0 = time.perf_counter()
        model.fit(X, y, X_val=X_valid, y_val=y_valid)
        elapsed = time.perf_counter() - t0
        return {"seconds": elapsed, "samples": len(X) * epochs, "batch_size": model.batch_size_,
                "events": len(events), "epochs": model.n_epochs_}
    import core.models.mlp  # noqa: F401  (imports outside the timed part, as on the Trainboard side)

    t0 = time.perf_counter()
    batch_size = _hand_mlp(X, y, X_valid, y_valid, epochs)
    return {"seconds": time.perf_counter() - t0, "samples": len(X) * epochs, "batch_size": batch_size}


def _hand_mlp(X, y, X_valid, y_valid, epochs: int) -> int:
    """The loop a practitioner writes: shuffled index batches, AdamW, a validation pass per epoch."""
    import numpy as np
    import torch
    from torch import nn

    from core.models.mlp import auto_batch_size, build_module

    classes, codes = np.unique(y, return_inverse=True)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(codes.astype(np.int64))
    Xv_t = torch.from_numpy(X_valid)
    yv_t = torch.from_numpy(np.searchsorted(classes, y_valid).astype(np.int64))
    batch_size = auto_batch_size(len(X))
    torch.manual_seed(0)
    module = build_module([X.shape[1], 256, 128, len(classes)], 0.1)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        module.train()
        order = torch.randperm(len(X_t))
        for start in range(0, len(X_t), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(module(X_t[idx]), y_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        module.eval()
        with torch.inference_mode():
            float(loss_fn(module(Xv_t), yv_t))
    return batch_size


# ------------------------------------------------------------------ CNN


def _image_split(source: str):
    import numpy as np

    from core.images import load_images
    from core.training import split_rows

    data = load_images(source)
    train, valid = split_rows(data.labels, "multiclass", 0.2, 0)
    return data, data.images[train], data.labels[train], data.images[valid], data.labels[valid], np


def cnn_child(source: str, epochs: int, variant: str, augment: bool) -> dict[str, Any]:
    """Child task: the cnn family's fit with events on, or the hand loop on the same network."""
    import torch

    torch.set_num_threads(THREADS)
    data, X, y, X_valid, y_valid, _ = _image_split(source)
    if variant == "trainboard":
        from core.device import pick_device
        from core.events import NeverStop
        from core.models.base import FitContext
        from core.models.cnn_family import CNNFamily

        events: list = []
        ctx = FitContext(X_train=X, y_train=y, X_valid=X_valid, y_valid=y_valid, task="multiclass",
                         classes=data.class_names, params={"epochs": epochs, "patience": 10**6, "augment": augment},
                         seed=0, device=pick_device("cpu"), emit=events.append, stop=NeverStop())
        t0 = time.perf_counter()
        fitted = CNNFamily().fit(ctx)
        elapsed = time.perf_counter() - t0
        return {"seconds": elapsed, "samples": len(X) * epochs, "batch_size": fitted.params["batch_size"],
                "events": len(events), "epochs": fitted.params["epochs_run"]}
    import core.models.cnn  # noqa: F401  (imports outside the timed part, as on the Trainboard side)

    t0 = time.perf_counter()
    batch_size = _hand_cnn(X, y, X_valid, y_valid, len(data.class_names), epochs, augment)
    return {"seconds": time.perf_counter() - t0, "samples": len(X) * epochs, "batch_size": batch_size}


def _hand_cnn(X, y, X_valid, y_valid, n_classes: int, epochs: int, augment: bool) -> int:
    """A plain loop over the same ``ConvNet`` (same widths, channels-last), AdamW + one-cycle
    schedule, label smoothing, the same augmentation function, a validation pass per epoch."""
    import numpy as np
    import torch
    from torch import nn

    from core.models.cnn import (
        DEFAULT_LR,
        LABEL_SMOOTHING,
        WARMUP_SHARE,
        WEIGHT_DECAY,
        ConvNet,
        _augment,
        stem_stride_for,
        widths_for,
    )

    n = len(X)
    batch_size = 32 if n < 1_000 else 64 if n < 5_000 else 128
    size, channels = X.shape[-1], X.shape[1]
    pixels = X.astype(np.float32) / 255.0
    mean, std = pixels.mean(axis=(0, 2, 3)).tolist(), pixels.std(axis=(0, 2, 3)).tolist()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = ConvNet(channels, n_classes, widths_for(size), mean, std, stem_stride=stem_stride_for(size)).place("cpu")
    X_t, y_t = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))
    Xv_t, yv_t = torch.from_numpy(np.ascontiguousarray(X_valid)), torch.from_numpy(y_valid.astype(np.int64))
    n_batches = max(1, n // batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=DEFAULT_LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=DEFAULT_LR, total_steps=epochs * n_batches,
                                                   pct_start=WARMUP_SHARE)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    for _ in range(epochs):
        net.train()
        for batch in torch.tensor_split(torch.randperm(n, generator=generator), n_batches):
            images = _augment(X_t[batch].float(), generator, False) if augment else X_t[batch]
            loss = loss_fn(net(images), y_t[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        net.eval()
        with torch.inference_mode():
            for start in range(0, len(Xv_t), 256):
                float(loss_fn(net(Xv_t[start:start + 256]), yv_t[start:start + 256]))
    return batch_size


# ------------------------------------------------------------------ parent side


def run(cfg: Config) -> Section:
    section = Section(
        "3. MLP and CNN training throughput",
        "Samples per second over a fixed number of epochs (early stopping out of reach), Trainboard's loop with "
        "its callback recording events vs a minimal hand-written loop on the same tensors and the same network, "
        f"batch size, optimiser (and schedule), a validation pass per epoch; `torch.set_num_threads({THREADS})`; "
        "each fit in a fresh process, repeats interleaved.")
    table = Table(["loop", "data", "epochs", "batch", "hand-written samples/s", "Trainboard samples/s",
                   "ratio", "target", "result"])
    section.tables.append(table)
    cases = [("MLP (256-128)", f"{cfg.mlp_rows:,} rows × {MLP_FEATURES}", "torch_loops:mlp_child",
              {"n_rows": cfg.mlp_rows, "epochs": cfg.mlp_epochs})]
    for name, augment in (("digits", True), ("shapes", True)):
        if cfg.quick and name != "digits":
            continue
        cases.append((f"CNN, augmentation {'on' if augment else 'off'}", f"{name}.zip", "torch_loops:cnn_child",
                      {"source": f"sample_data/{name}.zip", "epochs": cfg.cnn_epochs, "augment": augment}))
    for label, data_name, task, kwargs in cases:
        log(f"torch loops: {label} on {data_name}")
        details: dict[str, list[dict]] = {"hand": [], "trainboard": []}

        def measure(variant: str, _repeat: int, task=task, kwargs=kwargs, details=details) -> float:
            data = run_child(task, variant=variant, **kwargs).data
            details[variant].append(data)
            return data["samples"] / data["seconds"]

        rates = interleaved(["hand", "trainboard"], cfg.repeats, measure)
        ratio = ratios(rates["trainboard"], rates["hand"])
        first = details["trainboard"][0]
        table.add(label, data_name, kwargs["epochs"], first["batch_size"], Spread.of(rates["hand"]).text(0),
                  Spread.of(rates["trainboard"]).text(0), ratio.text(3), f"≥ {TARGET}",
                  section.judge(f"{label} throughput on {data_name}", ratio, TARGET, higher_is_better=True))
        if first["epochs"] != kwargs["epochs"] or not math.isfinite(ratio.median):
            section.notes.append(f"{label}: Trainboard ran {first['epochs']} epochs, not {kwargs['epochs']}.")
    return section
