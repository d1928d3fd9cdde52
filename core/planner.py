"""The auto-pick: which model, which settings, and why — in plain words.

The planner describes the data, asks the registry which family most wants it (or checks the
user's choice), and lets that family tune itself (``ModelFamily.tune``); each decision adds a
sentence to ``Plan.reasons``. The plan is made once and travels in the job (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.errors import PlanError
from core.features import NATIVE_CATEGORY_LIMIT, cast_column
from core.models import baseline_for, families, get_family, trainable
from core.models.base import LARGE_TABLE, DataSummary, ImageLook
from core.types import AUTO, Candidate, DeviceInfo, ImageData, Plan, Prepared, ProbeOutcome

#: The whole run's default time budget (seconds) by table rows: (up to rows, seconds). A small table's
#: contest is done well inside it; a large one's budget leaves out what cannot finish.
DEFAULT_BUDGETS = ((10_000, 18.0), (100_000, 60.0), (500_000, 120.0), (None, 180.0))
#: A number column is tried as a category (a code, an ID, a count) when it holds whole numbers with
#: this many distinct values at most, and the table is no larger than CODES_ROWS.
CODE_VALUES, CODES_ROWS = 50, 100_000
#: A code is only worth reading as categories with this many rows a value on average: with fewer, its
#: categories are learnt from two or three rows each (a wine table's 118 rows and 45 magnesium
#: values), and the two "codes" candidates cost a third of the contest for nothing.
ROWS_PER_CODE = 10

#: The quick probe an image set gets when its look is not clear-cut (``core.probe``): the pretrained
#: features against the CNN's first epochs, cross-validated on the same folds of a stratified sample of
#: the training pictures, within a budget of its own (a quarter of the run's, when the run has one).
PROBE_PICTURES, PROBE_FOLDS, PROBE_BUDGET_S = 150, 3, 60.0
#: The CNN's epochs in the probe: enough for about this many picture presentations (a few epochs of
#: a small sample are a handful of optimiser steps, which says nothing), within these bounds.
PROBE_PRESENTATIONS, PROBE_EPOCHS = 600, (5, 20)
#: Fewer training pictures than this in a class and a probe's folds would say nothing: the look decides.
PROBE_MIN_PER_CLASS = 6

TASK_WORDS = {"binary": "a yes/no (binary) target", "multiclass": "a target with several classes",
              "regression": "a numeric target (regression)"}


@dataclass(frozen=True)
class Overrides:
    """What the user chose by hand; ``None`` or "auto" leaves the planner's choice."""

    model: str = "auto"
    valid_fraction: float | None = None  # None: the planner's share (10% of a large table, else 20%)
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
         device: DeviceInfo | None = None, probed: ProbeOutcome | None = None) -> Plan:
    """Choose the model and settings for ``data`` and say why.

    ``device`` is where a torch model would train (``core.device.pick_device``); None plans as if
    there were only the CPU. Images whose look is not clear-cut get a plan with ``probe`` candidates
    (the look's lean as ``model`` meanwhile); the job runs the probe and plans again with its
    outcome, ``probed``, which then decides between the pretrained path and the CNN.
    """
    overrides = overrides or Overrides()
    summary = summarise_data(data, overrides, device)
    if probed is not None and summary.image_look is not None:
        summary = replace(summary, image_look=replace(summary.image_look, probed=probed.pretrained))
    probing = isinstance(data, ImageData) and probed is None and _needs_probe(data, summary, overrides)
    reasons = (_describe_images(data, summary, overrides, probing, probed) if isinstance(data, ImageData)
               else _describe_table(data))
    if isinstance(data, Prepared) and (overrides.model or AUTO) == AUTO:
        return _contest_plan(data, summary, overrides, reasons)
    model, why = _choose_model(summary, overrides)
    family = get_family(model)
    tuned = family.tune(summary)
    reasons += [why, *tuned.reasons]
    probe = _probe_candidates(summary) if probing else ()
    image_size = _image_size(data, summary, family, {**tuned.params, **overrides.params}, probe) \
        if isinstance(data, ImageData) else None
    if isinstance(data, ImageData):
        reasons += _image_size_reasons(data, summary, family, {**tuned.params, **overrides.params}, image_size,
                                       probe)
    if family.family == "torch" and device is not None and device.type != "cpu":
        reasons.append(f"Training runs on the {device.badge}.")
    baseline = baseline_for(summary.kind) if family.role == "model" else None
    if baseline:
        reasons.append(f"A {get_family(baseline).label.lower()} is fitted first as a sanity baseline: the main model "
                       "has to beat it to be worth its complexity.")
    reasons.append(_split_reason(summary, overrides))
    if isinstance(data, ImageData) and _uneven_classes(data):
        reasons.append("Classes are unevenly sized: read balanced accuracy and the per-class curves, not only "
                       "accuracy.")
    return Plan(model=model, task=summary.task, reasons=tuple(reasons), params={**tuned.params, **overrides.params},
                baseline=baseline, baseline_params=get_family(baseline).tune(summary).params if baseline else {},
                valid_fraction=summary.valid_fraction, seed=int(overrides.seed), max_epochs=overrides.max_epochs,
                time_budget=overrides.time_budget, n_rows=summary.n_rows, image_size=image_size, probe=probe)


