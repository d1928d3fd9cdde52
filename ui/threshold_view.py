"""The Evaluate page's operating point for binary runs: a threshold slider, what the model does
there (precision, recall, rows flagged), and saving the threshold with the run for Predict."""

from __future__ import annotations

import streamlit as st

from core.errors import TrainboardError
from core.evaluation import OperatingPoint, at_threshold
from core.run_record import RunRecord
from core.runs import save_threshold
from ui import state


def threshold_section(run: RunRecord) -> OperatingPoint | None:
    """Draw the slider and its tiles for a binary run; the point at the slider's threshold (the
    confusion matrix and the PR curve follow it), or None for other runs."""
    if run.task != "binary" or run.threshold is None:
        return None
    positive, saved = run.classes[-1], run.threshold
    st.subheader("Where to draw the line")
    picked_value = st.slider(f"Predict “{positive}” when its probability is at least", 0.0, 1.0,
                             value=float(saved.value), step=0.01, format="%.2f",
                             key=state.threshold_key(run.run_id))
    point = at_threshold(run.predictions, run.classes, picked_value)
    before = at_threshold(run.predictions, run.classes, saved.value)
    changed = abs(picked_value - saved.value) > 1e-9
    tiles = st.columns(3)
    for tile, name, now, then, words in (
            (tiles[0], "Precision", point.precision, before.precision,
             f"Of the rows it calls “{positive}”, the share that really are."),
            (tiles[1], "Recall", point.recall, before.recall,
             f"Of the rows that really are “{positive}”, the share it finds.")):
        delta = f"{now - then:+.1%}" if changed and now is not None and then is not None else None
        tile.metric(name, _percent(now), delta, help=words, border=True)
    tiles[2].metric(f"Called “{positive}”", f"{point.n_flagged:,} of {len(run.predictions):,}",
                    help="Validation rows at or above the threshold.", border=True)
    st.caption(f"Lower the threshold to find more real “{positive}” cases (recall up) at the price of more "
               "false alarms (precision down); raise it for fewer, surer alarms. The confusion matrix and the "
               "red dot on the precision-recall curve follow the slider"
               + (f"; the small numbers compare with the saved threshold {saved.value:.2f}." if changed else "."))
    who = {"you": "chosen by you", "default": "the default: the more probable class",
           "out-of-fold": "chosen for the best macro F1 on the training rows' out-of-fold predictions, before the "
                          "validation rows were looked at"}.get(saved.chosen_by, f"chosen by {saved.chosen_by}")
    st.caption(f"Predict uses this run's saved threshold, {saved.value:.2f} ({who}).")
    st.button(f"Save threshold {picked_value:.2f} with this run", disabled=not changed,
              on_click=_save_threshold, args=(str(run.path), run.run_id, picked_value),
              help="Predictions made with this run from now on use this threshold.")
    note = st.session_state.pop(state.EVALUATE_THRESHOLD_SAVED, None)
    if note is not None and note[0] == run.run_id:
        (st.success if note[1] == "success" else st.error)(note[2])
    return point


def _save_threshold(run_dir: str, run_id: str, value: float) -> None:
    """The Save button: record the picked threshold in the run; the page then reads it back."""
    try:
        save_threshold(run_dir, value, state.runs_dir())
        note = ("success", f"Saved: this run now predicts with threshold {value:.2f}, on the Predict page too.")
    except TrainboardError as err:
        note = ("error", str(err))
    st.session_state[state.EVALUATE_THRESHOLD_SAVED] = (run_id, *note)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
