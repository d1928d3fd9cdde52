"""Reading a run folder: one typed, frozen record over ``manifest.json`` and the saved predictions.

Everything the pages, the CLI and reports show of a saved run is read through ``read_run``
(ARCHITECTURE.md, "The run folder"); nothing else parses the manifest's keys. ``Report`` adds
what is drawn from the predictions (PR and ROC curves), computed once per read. Writing lives
in ``core.runs``; this module reads only JSON and Parquet, never a pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import RunError, TrainboardError
from core.evaluation import (
    MAIN_METRIC,
    Confusion,
    Curve,
    Threshold,
    default_threshold,
    pr_curves,
    roc_curves,
    worst_errors,
)
from core.importance import Importance
from core.types import DROPPED_ROLES, DeviceInfo, Task

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
PREDICTIONS_FILE = "valid_predictions.parquet"
WORST_FILE = "worst_errors.parquet"
#: The manifest's ``contest.curve``: which rows an automatic run's curve measured its validation loss on.
CURVE_ON_VALIDATION, CURVE_ON_TRAINING = "validation rows", "training rows"


@dataclass(frozen=True)
class ColumnUse:
    """How a table column was used: its role and why."""

    name: str
    role: str
    reason: str = ""

    @property
    def used(self) -> bool:
        return self.role not in DROPPED_ROLES


@dataclass(frozen=True)
class DataRecord:
    """What the run was trained on."""

    source: str
    kind: str  # "tabular" or "images"
    n_rows: int
    target: str
    classes: tuple[str, ...] = ()
    n_features: int = 0
    columns: tuple[ColumnUse, ...] = ()  # every non-target column of a table, used or not
    dropped: tuple[ColumnUse, ...] = ()
    image_size: int | None = None
    channels: int | None = None
    skipped_files: tuple[tuple[str, str], ...] = ()  # (file name, why), the first 200
    n_skipped_files: int = 0
    n_rows_dropped: int = 0
    messages: tuple[str, ...] = ()

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The columns a new table needs for a prediction, in file order."""
        return tuple(c.name for c in self.columns if c.used)


@dataclass(frozen=True)
class ModelRecord:
    key: str  # registry key
    family: str  # "sklearn" or "torch"
    name: str  # e.g. "HistGradientBoostingClassifier"
    label: str  # plain name for people
    curve_unit: str  # the x axis of its training curve
    reasons: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitRecord:
    strategy: str
    valid_fraction: float
    seed: int
    n_train: int
    n_valid: int


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One saved run. ``predictions``/``worst`` are None when it was read for a listing only."""

    path: Path
    run_id: str
    created: str
    task: Task
    data: DataRecord
    model: ModelRecord
    device: DeviceInfo
    split: SplitRecord
    metrics: dict[str, float | None]
    main_metric: str
    baseline_key: str | None
    baseline_metrics: dict[str, float | None]  # the sanity baseline (empty when none)
    dummy_metrics: dict[str, float | None]  # always the most frequent class / the mean
    history: tuple[dict[str, Any], ...]
    confusion: Confusion | None
    importances: tuple[Importance, ...]
    importance_rows: int
    timings: dict[str, float]
    stopped_early: bool
    cancelled: bool
    messages: tuple[str, ...]
    versions: dict[str, str]
    files: tuple[str, ...]
    threshold: Threshold | None = None  # binary runs: the decision threshold Predict applies
    candidates: tuple[dict[str, Any], ...] = ()  # an automatic run's contest (``core.contest``); () otherwise
    contest_reasons: tuple[str, ...] = ()  # …and how it chose, in words (also among the model's reasons)
    contest_refit: bool | None = None  # …whether it fitted its winner again on all training rows (None: unknown)
    contest_curve: str = CURVE_ON_TRAINING  # …which rows its curve's validation loss is on (``CURVE_ON_*``)
    checks: tuple[dict[str, Any], ...] = ()  # the data checks' findings (``core.checks.Finding.record``)
    time_budget: float | None = None  # seconds the plan gave the whole run (None: no limit, or saved before it was)
    max_epochs: int | None = None  # the plan's cap on epochs / boosting rounds / trees (None: the family's own)
    workspace: str | None = None  # whose it is (``core.runs.save_run``); None: shared (the CLI's, or saved before)
    predictions: pd.DataFrame | None = None  # row, true, predicted (+ proba per class / residual)
    worst: pd.DataFrame | None = None  # the validation rows with the largest errors

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def classification(self) -> bool:
        return self.task != "regression"

    @property
    def value(self) -> float | None:
        """The headline metric's value on the validation rows."""
        return self.metrics.get(self.main_metric)


