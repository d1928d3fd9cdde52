"""Train: the plan in plain words, overrides, then live training in a background job."""

import streamlit as st

from core.errors import TrainboardError
from core.evaluation import METRIC_NAMES
from core.models import REGISTRY, get_family
from core.pipeline import JobSpec, make_plan
from core.planner import Overrides
from core.runs import load_manifest
from ui import state
from ui.compare_view import compare_section
from ui.live import job_panel
from ui.widgets import need_data

st.title("Train")
if not need_data():
    st.stop()

data = state.loaded()
try:
    prepared = state.prepared()
except TrainboardError as err:
    st.error(str(err))
    st.page_link("app_pages/data.py", label="Fix it on the Data page", icon=":material/upload_file:")
    st.stop()

kind = data.kind
job = state.current_job()
busy = job is not None and not job.done

with st.expander("Settings (optional: the automatic choices are sensible)", expanded=False):
    choices = ["auto"] + [k for k in REGISTRY if kind in get_family(k).kinds]
    left, right = st.columns(2)
    model = left.selectbox("Model", choices, disabled=busy,
                           format_func=lambda k: "Automatic (recommended)" if k == "auto" else get_family(k).label,
                           help="Leave on automatic unless you want to compare a specific model.")
    share = left.slider("Validation share", 0.1, 0.4, 0.2, 0.05, disabled=busy,
                        help="Rows held out to judge the model honestly; it never trains on them.")
    seed = right.number_input("Random seed", 0, 10_000, 0, disabled=busy,
                              help="The same seed and data give the same split and the same model.")
    epochs = right.number_input("Most epochs / boosting rounds / trees (0 = automatic)", 0, 5000, 0, disabled=busy)
    budget = right.number_input("Time budget in seconds (0 = none)", 0, 3600, 0, disabled=busy,
                                help="Training stops at this time and keeps the best model so far.")
    flip = kind == "images" and left.checkbox(
        "Mirror images while training", disabled=busy,
        help="Only when a mirrored picture keeps its class (a cat is still a cat; a 'b' becomes a 'd').")

overrides = Overrides(model=model, valid_fraction=share if share != 0.2 else None, seed=int(seed),
                      max_epochs=int(epochs) or None, time_budget=float(budget) or None,
                      params={"flip": True} if flip else {})
try:
    plan = make_plan(prepared, overrides)
except TrainboardError as err:
    st.error(str(err))
    st.stop()

st.subheader(f"The plan: {get_family(plan.model).label}")
st.markdown("\n".join(f"- {reason}" for reason in plan.reasons))

if st.button("Start training", type="primary", disabled=busy, icon=":material/play_arrow:"):
    spec = JobSpec(source=data.path, name=data.name, target=st.session_state.get(state.TARGET),
                   roles=dict(st.session_state.get(state.ROLES) or {}), overrides=overrides,
                   runs_dir=str(state.runs_dir()))
    st.session_state[state.JOB] = state.job_manager().submit(spec, owner=state.session().owner)
    st.rerun()

if kind == "tabular":
    with st.expander("Compare models first", icon=":material/leaderboard:"):
        compare_section(dict(source=data.path, name=data.name, target=st.session_state.get(state.TARGET),
                             roles=dict(st.session_state.get(state.ROLES) or {}), runs_dir=str(state.runs_dir())),
                        seed=int(seed), busy=busy)

if job is not None:
    st.divider()
    st.subheader("Training")
    if not job.done:
        job_panel(job.job_id)
    elif job.run_dir:
        st.session_state[state.RUN] = job.run_dir
        manifest = load_manifest(job.run_dir)
        key = manifest["main_metric"]
        value = manifest["metrics"].get(key)
        base = (manifest["baseline"].get("metrics") or {}).get(key)
        note = "Stopped by you: the best model so far was saved." if manifest["cancelled"] else "Finished."
        st.success(f"{note} Model: {manifest['model']['name']}, trained in {manifest['timings']['fit_s']:.1f} s.")
        cols = st.columns(3)
        cols[0].metric(METRIC_NAMES[key],
                       f"{value:.3f}" if value is not None else "—",
                       f"{value - base:+.3f} vs baseline" if value is not None and base is not None else None)
        cols[1].metric("Training rows", f"{manifest['split']['n_train']:,}")
        cols[2].metric("Validation rows", f"{manifest['split']['n_valid']:,}")
        st.page_link("app_pages/evaluate.py", label="Open in Evaluate", icon=":material/query_stats:")
    else:
        st.error(job.error or "Training ended without a saved model.")
