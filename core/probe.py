"""The quick probe an image set gets when its look is not clear-cut (``Plan.probe``, from ``core.planner``).

It is the job's first stage (``core.pipeline.run_job``), never the page's: it trains. On a stratified
sample of the *training* pictures (the validation ones stay unseen by every choice), the plan's
candidates — the pretrained features and the CNN's first epochs — are scored through
``core.compare.compare_images`` on the same folds, within the probe's budget, each by its own
family's fit; the CNN reads the sample at its own small size, the pretrained network at its input
size. The outcome (``ProbeOutcome``) goes back to the planner, which settles the plan on it and says
why with the probe's numbers. The pretrained features of the sample are remembered
(``core.models.backbone.embed``), so a pretrained winner does not read those pictures again.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from core.evaluation import METRIC_NAMES
from core.events import Callback, Message, NeverStop, StopFlag
from core.models import get_family, ready
from core.planner import PROBE_FOLDS, PROBE_PICTURES, probe_budget
from core.splits import sample_rows, split_rows
from core.types import DeviceInfo, ImageData, Plan, ProbeOutcome


def probe_sample(data: ImageData, the_plan: Plan) -> np.ndarray:
    """Positions of the probe's pictures: up to ``PROBE_PICTURES`` of the plan's training split, stratified."""
    labels = np.asarray(data.labels)
    train, _ = split_rows(labels, the_plan.task, the_plan.valid_fraction, the_plan.seed)
    train = np.sort(train)
    return train[sample_rows(labels[train], the_plan.task, PROBE_PICTURES, the_plan.seed)]


def _subset(data: ImageData, rows: np.ndarray) -> ImageData:
    return replace(data, images=data.images[rows], labels=data.labels[rows],
                   paths=tuple(data.paths[i] for i in rows),
                   sizes=tuple(data.sizes[i] for i in rows) if data.sizes else (),
                   modes=tuple(data.modes[i] for i in rows) if data.modes else ())


def run_probe(data: ImageData, the_plan: Plan, on_event: Callback, stop: StopFlag | None = None,
              device: DeviceInfo | None = None) -> ProbeOutcome:
    """Score the plan's probe candidates on a sample of the training pictures; say what won, with numbers."""
    from core.compare import compare_images

    stop = stop or NeverStop()
    ready((c.model for c in the_plan.probe), on_event)  # torch: not the probe's time, taken from the run's
    t0 = time.perf_counter()
    rows = probe_sample(data, the_plan)
    sample = _subset(data, rows)
    budget = probe_budget(the_plan)
    names = " and ".join(c.label.lower() for c in the_plan.probe)
    on_event(Message("info", f"Quick probe: {names} on {len(rows)} training pictures, within {budget:.0f} s…"))
    result = compare_images(sample, the_plan.probe, n_folds=PROBE_FOLDS, time_budget=budget, seed=the_plan.seed,
                            on_event=on_event, stop=stop, device=device)
    seconds = time.perf_counter() - t0
    outcome = _outcome(result, the_plan, seconds)
    on_event(Message("info", " ".join(outcome.reasons)))
    return outcome


def _outcome(result, the_plan: Plan, seconds: float) -> ProbeOutcome:
    """Whether the pretrained path won (the look's lean unless every candidate was scored), and the
    probe's numbers in words."""
    by_name = {c.name: c for c in the_plan.probe}
    decided = result.best in by_name and all(e.complete for e in result.entries)
    if decided:
        pretrained = get_family(by_name[result.best].model).picture_side(by_name[result.best].params) is not None
    else:
        pretrained = get_family(the_plan.model).picture_side(the_plan.params) is not None
    metric = METRIC_NAMES[result.metric].lower()
    scored = [f"{e.label.lower()} {e.mean:.3f} ± {e.std or 0:.3f}" for e in result.leaderboard() if e.mean is not None]
    skipped = [f"{e.label.lower()} ({e.skipped})" for e in result.entries if e.skipped]
    text = f"The probe ({result.folds}, {seconds:.0f} s) scored {metric}: {'; '.join(scored) or 'nothing'}."
    if skipped:
        text += f" Not scored: {'; '.join(skipped)}."
    if not decided:
        lean = "the pretrained network" if pretrained else "the CNN trained from scratch"
        return ProbeOutcome(pretrained=pretrained, seconds=seconds,
                            reasons=(text, f"Not both could be scored in time, so the look's lean stands: {lean}."))
    verdict = ("So the pretrained network is used." if pretrained
               else "So the CNN trained from scratch is used (a full run trains it for more epochs).")
    return ProbeOutcome(pretrained=pretrained, reasons=(text, *result.reasons, verdict), seconds=seconds)
