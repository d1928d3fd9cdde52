"""The Compare section of the Train page: a comparison job with a live leaderboard, then a
one-click full run of the winner."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.compare import board_row, leaderboard_rows, load_comparison
from core.errors import TrainboardError
from core.models import comparison_candidates, get_family
from core.pipeline import JobSpec, make_plan
from core.planner import Overrides
from core.run_record import contest_board
from core.types import ImageData, Prepared
from ui import state
from ui.live import polled_job
from ui.widgets import leaderboard_frame


def compare_section(prepared: Prepared | ImageData, spec_base: dict[str, Any], seed: int, busy: bool) -> None:
    """Start a comparison, watch it, and offer to train the winner."""
    images = isinstance(prepared, ImageData)
    names = [_lower_first(get_family(key).label) for key in comparison_candidates("images" if images else "tabular")]
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    if images:
        st.caption(f"Score the image models — {listed} — on the same cross-validation folds of all the pictures, "
                   "simplest first, with a budget of your own (what cannot finish in it is skipped and said so), "
                   "and then train the one you pick.")
    else:
        st.caption("Automatic training already holds a contest inside the training rows. Here you can score every "
                   f"candidate — {listed} — on cross-validation folds of all the rows, simplest first, with a budget "
                   "of your own, and then train the one you pick.")
    manager = state.job_manager()
    job_id = st.session_state.get(state.COMPARE_JOB)
    job = manager.get(job_id) if job_id else None
    running = job is not None and not job.done
    left, right = st.columns([1, 2])
    budget = left.number_input("Time budget (seconds)", 10, 1800, 60, step=10, disabled=running or busy,
                               key=state.COMPARE_BUDGET)
    if right.button("Compare models", disabled=running or busy, icon=":material/leaderboard:"):
        spec = JobSpec(**spec_base, mode="compare", overrides=Overrides(seed=seed, time_budget=float(budget)))
        st.session_state[state.COMPARE_JOB] = manager.submit(spec, owner=state.session().owner)
        st.rerun()
    if job is None:
        return
    if running:
        _live(job_id)
    elif job.state == "failed":
        st.error(job.error)
    elif job.run_dir:
        _result(job.run_dir, prepared, spec_base, seed, busy)


def _lower_first(label: str) -> str:
    """A label inside a sentence: "Linear model" → "linear model" (acronyms such as MLP stay)."""
    return label[:1].lower() + label[1:]


def _live(job_id: str) -> None:
    @st.fragment(run_every=0.5)
    def _board() -> None:
        job = polled_job(job_id)
        if job is None or job.state == "queued":
            return
        rows = leaderboard_rows(job.events)
        st.markdown(f"Comparing… ({job.elapsed:.0f} s)")
        if rows:
            st.dataframe(leaderboard_frame(rows), hide_index=True)
        if st.button("Stop comparing", key=f"stop-{job_id}"):
            state.job_manager().cancel(job_id)

    _board()


def _result(path: str, prepared: Prepared, spec_base: dict[str, Any], seed: int, busy: bool) -> None:
    try:
        result = load_comparison(path)
    except TrainboardError as err:
        st.error(str(err))
        return
    rows = [board_row(e) for e in result.leaderboard()]
    for row in rows:
        row["model"] += " ← picked" if row["key"] == result.best else ""
    st.dataframe(leaderboard_frame(rows), hide_index=True)
    st.caption(f"Scores are mean ± standard deviation over {result.folds}. Each model was scored on rows "
               "it never trained on; fit time is per fold.")
    for reason in result.reasons:
        st.markdown(f"- {reason}")
    best = result.best
    if best and st.button(f"Train the winner: {get_family(best).label}", type="primary", disabled=busy,
                          icon=":material/play_arrow:"):
        overrides = Overrides(model=best, seed=seed)
        # Planned here like "Start training": the same settings the comparison scored it with.
        spec = JobSpec(**spec_base, overrides=overrides, plan=make_plan(prepared, overrides))
        st.session_state[state.JOB] = state.job_manager().submit(spec, owner=state.session().owner)
        st.rerun()


def contest_section(candidates: tuple[dict, ...], reasons: tuple[str, ...]) -> None:
    """An automatic run's contest, from its manifest: every candidate's folds and the choice."""
    st.dataframe(leaderboard_frame(contest_board(candidates)), hide_index=True)
    for reason in reasons:
        st.markdown(f"- {reason}")
