"""Pieces the Evaluate, Predict and Runs pages share: the run picker, the cached report, task and
metric wording, chunked prediction and the image-run gallery (the Data page's are in data_views)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import planner
from core.evaluation import LOWER_IS_BETTER, METRIC_NAMES
from core.image_eval import read_gallery
from core.progress import summarise
from core.run_record import MANIFEST_FILE, Report, RunRecord, report_from_run
from core.runs import list_runs
from ui import pages, state
from ui.live import polled_job

TASK_WORDS = {
    "binary": "a yes/no question (binary classification): the model picks one of two classes",
    "multiclass": "a choice between {n} classes (multiclass classification)",
    "regression": "a number (regression): the model predicts a value, and is judged by how far off it is",
}
#: The tiles on the Evaluate page per task, most telling first.
HEADLINE_METRICS = {
    "binary": ("roc_auc", "average_precision", "balanced_accuracy", "accuracy"),
    "multiclass": ("macro_f1", "balanced_accuracy", "accuracy", "log_loss"),
    "regression": ("r2", "mae", "rmse"),
}
METRIC_HELP = {
    "roc_auc": "Chance that a random positive case is ranked above a random negative one. 0.5 is guessing, 1 perfect.",
    "average_precision": "Area under the precision-recall curve; guessing scores the positive share.",
    "balanced_accuracy": "Accuracy averaged over the classes, so a rare class counts as much as a common one.",
    "accuracy": "Share of validation rows predicted right. Misleading when one class dominates.",
    "macro_f1": "F1 (balance of precision and recall) per class, averaged so every class counts equally.",
    "log_loss": "How confident the wrong answers were; lower is better.",
    "r2": "Share of the target's variation the model explains: 1 is perfect, 0 is no better than the mean.",
    "mae": "Average size of an error, in the target's own units; lower is better.",
    "rmse": "Like the mean absolute error but large errors weigh more; lower is better.",
}


def task_words(task: str, n_classes: int = 0) -> str:
    return TASK_WORDS[task].format(n=n_classes)


def metric_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def metric_delta(key: str, value: float | None, reference: float | None) -> tuple[str | None, str]:
    """The delta text for ``st.metric`` and its colour rule (lower-is-better metrics inverted)."""
    if value is None or reference is None:
        return None, "normal"
    return f"{value - reference:+.3f}", "inverse" if key in LOWER_IS_BETTER else "normal"


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


# ---------------------------------------------------------------- runs


def run_label(run: RunRecord) -> str:
    """``2026-11-22 10:15 · churn.csv · HistGradientBoostingClassifier · ROC AUC 0.864``."""
    when = run.created.replace("T", " ")[:16]
    score = f"{metric_name(run.main_metric)} {metric_text(run.value)}"
    stopped = " · stopped" if run.cancelled else ""
    return f"{when} · {run.data.source} · {run.model.name} · {score}{stopped}"


def pick_run(key: str, label: str = "Run") -> RunRecord | None:
    """A selectbox of this server's runs, newest first, defaulting to the session's opened run.

    With no runs it says so, links to Train and returns None. The choice is stored as the
    session's opened run, so Evaluate and Predict show the same one.
    """
    runs = list_runs(state.runs_dir(), visible_to=state.workspace())
    if not runs:
        st.info("No trained runs yet. Load data, then train a model: its results will appear here.")
        pages.link(pages.TRAIN, "Go to the Train page")
        return None
    by_path = {str(r.path): r for r in runs}
    opened = st.session_state.get(state.RUN)
    opened = str(Path(opened)) if opened else None
    st.session_state[key] = opened if opened in by_path else str(runs[0].path)

    def _remember() -> None:
        st.session_state[state.RUN] = st.session_state[key]

    chosen = st.selectbox(label, list(by_path), key=key, format_func=lambda p: run_label(by_path[p]),
                          on_change=_remember)
    st.session_state[state.RUN] = chosen
    return by_path[chosen]


@st.cache_data(max_entries=16, show_spinner="Reading the run…")
def _report(run_dir: str, stamp: float) -> Report:
    return report_from_run(run_dir)


def cached_report(run_dir: str | Path) -> Report:
    """``report_from_run``, computed once per run folder and manifest version."""
    return _report(str(run_dir), (Path(run_dir) / MANIFEST_FILE).stat().st_mtime)


def side_legend(fig: Any, most_on_top: int = 3) -> Any:
    """A legend of many entries goes beside the chart instead of squeezing it from above."""
    if sum(trace.showlegend is not False for trace in fig.data) > most_on_top:
        fig.update_layout(legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig


def minority_share(run: RunRecord) -> float:
    """The rarest class's share of the validation rows (1.0 for regression)."""
    return planner.minority_share(run.predictions["true"], run.classes)


def is_imbalanced(run: RunRecord) -> bool:
    """The planner's imbalance rule, applied to the validation rows."""
    return run.classification and planner.is_imbalanced(run.predictions["true"], run.classes)


def job_progress(job_id: str, words: str) -> None:
    """A progress bar for a short background job (prediction); reruns the page when it ends."""

    @st.fragment(run_every=0.5)
    def _bar() -> None:
        job = polled_job(job_id)
        if job is None or job.state == "queued":
            return
        st.progress(summarise(job.events).fraction, text=f"{words} ({job.elapsed:.0f} s)")

    _bar()


@st.cache_data(show_spinner=False, max_entries=4)
def load_predictions(csv_path: str) -> tuple[pd.DataFrame, bytes]:
    """The predictions a job wrote: a frame for the preview and the CSV bytes for the download."""
    path = Path(csv_path)
    return pd.read_parquet(path.with_suffix(".parquet")), path.read_bytes()


def predictions_excel(csv_path: str) -> Callable[[], bytes]:
    """The Excel download of a job's predictions, made only when the button is clicked."""
    from core.predict import excel_bytes

    return lambda: excel_bytes(pd.read_parquet(Path(csv_path).with_suffix(".parquet")))


# ---------------------------------------------------------------- images


#: The most confidently wrong validation images of an image run (read in ``core.image_eval``).
load_gallery = read_gallery
