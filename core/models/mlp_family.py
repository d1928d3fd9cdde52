"""The "mlp" family's facts: a PyTorch MLP behind the dense preprocessing (one-hot, scaling, date
parts, TF-IDF). Fitting, saving and loading live in ``core.models.mlp`` (torch), imported on first use."""

from __future__ import annotations

from core.models.base import DataSummary, DeferredFamily

#: From this many rows, on a GPU, the automatic plan prefers the MLP to boosting.
GPU_TABLE_ROWS = 50_000


class MLPFamily(DeferredFamily):
    key = "mlp"
    label = "Neural network (MLP)"
    family = "torch"
    kinds = frozenset({"tabular"})
    curve_unit = "epoch"
    comparison_order = 4
    early_stops = True
    contest_rows = 50_000  # on a CPU, beyond this its epochs cost more than the contest's budget
    trainer = "core.models.mlp:MLPTrainer"

    def enters_contest(self, data: DataSummary) -> bool:
        on_gpu = data.device is not None and data.device.type != "cpu"
        return super().enters_contest(data) or (on_gpu and data.kind in self.kinds)

    def auto_preference(self, data: DataSummary) -> int:
        """Above boosting on a GPU with a large, mostly numeric table: deep learning is fast there."""
        on_gpu = data.device is not None and data.device.type != "cpu"
        return 2 if on_gpu and data.n_rows >= GPU_TABLE_ROWS and data.numeric_share >= 0.8 else 0

    def why(self, data: DataSummary) -> str:
        if self.auto_preference(data):
            return (f"A neural network (MLP) on the {data.device.badge}: with {data.n_rows:,} mostly numeric rows "
                    "and a GPU, deep learning is fast here and can match gradient boosting.")
        return ("A neural network (MLP): layers of learnt features over the scaled, one-hot encoded columns, "
                "trained in epochs; it stops once the validation loss stops improving.")