def default_budget(n_rows: int) -> float:
    """The whole run's time budget when the user sets none, by the table's size."""
    return next(seconds for rows, seconds in DEFAULT_BUDGETS if rows is None or n_rows <= rows)


def _contest_plan(data: Prepared, summary: DataSummary, overrides: Overrides, reasons: list[str]) -> Plan:
    """Automatic on a table: a contest between the families that suit its size (``core.contest``)."""
    candidates = contest_candidates(data, summary)
    budget = overrides.time_budget or default_budget(summary.n_rows)
    chosen = "you set" if overrides.time_budget else f"the default for {summary.n_rows:,} rows"
    words = ", ".join(c.label.lower() + (f" ({c.note})" if c.note else "") for c in candidates)
    reasons += [f"Automatic: {len(candidates)} candidates compete — {words} — and the best is delivered. They are "
                "judged on the training rows only (cross-validation, or one held-apart slice of a large table); "
                "the simpler model wins when scores are within the noise.",
                f"The whole run, contest included, takes at most {budget:.0f} s ({chosen}); what cannot finish in "
                "time is left out and said so."]
    for c in candidates:
        reasons += [r for r in get_family(c.model).tune(summary).reasons if r not in reasons]
    if any(c.params.get("weigh_classes") is False for c in candidates):
        names = " and ".join(c.label.lower() for c in candidates if c.params.get("weigh_classes") is False
                             and not c.note)
        reasons.append(f"{names[:1].upper() + names[1:]} learn the classes unweighted: weights blunt how well trees "
                       "rank the rows. The decision threshold, chosen on out-of-fold predictions, balances their "
                       "answers instead.")
    reasons.append(_split_reason(summary, overrides))
    return Plan(model=AUTO, task=summary.task, reasons=tuple(reasons), params={}, baseline=None,
                valid_fraction=summary.valid_fraction, seed=int(overrides.seed), max_epochs=overrides.max_epochs,
                time_budget=budget, n_rows=summary.n_rows, contest=candidates)


