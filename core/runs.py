"""Run folders: ``runs/<run_id>/manifest.json`` + the model + validation predictions
(ARCHITECTURE.md, "The run folder"): writing, listing, deleting, and loading a run's model.

A run is written into a hidden temporary folder and renamed into place, so a half-written run
never appears. It is read back through one typed record (``core.run_record``). Model files are
loaded only from inside the app's own runs folder (they are pickles).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import RunError, StorageError
from core.evaluation import MAIN_METRIC, Evaluation, Threshold, default_threshold
from core.explain import closer_files
from core.models import get_family
from core.run_record import (
    CURVE_ON_TRAINING,
    CURVE_ON_VALIDATION,
    MANIFEST_FILE,
    PREDICTIONS_FILE,
    SCHEMA_VERSION,
    WORST_FILE,
    RunRecord,
    load_manifest,
    read_run,
)
from core.trusted import resolve_run, seal, trusted_folder  # resolve_run: callers import it from here too
from core.types import ImageData, LoadReport, Prepared

if TYPE_CHECKING:  # only for annotations: training imports the contest, which saves through here
    from core.training import TrainResult

DEFAULT_RUNS_DIR = Path(os.environ.get("TRAINBOARD_RUNS", Path(__file__).resolve().parent.parent / "runs"))
#: Recorded in the manifest: a model bundle's requirements.txt pins what the run was trained with.
_VERSIONED = ("scikit-learn", "torch", "pandas", "numpy", "scipy", "joblib", "threadpoolctl", "pillow", "streamlit")


def slug(text: str) -> str:
    stem = Path(text).stem if text else "data"
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "data"


def new_run_id(runs_dir: Path, source: str, model: str) -> str:
    """``20261122-101500-iris-hgb``; a numeric suffix keeps ids unique within a second."""
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug(source)}-{model}"
    run_id, n = base, 1
    while (runs_dir / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON types only (numpy scalars, tuples, NaN → None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def data_section(data: Prepared | ImageData, source: str, n_rows: int) -> dict[str, Any]:
    """The manifest's ``data``: what was trained on (``n_rows``: training + validation rows; the
    prepared table itself may hold none by now), and the column roles predictions need."""
    if isinstance(data, ImageData):
        return {"source": source, "kind": "images", "n_rows": int(n_rows), "n_features": 0,
                "target": "class", "classes": list(data.class_names), "image_size": data.image_size,
                "channels": data.channels, "dropped_columns": [],
                "skipped_files": [{"name": n, "why": w} for n, w in data.skipped[:200]],
                "n_skipped_files": len(data.skipped)}
    return {"source": source, "kind": "tabular", "n_rows": int(n_rows), "n_features": len(data.used_columns),
            "target": data.target, "classes": list(data.classes),
            "dropped_columns": [{"name": c.name, "why": c.reason} for c in data.dropped_columns],
            "columns": [{"name": c.name, "role": c.role, "reason": c.reason} for c in data.columns],
            "n_rows_dropped": int(data.n_rows_dropped), "messages": list(data.messages)}


def origin_section(path: str | Path, load: LoadReport) -> dict[str, Any]:
    """The manifest's ``data.origin``: the file or folder the run read (absolute) and how it was
    parsed (format, encoding, delimiter, decimal mark), so ``core.export.code`` reads it the same way."""
    return {"path": str(Path(path).resolve()), "format": load.format, "encoding": load.encoding,
            "delimiter": load.delimiter, "decimal": load.decimal}


def threshold_section(threshold: Threshold | None) -> dict[str, Any] | None:
    """The manifest's ``threshold``: ``{"value", "metric", "chosen_by"}`` for binary runs, else None."""
    return None if threshold is None else asdict(threshold)


