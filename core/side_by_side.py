"""Saved runs side by side (the Runs page): which runs share their data, their scores in one
table, and how their plans differ. Pure functions over ``core.run_record.RunRecord``s; the
figures are ``core.plots.loss_curves_compared`` / ``pr_curves_compared``.

Runs are comparable only on the same data: the same source, number of rows and target
(their manifests' ``data`` sections). Scores and losses of runs on different data say nothing
about which model is better.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.evaluation import LOWER_IS_BETTER, METRIC_NAMES
from core.run_record import RunRecord

MISSING = "—"


@dataclass(frozen=True)
class DataKey:
    """What makes two runs' data the same."""

    source: str
    n_rows: int
    target: str

    @property
    def words(self) -> str:
        """``churn.csv (7,043 rows, predicting churned)``."""
        return f"{self.source} ({self.n_rows:,} rows, predicting {self.target})"


def data_key(run: RunRecord) -> DataKey:
    return DataKey(run.data.source, run.data.n_rows, run.data.target)


def by_data(runs: Sequence[RunRecord]) -> dict[DataKey, list[RunRecord]]:
    """The runs grouped by their data, in the order each data first appears."""
    groups: dict[DataKey, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(data_key(run), []).append(run)
    return groups


def same_data(runs: Sequence[RunRecord]) -> bool:
    return len(by_data(runs)) <= 1


def metric_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per score any of the runs has: its name, then each run's value (None where the
    score does not apply), and which run is best on it (None on a tie or with one value)."""
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics if k in METRIC_NAMES))
    rows = []
    for key in keys:
        values = {r.run_id: r.metrics.get(key) for r in runs}
        known = {run_id: v for run_id, v in values.items() if v is not None}
        pick = min if key in LOWER_IS_BETTER else max
        best = pick(known, key=known.__getitem__) if len(known) > 1 else None
        if best is not None and sum(v == known[best] for v in known.values()) > 1:
            best = None
        rows.append({"score": METRIC_NAMES[key] + (" (lower is better)" if key in LOWER_IS_BETTER else ""),
                     "key": key, "values": values, "best": best})
    return rows


@dataclass(frozen=True)
class Difference:
    """One setting on which the plans differ, with each run's value in words (``MISSING``: the
    run has no such setting)."""

    setting: str
    values: tuple[str, ...]


def plan_facts(run: RunRecord) -> dict[str, str]:
    """A run's plan as setting → value in words: the model, the split, the threshold, the limits,
    the contest's candidates, the columns used, then the model's settings."""
    split = run.split
    facts = {"model": f"{run.model.label} ({run.model.key})"}
    facts.update({
        "split": split.strategy.replace("_", " "),
        "validation share": f"{split.valid_fraction:.0%}",
        "seed": str(split.seed),
        "training rows": f"{split.n_train:,}",
        "validation rows": f"{split.n_valid:,}",
        "threshold": (f"{run.threshold.value:.2f} ({run.threshold.chosen_by})" if run.threshold is not None
                      else MISSING),
        "time budget": f"{run.time_budget:g} s" if run.time_budget is not None else "none",
        "most epochs / rounds": str(run.max_epochs) if run.max_epochs is not None else "the model's own",
        "contest": ", ".join(c.get("label") or c["model"] for c in run.candidates) if run.candidates else "none",
        "columns used": ", ".join(run.data.feature_columns) if run.kind == "tabular" else MISSING,
    })
    # the model's own settings last: they differ between any two families, and would hide the rest
    facts.update({f"setting: {name}": _words(value) for name, value in sorted(run.model.params.items())})
    return facts


def plan_diff(runs: Sequence[RunRecord]) -> list[Difference]:
    """The settings whose values differ between the runs' plans, in the order ``plan_facts`` gives
    them (the model first, its settings last); settings every run shares are left out."""
    facts = [plan_facts(r) for r in runs]
    settings = list(dict.fromkeys(name for f in facts for name in f))
    out = []
    for name in settings:
        values = tuple(f.get(name, MISSING) for f in facts)
        if len(set(values)) > 1:
            out.append(Difference(name, values))
    return out


def _words(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
