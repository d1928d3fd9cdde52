"""The Runs page's comparison of two or more runs on the same data: their scores in one table,
validation losses and precision-recall curves overlaid, and how their plans differ
(``core.side_by_side``). Runs on different data are not compared: it says so and offers the
groups of runs that do share their data."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from core import plots, side_by_side
from core.errors import TrainboardError
from core.run_record import RunRecord
from ui import state, views


def _pick(paths: list[str]) -> None:
    st.session_state[state.RUNS_PICKED] = paths


def compare_section(picked: Sequence[RunRecord], every: Sequence[RunRecord]) -> None:
    """Compare the ``picked`` runs (two or more); ``every`` run is searched for groups on one data."""
    groups = side_by_side.by_data(picked)
    if len(groups) > 1:
        st.warning("These runs were trained on different data: " + "; ".join(key.words for key in groups)
                   + ". Their scores cannot be compared, since a score says how well a model does on its own data. "
                   "Pick runs on the same data.")
        for key, runs in side_by_side.by_data(every).items():
            if len(runs) > 1:
                st.button(f"Compare the {len(runs)} runs on {key.words}", key=f"compare-group:{key}",
                          on_click=_pick, args=([str(r.path) for r in runs],))
        return
    (key,) = groups
    try:
        reports = [views.cached_report(r.path) for r in picked]
    except TrainboardError as err:  # a run folder damaged since it was listed
        st.error(str(err))
        return
    runs = [report.run for report in reports]
    st.subheader(f"Comparing {len(runs)} runs on {key.words}")
    rows = side_by_side.metric_rows(runs)
    ids = [r.run_id for r in runs]
    frame = pd.DataFrame([{"score": row["score"]} | row["values"] for row in rows])
    best = pd.DataFrame([{"score": ""} | {i: "font-weight: bold" if row["best"] == i else "" for i in ids}
                         for row in rows])
    st.dataframe(frame.style.apply(lambda _: best, axis=None).format("{:.3f}", subset=ids, na_rep="—"),
                 hide_index=True)
    st.caption("Each column is one run (its folder name says when, on what data and with which model); the best "
               "value of each score is in bold. A blank cell: that score does not apply to the run's task.")

    differences = side_by_side.plan_diff(runs)
    st.markdown("**How their plans differ**")
    if differences:
        st.dataframe(pd.DataFrame([{"setting": d.setting} | dict(zip(ids, d.values, strict=True))
                                   for d in differences]), hide_index=True, height="content")
        st.caption("Only the settings that differ: the model, its settings, the split, the threshold and the "
                   "limits each run was planned with. Everything else was the same.")
    else:
        st.caption("Their plans are the same: the same model, settings, split, threshold and limits.")

    if any(len(r.history) > 1 for r in runs):  # models fitted in one go have no curve to overlay
        st.plotly_chart(plots.loss_curves_compared({r.run_id: r.history for r in runs}))
        st.caption("Validation loss while each run trained: lower is better, and a curve that turns up means "
                   "overfitting. A run fitted in one go shows a single point.")
    curves = {report.run.run_id: report.pr_curves for report in reports if report.pr_curves}
    if curves:
        st.plotly_chart(plots.pr_curves_compared(curves))
        st.caption("Precision against recall on each run's validation rows: the curve higher and further right "
                   "finds more real cases with fewer false alarms. Average precision (AP) sums it up.")