def build_manifest(run_id: str, result: TrainResult, evaluation: Evaluation, data: Prepared | ImageData,
                   source: str, timings: dict[str, float]) -> dict[str, Any]:
    plan, main = result.plan, result.main
    family = get_family(plan.model)
    classification = plan.task != "regression"
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": data_section(data, source, result.n_train + len(result.valid_index)),
        "task": plan.task,
        "model": {"key": plan.model, "family": family.family, "name": main.name, "label": family.label,
                  "curve_unit": family.curve_unit, "reasons": list(plan.reasons), "params": main.params},
        "device": asdict(result.device),
        "split": {"strategy": "stratified_holdout" if classification else "random_holdout",
                  "valid_fraction": plan.valid_fraction, "seed": plan.seed,
                  "n_train": result.n_train, "n_valid": int(len(result.valid_index))},
        "metrics": evaluation.metrics,
        "main_metric": MAIN_METRIC[plan.task],
        "threshold": threshold_section(result.threshold or default_threshold(plan.task)),
        "limits": {"time_budget_s": plan.time_budget, "max_epochs": plan.max_epochs},  # as planned (None: none)
        "baseline": {"key": plan.baseline, "metrics": evaluation.baseline_metrics,
                     "dummy_metrics": evaluation.dummy_metrics},
        "history": [{"epoch": e.epoch, "train_loss": e.train_loss, "valid_loss": e.valid_loss,
                     "seconds": e.seconds, **{f"metric_{k}": v for k, v in e.metrics.items()}}
                    for e in result.history],
        "confusion_matrix": None if evaluation.confusion is None else {
            "labels": list(evaluation.confusion.labels), "matrix": evaluation.confusion.matrix.tolist()},
        "feature_importance": [{"feature": i.feature, "importance": i.importance, "std": i.std, "method": i.method}
                               for i in evaluation.importances],
        "feature_importance_rows": evaluation.importance_rows,
        "timings": timings,
        "stopped_early": bool(main.stopped_early),
        "cancelled": bool(main.cancelled),
        "messages": [m.text for m in result.messages],
        "candidates": result.candidates,
        "contest": ({"reasons": list(result.contest_reasons), "refit": result.contest_refit,
                     "curve": CURVE_ON_VALIDATION if result.contest_curve_on_validation else CURVE_ON_TRAINING}
                    if result.candidates else None),
        "checks": [finding.record() for finding in data.checks],  # the data checks' findings (core.checks)
        "versions": versions(),
    }
    return jsonable(manifest)


def save_run(runs_dir: str | Path, result: TrainResult, evaluation: Evaluation, data: Prepared | ImageData,
             source: str, timings: dict[str, float], extra_files: dict[str, Any] | None = None,
             origin: dict[str, Any] | None = None, workspace: str | None = None) -> Path:
    """Write the run folder atomically and return its path.

    ``extra_files`` maps file names to callables ``write(path)`` for family-specific artefacts
    (e.g. image saliency arrays). ``origin`` is where the data came from and how it was read
    (``origin_section``): the manifest's ``data.origin``, which the run's code reads again.
    ``workspace`` is whose run it is (the manifest's ``workspace``: a browser's workspace id, see
    ``list_runs``); None saves a shared run, as the CLI does.
    """
    runs_dir = Path(runs_dir)
    # Evaluate's "look closer" needs validation inputs the run would not otherwise keep (bounded).
    extra_files = {**closer_files(result, evaluation, data), **(extra_files or {})}
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        run_id = new_run_id(runs_dir, source, result.plan.model)
        tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}"
        tmp.mkdir()
    except OSError as err:
        raise _not_saved(runs_dir, err) from err
    try:
        t0 = time.perf_counter()
        files = get_family(result.plan.model).save(result.main, tmp)
        evaluation.predictions.to_parquet(tmp / PREDICTIONS_FILE, index=False)
        if not evaluation.worst.empty:
            evaluation.worst.to_parquet(tmp / WORST_FILE, index=False)
        for name, write in (extra_files or {}).items():
            write(tmp / name)
        timings = dict(timings, save_s=round(time.perf_counter() - t0, 3))
        manifest = build_manifest(run_id, result, evaluation, data, source, timings)
        manifest["data"]["origin"] = jsonable(origin)
        manifest["workspace"] = workspace
        manifest["files"] = sorted(files + [PREDICTIONS_FILE] + list(extra_files or {}))
        manifest["seal"] = seal(tmp, manifest["files"])  # what load_pickle will check its bytes against
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        final = runs_dir / run_id
        tmp.rename(final)
        return final
    except OSError as err:  # a full disk, a folder that became unwritable: nothing half-written stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise _not_saved(runs_dir, err) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _not_saved(runs_dir: Path, err: OSError) -> StorageError:
    return StorageError(f"The trained model could not be saved in the runs folder {runs_dir} "
                        f"({err.strerror or type(err).__name__}). Nothing was saved: free some disk space or make the "
                        "folder writable (TRAINBOARD_RUNS sets where it is), then train again.")