@dataclass(frozen=True, eq=False)
class Report:
    """What the Evaluate page shows: the run, and the curves drawn from its predictions."""

    run: RunRecord
    pr_curves: tuple[Curve, ...] = ()
    roc_curves: tuple[Curve, ...] = ()


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The raw manifest (JSON) of a run folder, checked to be one this version can read."""
    path = Path(run_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"'{run_dir}' is not a saved run (it has no {MANIFEST_FILE}). Pick a run from the Runs page "
                       "or train a new one.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"The run '{Path(run_dir).name}' has a damaged manifest. Train it again.") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"The run '{Path(run_dir).name}' was saved by another Trainboard version. Train it again.")
    return manifest


def read_run(run_dir: str | Path, predictions: bool = True) -> RunRecord:
    """The run folder as a record; ``predictions=False`` skips the Parquet files (run listings)."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    try:
        record = _record(run_dir, manifest)
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"The run '{run_dir.name}' has an incomplete manifest ({err}). Train it again.") from None
    if not predictions:
        return record
    frame = _predictions(run_dir, record)
    worst_path = run_dir / WORST_FILE
    worst = pd.read_parquet(worst_path) if worst_path.exists() else worst_errors(frame, record.task)
    return replace(record, predictions=frame, worst=worst)


def report_from_run(run_dir: str | Path) -> Report:
    """Everything the Evaluate page shows, from a run folder — no model, no retraining."""
    run = read_run(run_dir)
    if not run.classification:
        return Report(run)
    return Report(run, pr_curves(run.predictions, run.classes), roc_curves(run.predictions, run.classes))