def contest_candidates(data: Prepared, summary: DataSummary) -> tuple[Candidate, ...]:
    """The contest's portfolio, simplest first: each family that enters at this size, with its own
    settings, plus variants where the data asks a question only scores can answer: the log scale
    for a positive, skewed target, and number columns that may be codes."""
    codes = _code_columns(data) if summary.n_rows <= CODES_ROWS else ()
    log_question = summary.task == "regression" and _positive_skewed(data.y)
    ranked = sorted((f for f in families("tabular") if f.enters_contest(summary)), key=lambda f: f.comparison_order)
    mains, variants = [], []
    # A rare positive class: trees rank rows better unweighted (a 5%-positive loan table: ROC AUC
    # 0.655 weighted, 0.702 not), and the out-of-fold threshold balances their answers instead.
    unweighted_trees = summary.task == "binary" and is_imbalanced(data.y, data.classes)
    for family in ranked:
        params = {**family.tune(summary).params, **summary.user_params}
        if unweighted_trees and not family.weighs_rare_binary:
            params.setdefault("weigh_classes", False)
        mains.append(Candidate(name=family.key, model=family.key, label=family.label, params=params))
        variants += [Candidate(name=f"{family.key}-{v.name}", model=family.key, label=f"{family.label} ({v.label})",
                               params={**params, **v.params, **summary.user_params}, note=v.note)
                     for v in family.contest_variants(summary)]
        if family.family != "sklearn" or family.key == "forest":
            continue  # variants for the quick ones: a forest or a network per variant costs too much
        if log_question:
            log = not params.get("log_target", False)
            variants.append(Candidate(name=f"{family.key}-{'log' if log else 'raw'}", model=family.key,
                                      label=f"{family.label} ({'log target' if log else 'original scale'})",
                                      params={**params, "log_target": log},
                                      note="the target on a log scale" if log else "the target on its own scale"))
        if codes:
            variants.append(Candidate(name=f"{family.key}-codes", model=family.key, label=f"{family.label} (codes)",
                                      params=params, as_category=codes,
                                      note=f"{', '.join(codes[:3])}{' …' if len(codes) > 3 else ''} read as "
                                           "categories"))
    # Scored in this order until the budget runs out: the quick families, their variants, then
    # the neural network (slow on a CPU, and it rarely wins on a small table).
    quick = [c for c in mains if get_family(c.model).family == "sklearn"]
    return (*quick, *variants, *(c for c in mains if c not in quick))


def _code_columns(data: Prepared) -> tuple[str, ...]:
    """Number columns of whole numbers with few distinct values (and rows enough to learn each):
    perhaps codes, IDs or counts."""
    names = []
    for c in data.used_columns:
        if c.role != "numeric" or not 3 <= c.n_unique <= min(CODE_VALUES, len(data.y) / ROWS_PER_CODE):
            continue
        # Cast as the model will (a column the user set to numeric may hold text: that is missing).
        values = cast_column(data.X[c.name], "numeric").to_numpy() if c.name in data.X else np.empty(0)
        values = values[np.isfinite(values)]
        if values.size and np.all(values == np.round(values)):
            names.append(c.name)
    return tuple(names)


def _positive_skewed(y) -> bool:
    """A positive target leaning right: whether its log scale fits better is for the contest to say."""
    skew = _positive_skew(y)
    return skew is not None and skew > 0.5


def _positive_skew(y) -> float | None:
    """The skewness of a positive target (None: too few values, or not all positive)."""
    values = np.asarray(y, dtype=float)
    if values.size < 20 or values.min() <= 0:
        return None
    centred = values - values.mean()
    return float(np.mean(centred**3) / (np.std(values) ** 3 + 1e-12))


def summarise_data(data: Prepared | ImageData, overrides: Overrides | None = None,
                   device: DeviceInfo | None = None) -> DataSummary:
    """The facts families tune on, with the user's fixed choices (validation share, epochs, params)."""
    overrides = overrides or Overrides()
    if isinstance(data, ImageData):
        n, k = len(data.labels), len(data.class_names)
        return DataSummary(kind="images", task="binary" if k == 2 else "multiclass", n_rows=n, n_classes=k,
                           numeric_share=1.0, device=device, max_epochs=overrides.max_epochs,
                           user_params=dict(overrides.params), valid_fraction=_valid_fraction(n, overrides),
                           image_look=image_look(data))
    used = data.used_columns
    return DataSummary(kind="tabular", task=data.task, n_rows=len(data.X), n_classes=len(data.classes),
                       numeric_share=float(np.mean([c.role == "numeric" for c in used])) if used else 0.0,
                       heavy_tailed_target=data.task == "regression" and _heavy_tailed_positive(data.y),
                       device=device, max_epochs=overrides.max_epochs, user_params=dict(overrides.params),
                       valid_fraction=_valid_fraction(len(data.X), overrides))


