"""One whole training job: load → prepare → (plan) → fit → evaluate → save (ARCHITECTURE.md, "Jobs").

The same function runs in a job worker process (``core.jobs``) and inline for the CLI and
tests. It reports only through events; its result is the saved run folder. The plan the Train
page showed travels in the ``JobSpec`` and is trained as it is; only a spec without one (the
CLI's) is planned here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from core.checks import apply_checks, drop_validation_duplicates
from core.device import pick_device
from core.errors import DataError, TrainboardError
from core.evaluation import evaluate
from core.events import Callback, Message, NeverStop, RunFinished, StopFlag, ignore
from core.models import get_family
from core.planner import Overrides, plan
from core.runs import DEFAULT_RUNS_DIR, origin_section, save_run
from core.training import fit_split, split_data
from core.types import Dataset, ImageData, Plan, Prepared, ProbeOutcome


@dataclass(frozen=True)
class JobSpec:
    """Plain data describing a training job (it crosses into a worker process).

    ``source`` is a path on the server: a table file, an image folder or a zip. Uploads are
    written to a private per-session folder first. ``name`` is what the user calls the data.
    ``plan`` is what to train (``make_plan``); None plans from ``overrides`` inside the job.
    """

    source: str
    name: str = ""
    target: str | None = None
    roles: Mapping[str, str] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=Overrides)
    plan: Plan | None = None
    runs_dir: str = str(DEFAULT_RUNS_DIR)
    mode: Literal["train", "compare", "predict"] = "train"
    folds: int | None = None  # compare only: None lets the data size decide
    run_dir: str | None = None  # predict only: the saved run to apply
    out: str | None = None  # predict only: where the predictions go (CSV, with a Parquet copy beside it)
    checks_off: tuple[str, ...] = ()  # the data checks' opt-outs (``core.checks`` keys)
    workspace: str | None = None  # whose run it saves (``core.runs.list_runs``); None: a shared run

    @property
    def display_name(self) -> str:
        return self.name or Path(self.source).name


def load_dataset(source: str | Path, name: str | None = None, image_size: int | None = None) -> Dataset:
    """A table file, or an image folder / zip of class folders, by what ``source`` is; images at
    ``image_size`` (a plan's ``image_size``; None: the loader's own choice)."""
    from core.datasets import load_table
    from core.images import is_image_source, load_images

    if is_image_source(source):
        return load_images(source, name=name, image_size=image_size)
    return load_table(source, name=name)


def prepare_data(data: Dataset, target: str | None = None, roles: Mapping[str, str] | None = None
                 ) -> Prepared | ImageData:
    """Tables get a target, a task and column roles; images are ready as they are."""
    if isinstance(data, ImageData):
        return data
    from core.schema import prepare

    return prepare(data, target=target, roles=dict(roles or {}))


def make_plan(prepared: Prepared | ImageData, overrides: Overrides | None = None,
              probed: ProbeOutcome | None = None) -> Plan:
    """The plan, knowing where a neural network would train (a GPU can change the pick); ``probed``:
    the job's quick probe's outcome, which settles a plan that asked for one (``core.probe``)."""
    overrides = overrides or Overrides()
    return plan(prepared, overrides, device=pick_device(overrides.params.get("device", "auto")), probed=probed)


def _planned(spec: JobSpec, prepared: Prepared | ImageData) -> Plan:
    """The spec's plan, checked against the data the job read; or a new plan when it has none."""
    if spec.plan is None:
        return make_plan(prepared, spec.overrides)
    n_rows = len(prepared.labels) if isinstance(prepared, ImageData) else len(prepared.X)
    if spec.plan.n_rows is not None and spec.plan.n_rows != n_rows:
        raise DataError(f"The data changed since the plan was made ({spec.plan.n_rows:,} rows then, {n_rows:,} now). "
                        "Open the Train page again to see the new plan, then start training.")
    return spec.plan


def run_job(spec: JobSpec, on_event: Callback = ignore, stop: StopFlag | None = None) -> Path:
    """Do the whole job and return the run folder. Always ends with one ``RunFinished`` event;
    user errors (``TrainboardError``) are reported in it and then raised."""
    stop = stop or NeverStop()
    try:
        run_dir = {"compare": _compare, "predict": _predict}.get(spec.mode, _run)(spec, on_event, stop)
    except TrainboardError as err:
        on_event(RunFinished(error=str(err)))
        raise
    except Exception as err:  # a bug: still tell the listener, in words, then let it surface
        on_event(RunFinished(error=f"Training failed unexpectedly ({type(err).__name__}: {err})."))
        raise
    return run_dir