def contest_board(candidates: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """An automatic run's leaderboard from its manifest's ``candidates``: one ``core.compare.board_row``
    per candidate, best first, the delivered one (and the blended ones) marked in its name."""
    from core.compare import Entry, board_row  # the registry's labels: imported only when a board is drawn

    rows = []
    for saved in sorted(candidates, key=lambda c: (c.get("mean") is None, -(c.get("mean") or 0.0))):
        row = board_row(Entry.from_dict(saved)) if saved["model"] != "blend" else {
            "model": saved.get("label") or "Blend", "key": "blend", "metric": saved["metric"], "mean": saved["mean"],
            "std": saved.get("std"), "folds": str(len(saved["scores"].get(saved["metric"]) or ())), "fit_s": None,
            "note": "average of the blended ones"}
        row["model"] += " ← delivered" if saved.get("won") else (" (blended)" if saved.get("blended") else "")
        rows.append(row)
    return rows


def _record(path: Path, m: dict[str, Any]) -> RunRecord:
    data, model, split, baseline = m["data"], m["model"], m["split"], m.get("baseline") or {}
    matrix = m.get("confusion_matrix")
    return RunRecord(
        path=path, run_id=m["run_id"], created=m["created"], task=m["task"], data=_data(data),
        model=ModelRecord(key=model["key"], family=model["family"], name=model["name"],
                          label=model.get("label") or model["name"], curve_unit=_curve_unit(model),
                          reasons=tuple(model.get("reasons") or ()), params=dict(model.get("params") or {})),
        device=DeviceInfo(**m["device"]),
        split=SplitRecord(strategy=split["strategy"], valid_fraction=float(split["valid_fraction"]),
                          seed=int(split["seed"]), n_train=int(split["n_train"]), n_valid=int(split["n_valid"])),
        metrics=dict(m.get("metrics") or {}), main_metric=m.get("main_metric") or MAIN_METRIC[m["task"]],
        baseline_key=baseline.get("key"), baseline_metrics=dict(baseline.get("metrics") or {}),
        dummy_metrics=dict(baseline.get("dummy_metrics") or {}), history=tuple(m.get("history") or ()),
        confusion=Confusion(tuple(matrix["labels"]), np.asarray(matrix["matrix"], dtype=np.int64)) if matrix else None,
        importances=tuple(Importance(i["feature"], i["importance"], i.get("std", 0.0), i.get("method", "permutation"))
                          for i in m.get("feature_importance") or ()),
        importance_rows=int(m.get("feature_importance_rows") or 0), timings=dict(m.get("timings") or {}),
        stopped_early=bool(m.get("stopped_early")), cancelled=bool(m.get("cancelled")),
        messages=tuple(m.get("messages") or ()), versions=dict(m.get("versions") or {}),
        files=tuple(m.get("files") or ()), threshold=_threshold(m), candidates=tuple(m.get("candidates") or ()),
        contest_reasons=tuple((m.get("contest") or {}).get("reasons") or ()),
        contest_refit=_optional((m.get("contest") or {}).get("refit"), bool),
        contest_curve=str((m.get("contest") or {}).get("curve") or CURVE_ON_TRAINING),
        checks=tuple(m.get("checks") or ()), time_budget=_optional((m.get("limits") or {}).get("time_budget_s"), float),
        max_epochs=_optional((m.get("limits") or {}).get("max_epochs"), int),
        workspace=_optional(m.get("workspace"), str),
    )


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


def _threshold(m: dict[str, Any]) -> Threshold | None:
    """Binary runs saved before thresholds were recorded read as the 0.5 default."""
    saved = m.get("threshold")
    if m["task"] != "binary":
        return None
    if not saved:
        return default_threshold("binary")
    return Threshold(float(saved["value"]), saved.get("metric"), saved.get("chosen_by") or "default")


def _data(d: dict[str, Any]) -> DataRecord:
    columns = tuple(ColumnUse(c["name"], c["role"], c.get("reason", "")) for c in d.get("columns") or ())
    dropped = tuple(ColumnUse(c["name"], "ignore", c.get("why", "")) for c in d.get("dropped_columns") or ())
    return DataRecord(source=d["source"], kind=d["kind"], n_rows=int(d["n_rows"]), target=d["target"],
                      classes=tuple(d.get("classes") or ()), n_features=int(d.get("n_features") or 0),
                      columns=columns, dropped=dropped, image_size=d.get("image_size"), channels=d.get("channels"),
                      skipped_files=tuple((f["name"], f["why"]) for f in d.get("skipped_files") or ()),
                      n_skipped_files=int(d.get("n_skipped_files") or 0),
                      n_rows_dropped=int(d.get("n_rows_dropped") or 0), messages=tuple(d.get("messages") or ()))


def _curve_unit(model: dict[str, Any]) -> str:
    """Saved since the unit became a family fact; older runs ask the family."""
    if model.get("curve_unit"):
        return model["curve_unit"]
    from core.models import get_family

    try:
        return get_family(model["key"]).curve_unit
    except TrainboardError:  # a family no longer registered: a plain axis name will do
        return "epoch"


def _predictions(run_dir: Path, record: RunRecord) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(run_dir / PREDICTIONS_FILE)
    except (FileNotFoundError, OSError):
        raise RunError(f"The run '{run_dir.name}' has lost its validation predictions. Train it again.") from None
    if record.classification:
        frame["true"] = frame["true"].astype(str)
        frame["predicted"] = frame["predicted"].astype(str)
    return frame