def _choose_model(summary: DataSummary, overrides: Overrides) -> tuple[str, str]:
    """The user's model (checked), or the family that most wants this data."""
    choice = overrides.model or "auto"
    if choice == "auto":
        ranked = [(f.auto_preference(summary), -i, f) for i, f in enumerate(families(summary.kind))]
        preference, _, family = max(ranked, key=lambda r: r[:2])
        if preference <= 0:
            raise PlanError("No model can be picked automatically for this data. Choose one in the settings.")
        return family.key, family.why(summary)
    if choice not in trainable():
        raise PlanError(f"There is no model called '{choice}'. Choose one of: {', '.join(trainable())}.")
    if summary.kind not in get_family(choice).kinds:
        what = "tables" if summary.kind == "tabular" else "images"
        raise PlanError(f"The model '{choice}' does not work on {what}. Choose 'auto' to let Trainboard pick.")
    return choice, f"You chose: {get_family(choice).label}."


def _valid_fraction(n_rows: int, overrides: Overrides) -> float:
    if overrides.valid_fraction is not None:
        f = float(overrides.valid_fraction)
        if not 0.05 <= f <= 0.5:
            raise PlanError("The validation share must be between 5% and 50% of the rows.")
        return f
    return 0.1 if n_rows >= LARGE_TABLE else 0.2


def _split_reason(summary: DataSummary, overrides: Overrides) -> str:
    f, unit = summary.valid_fraction, "rows" if summary.kind == "tabular" else "images"
    if overrides.valid_fraction is not None:
        text = f"You chose to hold out {f:.0%} of the {unit} for validation."
    else:
        text = (f"{f:.0%} of the {unit} (about {int(summary.n_rows * f):,}) are held out for validation: the model "
                "never trains on them, so its scores there are honest.")
    if summary.kind == "images":
        return text + " The split is stratified by class."
    if summary.task != "regression":
        text += " The split is stratified: every class keeps its share in both parts."
    return text


def _describe_table(data: Prepared) -> list[str]:
    reasons = [_table_line(data)]
    if dropped := data.dropped_columns:
        listed = "; ".join(f"'{c.name}' ({c.reason})" for c in dropped[:6])
        more = f" and {len(dropped) - 6} more" if len(dropped) > 6 else ""
        reasons.append(f"Left out {len(dropped)} column{'s' * (len(dropped) > 1)}: {listed}{more}.")
    reasons += _feature_reasons(data)
    if data.task != "regression" and is_imbalanced(data.y, data.classes):
        share = minority_share(data.y, data.classes)
        reasons.append(f"The rarest class is only {share:.0%} of the rows, so classes are weighted to count equally, "
                       "and accuracy misleads here (always answering the common class scores high): "
                       "read balanced accuracy and the precision-recall curve instead.")
    return reasons


#: Pictures the planner's look at an image set reads (an even sample of them).
LOOK_SAMPLE = 256
_SHADES = 32  # a picture's greys in 32 bands of 8 levels: "its most common shade"


