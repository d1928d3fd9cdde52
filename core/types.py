"""The plain, frozen data types that cross module and process boundaries.

They live in one module so that loaders, planner, trainers, evaluation and pages agree on
shapes without importing each other. Arrays and frames are carried as-is (``eq=False`` where a
field holds one, since element-wise equality is meaningless for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["binary", "multiclass", "regression"]
Role = Literal["numeric", "categorical", "text", "datetime", "id", "constant", "empty", "ignore"]

#: Roles whose columns never reach a model.
DROPPED_ROLES: frozenset[str] = frozenset({"id", "constant", "empty", "ignore"})
#: Roles a user may assign to a column by hand on the Data page.
USER_ROLES: tuple[str, ...] = ("numeric", "categorical", "text", "datetime", "ignore")


@dataclass(frozen=True)
class DeviceInfo:
    type: Literal["cpu", "cuda", "mps"]
    name: str  # human name: "NVIDIA H100 80GB HBM3", "Apple MPS", "x86_64 CPU"
    threads: int

    @property
    def badge(self) -> str:
        """Short label for the UI: "CPU (2 threads)", "CUDA: NVIDIA H100", "Apple MPS"."""
        if self.type == "cuda":
            return f"CUDA: {self.name}"
        if self.type == "mps":
            return "Apple MPS"
        return f"CPU ({self.threads} thread{'s' if self.threads != 1 else ''})"


@dataclass(frozen=True)
class LoadReport:
    """What the loader detected, to show the user (Data page) and record in the manifest."""

    source: str  # file name as the user knows it
    format: Literal["csv", "tsv", "excel", "parquet", "images"]
    n_rows: int
    n_columns: int
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnInfo:
    """One column's decided role, with the reason in plain words."""

    name: str
    role: Role
    reason: str
    dtype: str
    n_unique: int
    n_missing: int

    @property
    def used(self) -> bool:
        return self.role not in DROPPED_ROLES


@dataclass(frozen=True, eq=False)
class TableData:
    """A loaded table, before any target is chosen."""

    frame: pd.DataFrame
    load: LoadReport
    kind: Literal["tabular"] = "tabular"


@dataclass(frozen=True, eq=False)
class ImageData:
    """Decoded images: ``images`` is uint8 N×C×H×W (C = 1 or 3), ``labels`` int64 indexes into
    ``class_names``; ``paths`` are the files' names relative to the source, for galleries."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    load: LoadReport
    skipped: tuple[tuple[str, str], ...] = ()  # (file name, why it was skipped)
    kind: Literal["images"] = "images"
    sizes: tuple[tuple[int, int], ...] = ()  # each image's width and height as stored, before resizing
    modes: tuple[str, ...] = ()  # each image's Pillow mode as stored ("L", "RGB", "RGBA", …)
    checks: tuple[Any, ...] = ()  # the data checks' findings (``core.checks.Finding``), once run

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


Dataset = TableData | ImageData


@dataclass(frozen=True, eq=False)
class Prepared:
    """A table made ready for models: raw feature columns, a clean target and the task.

    ``X`` holds only the columns a model uses, still raw (the saved pipeline takes raw columns).
    For classification ``y`` holds string labels (so ``"1"`` and ``1`` are one class) and
    ``classes`` lists them in a natural order; for regression ``y`` is float and ``classes`` empty.
    """

    X: pd.DataFrame
    y: pd.Series
    task: Task
    target: str
    classes: tuple[str, ...]
    columns: tuple[ColumnInfo, ...]  # every non-target column, used or dropped, in file order
    messages: tuple[str, ...] = ()  # what was done to the data, in plain words
    n_rows_dropped: int = 0  # rows dropped for a missing target
    checks: tuple[Any, ...] = ()  # the data checks' findings (``core.checks.Finding``), once run

    def column(self, name: str) -> ColumnInfo:
        return next(c for c in self.columns if c.name == name)

    @property
    def used_columns(self) -> tuple[ColumnInfo, ...]:
        return tuple(c for c in self.columns if c.used)

    @property
    def dropped_columns(self) -> tuple[ColumnInfo, ...]:
        return tuple(c for c in self.columns if not c.used)


@dataclass(frozen=True)
class Candidate:
    """One entry of the automatic contest's portfolio (``core.contest``): a registry family with
    the settings it is scored with. ``name`` is unique in the contest ("hgb", "hgb-log");
    ``as_category`` names number columns this candidate reads as categories (codes, IDs);
    ``note`` says in words what makes the variant different ("" for the family's own settings)."""

    name: str
    model: str
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)
    as_category: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Plan:
    """What will be trained, and why; made once (on the Train page, or by the job for the CLI) and
    trained exactly as it is.

    ``model`` is a registry key (``core.models.REGISTRY``), or ``AUTO`` for a contest between the
    ``contest`` candidates (the job delivers the winner: its result's plan names it); ``baseline`` the key of the sanity
    baseline fitted first (None when there is none, as for images: their yardstick is the
    majority class).
    ``params`` are the model's settings as its family tuned them for the data, with the user's own
    on top; ``baseline_params`` the baseline's. ``n_rows`` is the number of rows (or images) it was
    made for, so a job can tell when its data is not what was planned.
    """

    model: str
    task: Task
    reasons: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    baseline_params: Mapping[str, Any] = field(default_factory=dict)
    valid_fraction: float = 0.2
    seed: int = 0
    max_epochs: int | None = None
    time_budget: float | None = None  # seconds; training stops (keeping the best) past it
    n_rows: int | None = None
    contest: tuple[Candidate, ...] = ()
    #: Images: the side the job loads the pictures at for this model (``core.images.choose_size``: the
    #: pretrained network's input size where the pictures hold it, the loader's own small size for the CNN).
    image_size: int | None = None
    #: Images whose look is not clear-cut: the candidates the job's first stage probes on a sample of the
    #: training pictures (``core.probe``) before the plan is settled; ``model`` is the look's lean meanwhile.
    probe: tuple[Candidate, ...] = ()

    @property
    def is_contest(self) -> bool:
        return self.model == AUTO

    @property
    def models(self) -> tuple[str, ...]:
        """Every model key this plan may fit: its model or contest, its baseline, its probe."""
        keys = [c.model for c in self.contest] if self.is_contest else [self.model]
        return tuple(dict.fromkeys([*keys, *([self.baseline] if self.baseline else []), *(c.model for c in self.probe)]))


@dataclass(frozen=True)
class ProbeOutcome:
    """What the quick probe found (``core.probe``): whether the pretrained path beat the CNN, in words
    with its numbers, and the seconds it took (spent from the run's budget)."""

    pretrained: bool
    reasons: tuple[str, ...]
    seconds: float = 0.0


#: ``Plan.model`` of a plan that lets a contest choose the model.
AUTO = "auto"
