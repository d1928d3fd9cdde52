"""The live view of a training job: a fragment that polls the job's event log twice a second.

The job runs in a worker process (``core.jobs``); this code only reads its log and draws. When
the job ends the whole page reruns once, so the outcome shows outside the fragment.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from core import plots, readings
from core.compare import leaderboard_rows
from core.progress import Progress, summarise
from ui import state
from ui.chart_notes import notes
from ui.widgets import device_badge, leaderboard_frame


def polled_job(job_id: str) -> Any | None:
    """Inside a polling fragment: the job while it is queued or running (a queued job's place is
    shown). When it has ended, the whole page reruns once so the outcome draws outside the
    fragment; None then, and when the server no longer knows the job."""
    job = state.job_manager().get(job_id)
    if job is None:
        st.warning("This job is no longer known to the server (it may have restarted).")
        return None
    if job.done:
        seen = st.session_state.setdefault(state.JOBS_SEEN_DONE, set())
        if job_id not in seen:
            seen.add(job_id)
            st.rerun(scope="app")
        return None
    if job.state == "queued":
        st.info(f"Waiting for a free worker: position {job.position} in the queue. "
                "Other sessions are training right now.")
    return job


def job_panel(job_id: str) -> None:
    """Draw the job's live state; rerun the app once when it ends."""

    @st.fragment(run_every=0.5)
    def _panel() -> None:
        job = polled_job(job_id)
        if job is None:
            return
        manager = state.job_manager()
        if job.state == "queued":
            if st.button("Cancel", key=f"cancel-{job_id}"):
                manager.cancel(job_id)
            return
        _running(manager, job)

    _panel()


def _running(manager, job) -> None:
    progress = summarise(job.events)
    top = st.columns([3, 1])
    with top[0]:
        if progress.device is not None:
            device_badge(progress.device)
        st.markdown(progress.status_line())
    with top[1]:
        stopping = job.cancel_requested is not None
        if st.button("Stopping…" if stopping else "Stop", key=f"stop-{job.job_id}", type="secondary",
                     disabled=stopping, icon=":material/stop_circle:", width="stretch"):
            manager.cancel(job.job_id)
            st.toast("Stopping after the current step; the best model so far will be saved.")
    left = progress.seconds_left(time.time())
    st.progress(progress.fraction, text=f"{job.elapsed:.0f} s" + (f" · {left:.0f} s left in the budget of "
                                                                  f"{progress.contest.budget_s:.0f} s"
                                                                  if left is not None and progress.finished is None
                                                                  else ""))
    if progress.contest is not None:
        _contest(job, progress)
    if progress.epochs:
        st.plotly_chart(plots.loss_curve(progress.epochs, x_title=progress.curve_unit),
                        key=f"live-{job.job_id}")
        notes(readings.live_curve(progress.epochs, progress.curve_unit),
              "Both lines should fall. When the validation line turns up while the training line keeps falling, "
              "the model has started memorising the training rows (overfitting): training stops soon after (a "
              "neural network then goes back to its best epoch).", "overfitting")
    if len(progress.steps) > 1:
        st.plotly_chart(plots.step_curve(progress.steps, progress.step_losses), key=f"steps-{job.job_id}")
        st.caption("Loss on each batch of training examples: noisy, but it should trend down.")
    for message in progress.messages[-4:]:
        (st.warning if message.level == "warning" else st.caption)(message.text)


def _contest(job, progress: Progress) -> None:
    """An automatic run's contest: the leaderboard filling in, then the choice."""
    rows = leaderboard_rows(job.events)
    if rows:
        st.dataframe(leaderboard_frame(rows), hide_index=True, key=f"board-{job.job_id}")
    contest = progress.contest
    st.caption(f"Each candidate is scored on {contest.folds}; the validation rows wait until the end. "
               "Stop keeps the best candidate so far.")
    if progress.chosen is not None:
        for reason in progress.chosen.reasons[1:3]:
            st.markdown(f"- {reason}")