def image_look(data: ImageData) -> ImageLook:
    """Cheap evidence of whether the pictures are photos or glyphs: how large they are stored, and how
    much of each is one flat shade (a background), on an even sample of up to ``LOOK_SAMPLE`` pictures."""
    sides = [min(size) for size in data.sizes] if data.sizes else [data.image_size]
    n = len(data.images)
    if n == 0:
        return ImageLook(stored_side=float(np.median(sides)), colour=data.channels == 3, flat_share=1.0)
    sample = data.images[np.linspace(0, n - 1, min(n, LOOK_SAMPLE)).astype(int)]
    grey = sample.mean(axis=1) if sample.shape[1] == 3 else sample[:, 0]
    bands = (grey.reshape(len(sample), -1) // (256 // _SHADES)).astype(np.int64)
    rows = np.arange(len(sample))[:, None] * _SHADES  # one run of bins per picture, for one bincount
    counts = np.bincount((bands + rows).ravel(), minlength=len(sample) * _SHADES).reshape(len(sample), _SHADES)
    flat = float(np.median(counts.max(axis=1) / bands.shape[1]))
    return ImageLook(stored_side=float(np.median(sides)), colour=data.channels == 3, flat_share=flat)


def _describe_images(data: ImageData, summary: DataSummary, overrides: Overrides, probing: bool = False,
                     probed: ProbeOutcome | None = None) -> list[str]:
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    colour = "greyscale" if data.channels == 1 else "colour"
    reasons = [f"Images: {len(data.labels):,} {colour} pictures in {len(data.class_names)} classes (smallest class "
               f"{counts.min()}, largest {counts.max()})."]
    look = summary.image_look
    if look is None or (overrides.model or AUTO) != AUTO:
        return reasons
    from core.models.pretrained_family import backbone_problem

    reasons.append(look.words())
    problem = backbone_problem()
    if look.looks_like_photos and problem:
        reasons.append(f"A network pretrained on photos would suit them, but it cannot be used here ({problem}): "
                       "the CNN trained from scratch is used instead.")
    elif probed is not None:
        reasons += ["The look alone was not clear-cut, so a quick probe on the training pictures decided.",
                    *probed.reasons]
    elif probing:
        lean = "the pretrained network" if look.looks_like_photos else "the CNN"
        reasons.append(
            f"The look alone is not clear-cut, so the job first runs a quick probe: on a sample of up to "
            f"{PROBE_PICTURES} training pictures (never the validation ones), {PROBE_FOLDS}-fold cross-validation "
            f"scores a network pretrained on photos (its features + logistic regression) against the CNN's first "
            f"{probe_epochs(summary)} epochs, within {_probe_budget(overrides.time_budget):.0f} s of the run. The "
            f"better one trains (the simpler CNN when they are within the noise); if both cannot be scored in time "
            f"the look's lean stands. It leans to {lean}, whose settings follow.")
    else:
        if not look.clear_cut and not problem:
            reasons.append(f"The look is not clear-cut, but the smallest class has too few training pictures for a "
                           f"probe to tell the models apart (fewer than {PROBE_MIN_PER_CLASS}): the look decides.")
        if look.photo_like:
            reasons.append("For photos a network pretrained on a million photos beats one trained from scratch on the "
                           "few pictures at hand, so the pretrained network is used.")
        else:
            reasons.append("For such pictures a small network trained on them from scratch does best: features of a "
                           "network pretrained on photos do worse on tiny glyphs than the pixels themselves.")
    return reasons


def _probe_budget(time_budget: float | None) -> float:
    """The probe's seconds: its own cap, or a quarter of the run's budget when that is less."""
    return PROBE_BUDGET_S if not time_budget else min(PROBE_BUDGET_S, 0.25 * float(time_budget))


def probe_budget(the_plan: Plan) -> float:
    """The seconds the job's probe may take (``core.probe``)."""
    return _probe_budget(the_plan.time_budget)


def _needs_probe(data: ImageData, summary: DataSummary, overrides: Overrides) -> bool:
    """Automatic, the backbone usable, a look that is not clear-cut, and classes big enough to probe."""
    from core.models.pretrained_family import backbone_problem

    look = summary.image_look
    if (overrides.model or AUTO) != AUTO or look is None or look.clear_cut or backbone_problem():
        return False
    smallest = int(np.bincount(data.labels, minlength=len(data.class_names)).min())
    return smallest * (1 - summary.valid_fraction) >= PROBE_MIN_PER_CLASS


def probe_epochs(summary: DataSummary) -> int:
    """The CNN's epochs in the probe: about ``PROBE_PRESENTATIONS`` pictures seen by a fold's fit."""
    sample = min(PROBE_PICTURES, summary.n_rows * (1 - summary.valid_fraction))
    fit_rows = max(1.0, sample * (1 - 1 / PROBE_FOLDS) * 0.9)  # a fold's training part, less its stopping slice
    low, high = PROBE_EPOCHS
    return int(np.clip(np.ceil(PROBE_PRESENTATIONS / fit_rows), low, high))


def _probe_candidates(summary: DataSummary) -> tuple[Candidate, ...]:
    """What the probe scores, each with the settings training it would use: the pretrained features
    first (the sample is read through the network once, then each fold only fits a regression), then
    the CNN for its first epochs."""
    cnn, features = get_family("cnn"), get_family("embed+linear")
    epochs = probe_epochs(summary)
    return (Candidate(name="embed+linear", model="embed+linear", label=features.label,
                      params={**features.tune(summary).params, **summary.user_params}),
            Candidate(name="cnn", model="cnn", label=f"{cnn.label} (first {epochs} epochs)",
                      params={**cnn.tune(summary).params, **summary.user_params, "epochs": epochs}))


def _image_size(data: ImageData, summary: DataSummary, family, params: Mapping[str, Any],
                probe: tuple[Candidate, ...]) -> int:
    """The side the job loads the pictures at: the family's own (``ModelFamily.picture_side``) — for a
    probe the largest its candidates read — where the pictures hold it and memory allows."""
    from core.images import choose_size

    wanted = [side for side in (get_family(c.model).picture_side(c.params) for c in probe) if side]
    if not probe and (side := family.picture_side(params)):
        wanted.append(side)
    return choose_size(stored_sides(data), data.channels, prefer=max(wanted) if wanted else None)


def stored_sides(data: ImageData) -> list[int]:
    """Each picture's short side as stored (the loaded side when the files' sizes are unknown)."""
    return [min(size) for size in data.sizes] if data.sizes else [data.image_size] * len(data.labels)


def _image_size_reasons(data: ImageData, summary: DataSummary, family, params: Mapping[str, Any],
                        image_size: int, probe: tuple[Candidate, ...]) -> list[str]:
    from core.images import choose_size

    own = choose_size(stored_sides(data), data.channels)
    reads_large = bool(probe) or family.picture_side(params) is not None
    if image_size > own and probe:
        text = (f"The pictures are loaded at {image_size}×{image_size} px for the pretrained network (the CNN gets "
                f"them at its own {own} px).")
    elif image_size > own:
        text = (f"The pictures are loaded at {image_size}×{image_size} px for the pretrained network rather than the "
                f"{own} px a CNN would use, so it sees the detail it reads.")
    elif reads_large and image_size < int(params.get("input_size") or 0):
        text = (f"The pictures are loaded at {image_size}×{image_size} px: that is all the detail they hold (or all "
                "that fits in memory); the network enlarges them itself.")
    else:
        text = f"The pictures are loaded at {image_size}×{image_size} px."
    reasons = [text]
    if summary.user_params.get("input_size") and not reads_large:
        reasons.append(f"The input size you chose ({summary.user_params['input_size']} px) is for the pretrained "
                       f"network; the {family.label.lower()} reads the pictures at {image_size} px.")
    return reasons


def _uneven_classes(data: ImageData) -> bool:
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    return counts.min() / counts.max() < 0.5


def _table_line(data: Prepared) -> str:
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
    # Imported here: the rest of the planner does not need these facts of the preparation.
    from core.features import DATE_PAIR_COLUMNS, TEXT_CHAR_NGRAMS

    reasons = []
    dates = [c.name for c in data.used_columns if c.role == "datetime"]
    if dates:
        reasons.append(f"Dates ({', '.join(dates)}) are split into year, month, day, weekday and day of year, "
                       "so seasonal patterns can be learnt, and each also becomes a count of days (since "
                       "1 January 1970), so trends over time can be learnt too.")
    if len(dates) >= 2:
        which = "each two dates" if len(dates) <= DATE_PAIR_COLUMNS else f"each two of the first {DATE_PAIR_COLUMNS} dates"
        reasons.append(f"The number of days between {which} ('{dates[1]}' minus '{dates[0]}', …) is an input too, "
                       "so durations such as a delivery time can be learnt.")
    texts = [c.name for c in data.used_columns if c.role == "text"]
    if texts:
        low, high = TEXT_CHAR_NGRAMS
        reasons.append(f"Free text ({', '.join(texts)}) is read as words, pairs of words and pieces of words "
                       f"({low} to {high} letters), so misspellings and other endings of a word still match. Linear "
                       "models and neural networks weigh each of these. Tree models get the text's own score instead "
                       "(beside a short summary of what it is about): a simple model learns the target from these "
                       "words, and each training row's score comes from a copy of that model that never saw the row, "
                       "so it cannot leak the answer.")
    many = [c.name for c in data.used_columns if c.role == "categorical" and c.n_unique >= NATIVE_CATEGORY_LIMIT]
    if many:
        reasons.append(f"Columns with very many categories ({', '.join(many)}) are replaced by the average target "
                       "of each category, learnt without peeking at the row itself.")
    return reasons


def _heavy_tailed_positive(y) -> bool:
    skew = _positive_skew(y)
    values = np.asarray(y, dtype=float)
    return skew is not None and skew > 1.0 and values.max() / np.median(values) > 5