def list_runs(runs_dir: str | Path = DEFAULT_RUNS_DIR, visible_to: str | None = None) -> list[RunRecord]:
    """Saved runs (their manifests, without predictions), newest first; damaged folders are skipped.

    ``visible_to`` (a workspace id) keeps that workspace's runs and the shared ones (saved without a
    workspace: by the CLI, or before runs had owners), so in a class no one sees another's runs;
    None lists every run (the CLI, the server's own housekeeping).
    """
    runs_dir = Path(runs_dir)
    out = []
    for path in runs_dir.iterdir() if runs_dir.is_dir() else []:
        if path.name.startswith(".") or not (path / MANIFEST_FILE).is_file():
            continue
        try:
            run = read_run(path, predictions=False)
        except RunError:
            continue
        if visible_to is None or run.workspace in (None, visible_to):
            out.append(run)
    return sorted(out, key=lambda r: (r.created, r.run_id), reverse=True)


def load_model(run_dir: str | Path, runs_dir: str | Path) -> tuple[Any, RunRecord]:
    """The fitted model of a run and its record. The only way to a family's ``load`` (which
    unpickles): the folder is checked to be one of the app's own runs first."""
    path = resolve_run(run_dir, runs_dir)
    run = read_run(path, predictions=False)
    try:
        with trusted_folder(path, runs_dir):
            model = get_family(run.model.key).load(path)
    except FileNotFoundError:
        raise RunError(f"The run '{path.name}' has no saved model (it may still be saving, or was damaged).") from None
    return model, run


def save_threshold(run_dir: str | Path, value: float, runs_dir: str | Path) -> RunRecord:
    """Record the decision threshold the user picked in a binary run's manifest (rewritten
    atomically: a temporary file in the run folder, then ``os.replace``); Predict applies it from
    then on. Returns the run as read back."""
    path = resolve_run(run_dir, runs_dir)
    manifest = load_manifest(path)
    if manifest.get("task") != "binary":
        raise RunError(f"The run '{path.name}' does not answer a yes/no question, so it has no threshold to set.")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise RunError(f"A threshold is a probability between 0 and 1, not {value:g}.")
    manifest["threshold"] = threshold_section(Threshold(value, None, "you"))
    _rewrite_manifest(path, manifest)
    return read_run(path, predictions=False)


def reseal_run(run_dir: str | Path, runs_dir: str | Path) -> None:
    """Seal a run folder another machine made (a Ray node's, brought back: ``core.trusted.seal``)
    with this installation's key, so its model loads here; the cluster's nodes are trusted as much
    as the server's own workers."""
    path = resolve_run(run_dir, runs_dir)
    manifest = load_manifest(path)
    manifest["seal"] = seal(path, manifest.get("files") or ())
    _rewrite_manifest(path, manifest)


def _rewrite_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Replace a run's manifest atomically: a temporary file in the run folder, then ``os.replace``."""
    tmp = path / f".{MANIFEST_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(jsonable(manifest), indent=2))
        os.replace(tmp, path / MANIFEST_FILE)
    finally:
        tmp.unlink(missing_ok=True)


def delete_run(run_dir: str | Path, runs_dir: str | Path) -> None:
    shutil.rmtree(resolve_run(run_dir, runs_dir))
