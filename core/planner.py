"""The auto-pick: which model, which settings, and why — in plain words (DESIGN.md §4).

Rules, in order; each that fires adds a sentence to ``Plan.reasons``. The user may override the
model and the main settings, and the reasons then say what they chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import PlanError
from core.features import NATIVE_CATEGORY_LIMIT
from core.models import REGISTRY, get_family
from core.types import DeviceInfo, ImageData, Plan, Prepared

TASK_WORDS = {"binary": "a yes/no (binary) target", "multiclass": "a target with several classes",
              "regression": "a numeric target (regression)"}
#: Rows from which a table counts as large (fewer validation rows, a neural net considered on a GPU).
LARGE_TABLE = 200_000
#: Boosting rounds on a large table by default: a 1M-row table took 43 s for 443 rounds on 2 cores.
LARGE_TABLE_ROUNDS = 250
#: Below this many rows, boosting gets small trees and a slow learning rate (it overfits otherwise).
SMALL_TABLE = 1000
SMALL_TABLE_HGB = {"learning_rate": 0.05, "max_leaf_nodes": 4, "min_samples_leaf": 20, "l2_regularization": 1.0,
                   "n_iter_no_change": 20}


@dataclass(frozen=True)
class Overrides:
    """What the user chose by hand; ``None`` or "auto" leaves the planner's choice."""

    model: str = "auto"
    valid_fraction: float | None = None
    seed: int = 0
    max_epochs: int | None = None
    time_budget: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


def minority_share(y, classes: tuple[str, ...]) -> float:
    """Share of rows in the rarest class (1.0 for regression)."""
    if not classes:
        return 1.0
    counts = np.array([np.sum(np.asarray(y) == c) for c in classes], dtype=float)
    return float(counts.min() / counts.sum())


def is_imbalanced(y, classes: tuple[str, ...]) -> bool:
    """The rarest class is under 20% for two classes (0.4/k for k classes)."""
    return bool(classes) and minority_share(y, classes) < 0.4 / len(classes)


def plan(data: Prepared | ImageData, overrides: Overrides | None = None,
         device: DeviceInfo | None = None) -> Plan:
    """Choose the model and settings for ``data`` and say why."""
    overrides = overrides or Overrides()
    if isinstance(data, ImageData):
        return _plan_images(data, overrides, device)
    return _plan_table(data, overrides, device)


def _check_choice(model: str, kind: str) -> None:
    if model not in REGISTRY:
        raise PlanError(f"There is no model called '{model}'. Choose one of: {', '.join(REGISTRY)}.")
    if kind not in get_family(model).kinds:
        what = "tables" if kind == "tabular" else "images"
        raise PlanError(f"The model '{model}' does not work on {what}. Choose 'auto' to let Trainboard pick.")


def _valid_fraction(n_rows: int, overrides: Overrides, unit: str = "rows") -> tuple[float, str]:
    if overrides.valid_fraction is not None:
        f = float(overrides.valid_fraction)
        if not 0.05 <= f <= 0.5:
            raise PlanError("The validation share must be between 5% and 50% of the rows.")
        return f, f"You chose to hold out {f:.0%} of the {unit} for validation."
    f = 0.1 if n_rows >= LARGE_TABLE else 0.2
    return f, (f"{f:.0%} of the {unit} (about {int(n_rows * f):,}) are held out for validation: the model never "
               "trains on them, so its scores there are honest.")


def _plan_table(data: Prepared, overrides: Overrides, device: DeviceInfo | None) -> Plan:
    n_rows = len(data.X)
    reasons = [_describe_table(data)]
    if dropped := data.dropped_columns:
        listed = "; ".join(f"'{c.name}' ({c.reason})" for c in dropped[:6])
        more = f" and {len(dropped) - 6} more" if len(dropped) > 6 else ""
        reasons.append(f"Left out {len(dropped)} column{'s' * (len(dropped) > 1)}: {listed}{more}.")
    reasons += _feature_reasons(data)
    params: dict[str, Any] = dict(overrides.params)
    if data.task != "regression" and is_imbalanced(data.y, data.classes):
        share = minority_share(data.y, data.classes)
        reasons.append(f"The rarest class is only {share:.0%} of the rows, so classes are weighted to count equally, "
                       "and accuracy misleads here (always answering the common class scores high): "
                       "read balanced accuracy and the precision-recall curve instead.")
    if data.task == "regression" and _heavy_tailed_positive(data.y):
        params.setdefault("log_target", True)
        reasons.append("The target is positive with a long tail of large values, so the model learns its "
                       "logarithm (errors in proportion, not in absolute units); scores are reported in the "
                       "original units.")
    model = overrides.model or "auto"
    if model == "auto":
        model, why = _pick_table_model(n_rows, data, device)
    else:
        _check_choice(model, "tabular")
        why = f"You chose: {get_family(model).label}."
    reasons.append(why)
    if model == "hgb" and n_rows >= LARGE_TABLE and overrides.max_epochs is None:
        params.setdefault("max_iter", LARGE_TABLE_ROUNDS)
        reasons.append(f"With {n_rows:,} rows each boosting round takes a while, so at most {LARGE_TABLE_ROUNDS} "
                       "rounds are grown (about half a minute here); raise 'Most epochs / boosting rounds' in the "
                       "settings to let it go on.")
    if model == "hgb" and n_rows < SMALL_TABLE:
        for key, value in SMALL_TABLE_HGB.items():
            params.setdefault(key, value)
        reasons.append(f"With only {n_rows:,} rows, the trees are kept small and learn slowly, so the model "
                       "cannot simply memorise the noise in so few examples.")
    baseline = None if model == "linear" else "linear"
    if baseline:
        reasons.append("A linear model is fitted first as a sanity baseline: the main model has to beat it "
                       "to be worth its complexity.")
    fraction, split_reason = _valid_fraction(n_rows, overrides)
    if data.task != "regression":
        split_reason += " The split is stratified: every class keeps its share in both parts."
    reasons.append(split_reason)
    return Plan(model=model, task=data.task, reasons=tuple(reasons), params=params, baseline=baseline,
                valid_fraction=fraction, seed=int(overrides.seed), max_epochs=overrides.max_epochs,
                time_budget=overrides.time_budget)


