"""Runs: the models this browser's workspace trained, and the server's shared ones, newest first;
open one, compare several, delete."""

import streamlit as st

from core.errors import TrainboardError
from core.runs import delete_run, list_runs
from ui import pages, report_view, side_by_side_view, state, views
from ui.bundle_view import bundle_button
from ui.widgets import lost_jobs_notice

st.title("Runs")
st.caption("The models you trained, and any the server shares with everyone, newest first. Each run keeps its "
           "model, scores and charts. Others on this server do not see your runs; this page's address holds "
           "your workspace, so keep it (bookmark it) to come back to them later.")
lost_jobs_notice()
runs = list_runs(state.runs_dir(), visible_to=state.workspace())
if not runs:
    st.info("No trained runs yet. Load data, then train a model: each training run is saved here.")
    pages.link(pages.TRAIN, "Go to the Train page")
    st.stop()

st.dataframe([{"when (UTC)": r.created.replace("T", " ")[:16], "data": r.data.source, "task": r.task,
               "model": r.model.name, "score": views.metric_name(r.main_metric), "value": r.value,
               "status": "stopped by you" if r.cancelled else "finished"} for r in runs],
             hide_index=True, column_config={"value": st.column_config.NumberColumn(format="%.3f")})
st.caption("The score is each run's headline metric on its own validation rows: compare values only between "
           "runs on the same data.")

by_path = {str(r.path): r for r in runs}
st.session_state[state.RUNS_PICKED] = [p for p in st.session_state.get(state.RUNS_PICKED, []) if p in by_path]
picked = st.multiselect("Select runs to open, compare or delete", list(by_path), key=state.RUNS_PICKED,
                        format_func=lambda p: views.run_label(by_path[p]),
                        placeholder="Pick one run to open it, two or more on the same data to compare them")


def _ask_delete() -> None:
    st.session_state[state.RUNS_TO_DELETE] = list(st.session_state[state.RUNS_PICKED])


def _delete(paths: list[str]) -> None:
    for path in paths:
        try:
            delete_run(path, state.runs_dir())
        except TrainboardError as err:
            st.session_state[state.RUNS_DELETE_ERROR] = str(err)
    if st.session_state.get(state.RUN) in paths:
        st.session_state.pop(state.RUN)
    st.session_state[state.RUNS_PICKED] = []
    st.session_state.pop(state.RUNS_TO_DELETE, None)


open_col, predict_col, delete_col = st.columns(3)
if open_col.button("Open in Evaluate", disabled=len(picked) != 1, icon=":material/query_stats:", width="stretch"):
    st.session_state[state.RUN] = picked[0]
    pages.switch(pages.EVALUATE)
if predict_col.button("Predict with it", disabled=len(picked) != 1, icon=":material/online_prediction:",
                      width="stretch"):
    st.session_state[state.RUN] = picked[0]
    pages.switch(pages.PREDICT)
delete_col.button("Delete…", disabled=not picked, icon=":material/delete:", width="stretch", on_click=_ask_delete)
if len(picked) == 1:  # what to take away from it
    bundle_button(by_path[picked[0]], key="runs-bundle")
    report_view.report_download(by_path[picked[0]], "runs")

if error := st.session_state.pop(state.RUNS_DELETE_ERROR, None):
    st.error(error)
doomed = st.session_state.get(state.RUNS_TO_DELETE)
if doomed:
    st.warning(f"Delete {len(doomed)} run{'s' if len(doomed) > 1 else ''} for good? The model, its scores and "
               "charts are removed from the server: " + "; ".join(views.run_label(by_path[p]) for p in doomed
                                                                   if p in by_path))
    yes, no, _ = st.columns([1, 1, 4])
    yes.button("Yes, delete", type="primary", on_click=_delete, args=(doomed,))
    no.button("Cancel", on_click=lambda: st.session_state.pop(state.RUNS_TO_DELETE, None))

if len(picked) >= 2:
    side_by_side_view.compare_section([by_path[p] for p in picked], runs)