def _run(spec: JobSpec, on_event: Callback, stop: StopFlag) -> Path:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # Images are read once at the side the plan's model reads them at (the pretrained network's
    # input, the CNN's small size); only a plan made here, or settled by the probe, may ask again.
    loaded = load_dataset(spec.source, spec.display_name, spec.plan.image_size if spec.plan else None)
    origin = origin_section(spec.source, loaded.load)
    prepared = prepare_data(loaded, spec.target, spec.roles)
    del loaded  # the prepared table holds what training needs
    timings["load_s"] = round(time.perf_counter() - t0, 3)
    t_checks = time.perf_counter()
    prepared = apply_checks(prepared, spec.roles, spec.checks_off)  # the Data page's checks and their actions
    timings["checks_s"] = round(time.perf_counter() - t_checks, 3)
    the_plan = _planned(spec, prepared)
    if the_plan.probe and isinstance(prepared, ImageData):
        the_plan = _settle_by_probe(spec, prepared, the_plan, on_event, stop, timings)
    if isinstance(prepared, ImageData) and the_plan.image_size and the_plan.image_size != prepared.image_size:
        t_load = time.perf_counter()
        on_event(Message("info", f"Reading the pictures again at {the_plan.image_size} px for "
                                 f"{get_family(the_plan.model).label.lower()}…"))
        prepared = apply_checks(prepare_data(load_dataset(spec.source, spec.display_name, the_plan.image_size)),
                                spec.roles, spec.checks_off)
        timings["load_s"] = round(timings["load_s"] + time.perf_counter() - t_load, 3)
    # From here on only the split rows are held: the whole table would be a second copy of them
    # through the fit (the size of the file again, on a large CSV).
    parts = drop_validation_duplicates(split_data(prepared, the_plan, keep_rows=False))
    prepared = parts.data
    result = fit_split(parts, the_plan, on_event, stop, started=t0)
    del parts
    timings["fit_s"] = round(result.fit_seconds, 3)
    timings["baseline_s"] = round(result.baseline_seconds, 3)
    on_event(Message("info", "Evaluating on the validation rows…"))
    t1 = time.perf_counter()
    classes = prepared.class_names if isinstance(prepared, ImageData) else prepared.classes
    row_labels = _valid_names(prepared, result)
    evaluation = evaluate(result, classes, row_labels=row_labels)
    extra = _image_artifacts(prepared, result, evaluation) if isinstance(prepared, ImageData) else {}
    timings["evaluate_s"] = round(time.perf_counter() - t1, 3)
    run_dir = save_run(spec.runs_dir, result, evaluation, prepared, spec.display_name, timings, extra, origin,
                       workspace=spec.workspace)
    on_event(RunFinished(run=str(run_dir), stopped_early=result.main.stopped_early,
                         cancelled=result.main.cancelled))
    return run_dir


def _settle_by_probe(spec: JobSpec, prepared: ImageData, the_plan: Plan, on_event: Callback, stop: StopFlag,
                     timings: dict[str, float]) -> Plan:
    """The job's first stage for a plan that asks for a probe: run it, then plan again on its outcome
    (the same data and choices, the winner's own settings), its seconds spent from the run's budget."""
    from core.probe import run_probe

    outcome = run_probe(prepared, the_plan, on_event, stop, pick_device(spec.overrides.params.get("device", "auto")))
    timings["probe_s"] = round(outcome.seconds, 3)
    settled = make_plan(prepared, spec.overrides, probed=outcome)
    if settled.time_budget:
        settled = replace(settled, time_budget=max(1.0, settled.time_budget - outcome.seconds))
    return settled


def _compare(spec: JobSpec, on_event: Callback, stop: StopFlag) -> Path:
    from core.compare import DEFAULT_BUDGET_S, compare, save_comparison

    device = pick_device()
    data = _load_for_comparison(spec, device)
    prepared = apply_checks(prepare_data(data, spec.target, spec.roles), spec.roles, spec.checks_off)
    budget = spec.overrides.time_budget or DEFAULT_BUDGET_S
    if isinstance(prepared, ImageData):
        from core.compare import compare_images

        result = compare_images(prepared, n_folds=spec.folds, time_budget=budget, seed=spec.overrides.seed,
                                on_event=on_event, stop=stop, device=device)
    else:
        result = compare(prepared, n_folds=spec.folds, time_budget=budget, seed=spec.overrides.seed,
                         on_event=on_event, stop=stop, device=device)
    path = save_comparison(spec.runs_dir, result, spec.display_name)
    on_event(RunFinished(run=str(path), cancelled=stop.is_set()))
    return path


def _load_for_comparison(spec: JobSpec, device) -> Dataset:
    """The comparison's data, read once: images at the pretrained network's input size where they hold
    it (when the network is usable), since it is the candidate that reads the most detail."""
    from core.images import is_image_source, load_images
    from core.models.pretrained_family import backbone_problem, default_input_size

    if not is_image_source(spec.source) or backbone_problem():
        return load_dataset(spec.source, spec.display_name)
    return load_images(spec.source, name=spec.display_name, prefer_size=default_input_size(device))


def _predict(spec: JobSpec, on_event: Callback, stop: StopFlag) -> Path:
    from core.predict import predict_file, preview_path, write_predictions

    on_event(Message("info", "Reading the new data…"))
    Path(spec.out).parent.mkdir(parents=True, exist_ok=True)
    frame = predict_file(spec.run_dir, spec.source, spec.runs_dir, name=spec.display_name, on_event=on_event,
                         stop=stop, preview_to=preview_path(spec.out))
    path = write_predictions(frame, spec.out)
    on_event(RunFinished(run=str(path)))
    return path


def _valid_names(prepared: Prepared | ImageData, result: Any) -> list[str] | None:
    if isinstance(prepared, ImageData):
        return [prepared.paths[i] for i in result.valid_index]
    return None


def _image_artifacts(data: ImageData, result: Any, evaluation: Any) -> dict[str, Any]:
    from core.image_eval import gallery_writer

    return {"gallery.npz": gallery_writer(data, result, evaluation)}