def _describe_table(data: Prepared) -> str:
    used = data.used_columns
    kinds: dict[str, int] = {}
    for c in used:
        kinds[c.role] = kinds.get(c.role, 0) + 1
    parts = ", ".join(f"{n} {role}" for role, n in kinds.items())
    text = f"Tabular data: {len(data.X):,} rows, {len(used)} usable columns ({parts}); {TASK_WORDS[data.task]}"
    if data.task == "binary":
        positive = data.classes[-1]
        share = float(np.mean(np.asarray(data.y) == positive))
        text += f" with {share:.0%} '{positive}'"
    elif data.task == "multiclass":
        text += f" ({len(data.classes)} classes)"
    return text + "."


def _feature_reasons(data: Prepared) -> list[str]:
    reasons = []
    dates = [c.name for c in data.used_columns if c.role == "datetime"]
    if dates:
        reasons.append(f"Dates ({', '.join(dates)}) are split into year, month, day, weekday and day of year, "
                       "so seasonal patterns can be learnt.")
    texts = [c.name for c in data.used_columns if c.role == "text"]
    if texts:
        reasons.append(f"Free text ({', '.join(texts)}) becomes word-weight (TF-IDF) features.")
    many = [c.name for c in data.used_columns if c.role == "categorical" and c.n_unique >= NATIVE_CATEGORY_LIMIT]
    if many:
        reasons.append(f"Columns with very many categories ({', '.join(many)}) are replaced by the average target "
                       "of each category, learnt without peeking at the row itself.")
    return reasons


def _heavy_tailed_positive(y) -> bool:
    values = np.asarray(y, dtype=float)
    if values.size < 20 or values.min() <= 0:
        return False
    centred = values - values.mean()
    skew = float(np.mean(centred**3) / (np.std(values) ** 3 + 1e-12))
    return skew > 1.0 and values.max() / np.median(values) > 5


def _pick_table_model(n_rows: int, data: Prepared, device: DeviceInfo | None) -> tuple[str, str]:
    numeric_share = np.mean([c.role == "numeric" for c in data.used_columns])
    if device is not None and device.type != "cpu" and n_rows >= 50_000 and numeric_share >= 0.8:
        return "mlp", (f"A neural network (MLP) on the {device.badge}: with {n_rows:,} mostly numeric rows and a "
                       "GPU, deep learning is fast here and can match gradient boosting.")
    return "hgb", ("Histogram gradient boosting: the strongest default on tables — it handles missing values "
                   "and categories natively, finds interactions by itself and trains in seconds. "
                   "It stops adding trees once the validation loss stops improving.")


def _plan_images(data: ImageData, overrides: Overrides, device: DeviceInfo | None) -> Plan:
    n, k, size = len(data.labels), len(data.class_names), data.image_size
    model = overrides.model if overrides.model not in (None, "auto") else "cnn"
    _check_choice(model, "images")
    counts = np.bincount(data.labels, minlength=k)
    colour = "greyscale" if data.channels == 1 else "colour"
    reasons = [f"Images: {n:,} {colour} pictures in {k} classes (smallest class {counts.min()}, largest "
               f"{counts.max()}), resized to {size}×{size} pixels.",
               "A convolutional neural network (CNN): it learns visual patterns — edges, then shapes — "
               "directly from the pixels.",
               "Each epoch the training images are shifted and zoomed a little at random, so the network "
               "learns the shapes, not their exact position."
               + (" You turned on mirroring: pictures are also flipped left-right at random."
                  if overrides.params.get("flip") else
                  " Mirroring is off (it would confuse classes such as 'b' and 'd'); turn it on in the settings "
                  "if a mirrored picture keeps its class.")]
    if device is not None and device.type != "cpu":
        reasons.append(f"Training runs on the {device.badge}.")
    fraction, split_reason = _valid_fraction(n, overrides, unit="images")
    from core.models.cnn import default_epochs

    epochs = overrides.max_epochs or default_epochs(int(n * (1 - fraction)))
    reasons.append(f"Up to {epochs} passes over the data (epochs), stopping early when the validation loss stops "
                   "improving; the best epoch's weights are kept.")
    reasons.append(split_reason + " The split is stratified by class.")
    if counts.min() / counts.max() < 0.5:
        reasons.append("Classes are unevenly sized: read balanced accuracy and the per-class curves, not only "
                       "accuracy.")
    params = dict(overrides.params)
    return Plan(model=model, task="binary" if k == 2 else "multiclass", reasons=tuple(reasons), params=params,
                baseline=None, valid_fraction=fraction, seed=int(overrides.seed), max_epochs=overrides.max_epochs,
                time_budget=overrides.time_budget)

