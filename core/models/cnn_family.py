"""The "cnn" family's facts: a compact convolutional network trained from scratch on the images.
Fitting, saving and loading live in ``core.models.cnn`` (torch), imported on first use."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from core.models.base import DataSummary, DeferredFamily, FitContext, Fitted, Tuned


def default_epochs(n_train: int) -> int:
    """About 30,000 image presentations, between 10 and 30 epochs."""
    return int(np.clip(math.ceil(30_000 / max(n_train, 1)), 10, 30))


class CNNFamily(DeferredFamily):
    key = "cnn"
    label = "Convolutional neural network"
    family = "torch"
    kinds = frozenset({"images"})
    curve_unit = "epoch"
    comparison_order = 1  # first among the image candidates: it needs no pretrained package
    trainer = "core.models.cnn:CNNTrainer"

    def auto_preference(self, data: DataSummary) -> int:
        return 1  # the images' model, trained from scratch

    def why(self, data: DataSummary) -> str:
        return ("A convolutional neural network (CNN): it learns visual patterns — edges, then shapes — "
                "directly from the pixels.")

    def tune(self, data: DataSummary) -> Tuned:
        epochs = data.max_epochs or default_epochs(int(data.n_rows * (1 - data.valid_fraction)))
        flip = bool(data.user_params.get("flip"))
        augment = ("Each epoch the training images are shifted and zoomed a little at random, so the network "
                   "learns the shapes, not their exact position."
                   + (" You turned on mirroring: pictures are also flipped left-right at random." if flip else
                      " Mirroring is off (it would confuse classes such as 'b' and 'd'); turn it on in the "
                      "settings if a mirrored picture keeps its class."))
        passes = (f"Up to {epochs} passes over the data (epochs), stopping early when the validation loss stops "
                  "improving; the best epoch's weights are kept.")
        return Tuned({"epochs": epochs}, (augment, passes))

    def fit(self, ctx: FitContext) -> Fitted:
        if not ctx.params.get("epochs"):  # a context not made from a plan (tests, scripts)
            ctx = replace(ctx, params={**ctx.params, "epochs": default_epochs(len(ctx.X_train))})
        return super().fit(ctx)
