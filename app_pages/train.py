"""Train: the plan in plain words, overrides, then live training in a background job."""

import streamlit as st

from core.errors import TrainboardError
from core.evaluation import METRIC_NAMES
from core.models import get_family, trainable
from core.models.pretrained_family import INPUT_SIZES, PRETRAINED
from core.pipeline import JobSpec, make_plan
from core.planner import Overrides
from core.run_record import read_run
from ui import pages, state
from ui.compare_view import compare_section
from ui.data_views import checks_line
from ui.live import job_panel
from ui.widgets import lost_jobs_notice, need_data

#: The validation shares a user may pick; "auto" lets the planner choose by the data's size.
SHARES = ("auto", 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)

st.title("Train")
lost_jobs_notice()
if not need_data():
    st.stop()

data = state.loaded()
try:
    prepared = state.prepared()
except TrainboardError as err:
    st.error(str(err))
    pages.link(pages.DATA, "Fix it on the Data page")
    st.stop()

kind = data.kind
checks_line(prepared.checks)
job = state.current_job()
busy = job is not None and not job.done

with st.expander("Settings (optional: the automatic choices are sensible)", expanded=False):
    choices = ["auto", *trainable(kind)]
    left, right = st.columns(2)
    model = left.selectbox("Model", choices, disabled=busy,
                           format_func=lambda k: "Automatic (recommended)" if k == "auto" else get_family(k).label,
                           help="Leave on automatic unless you want to compare a specific model.")
    share = left.select_slider("Validation share", SHARES, value="auto", disabled=busy,
                               format_func=lambda f: "Automatic" if f == "auto" else f"{f:.0%}",
                               help="Rows held out to judge the model honestly; it never trains on them. "
                                    "Automatic holds out 20%, or 10% of a table of 200,000 rows or more.")
    seed = right.number_input("Random seed", 0, 10_000, 0, disabled=busy,
                              help="The same seed and data give the same split and the same model.")
    epochs = right.number_input("Most epochs / boosting rounds / trees (0 = automatic)", 0, 5000, 0, disabled=busy)
    budget = right.number_input("Time budget in seconds (0 = automatic)", 0, 3600, 0, disabled=busy,
                                help="The whole run stops by this time and keeps the best model so far. Automatic: "
                                     "a budget by the table's size for the automatic contest, none for a model "
                                     "you chose.")
    flip = kind == "images" and left.checkbox(
        "Mirror images while training", disabled=busy,
        help="Only when a mirrored picture keeps its class (a cat is still a cat; a 'b' becomes a 'd').")
    input_size = "auto"
    if kind == "images" and model in ("auto", *PRETRAINED):
        input_size = right.selectbox(
            "Pretrained network's input size", ("auto", *INPUT_SIZES), disabled=busy,
            format_func=lambda s: "Automatic" if s == "auto" else f"{s}×{s} px",
            help="The side each picture is resized to for the pretrained network (not for the CNN). Larger reads "
                 "more detail and costs about the square of the size in time; automatic: 128 px on a CPU, "
                 "224 px on a GPU.")

params = {"flip": True} if flip else {}
if input_size != "auto":
    params["input_size"] = int(input_size)
overrides = Overrides(model=model, valid_fraction=None if share == "auto" else float(share), seed=int(seed),
                      max_epochs=int(epochs) or None, time_budget=float(budget) or None, params=params)
try:
    plan = make_plan(prepared, overrides)
except TrainboardError as err:
    st.error(str(err))
    st.stop()

if plan.probe:
    st.subheader("The plan: a quick probe decides — " + " or ".join(get_family(c.model).label for c in plan.probe))
else:
    st.subheader("The plan: an automatic contest" if plan.is_contest else f"The plan: {get_family(plan.model).label}")
st.markdown("\n".join(f"- {reason}" for reason in plan.reasons))

if st.button("Start training", type="primary", disabled=busy, icon=":material/play_arrow:"):
    # The plan shown above travels in the job and is trained as it is.
    spec = JobSpec(source=data.path, name=data.name, target=st.session_state.get(state.TARGET),
                   roles=dict(st.session_state.get(state.ROLES) or {}), overrides=overrides, plan=plan,
                   runs_dir=str(state.runs_dir()), checks_off=state.checks_off(), workspace=state.workspace())
    st.session_state[state.JOB] = state.job_manager().submit(spec, owner=state.session().owner)
    st.rerun()

if kind in ("tabular", "images"):
    with st.expander("Compare models first", icon=":material/leaderboard:"):
        compare_section(prepared, dict(source=data.path, name=data.name, target=st.session_state.get(state.TARGET),
                                       roles=dict(st.session_state.get(state.ROLES) or {}),
                                       runs_dir=str(state.runs_dir()), checks_off=state.checks_off(),
                                       workspace=state.workspace()),
                        seed=int(seed), busy=busy)

if job is not None:
    st.divider()
    st.subheader("Training")
    if not job.done:
        job_panel(job.job_id)
    elif job.run_dir:
        st.session_state[state.RUN] = job.run_dir
        run = read_run(job.run_dir, predictions=False)
        key, value = run.main_metric, run.value
        base = run.baseline_metrics.get(key)
        note = "Stopped by you: the best model so far was saved." if run.cancelled else "Finished."
        st.success(f"{note} Model: {run.model.name}, trained in {run.timings['fit_s']:.1f} s.")
        cols = st.columns(3)
        cols[0].metric(METRIC_NAMES[key],
                       f"{value:.3f}" if value is not None else "—",
                       f"{value - base:+.3f} vs baseline" if value is not None and base is not None else None)
        cols[1].metric("Training rows", f"{run.split.n_train:,}")
        cols[2].metric("Validation rows", f"{run.split.n_valid:,}")
        pages.link(pages.EVALUATE, "Open in Evaluate")
    else:
        st.error(job.error or "Training ended without a saved model.")
