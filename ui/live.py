"""The live view of a training job: a fragment that polls the job's event log twice a second.

The job runs in a worker process (``core.jobs``); this code only reads its log and draws. When
the job ends the whole page reruns once, so the outcome shows outside the fragment.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import plots
from core.progress import summarise
from ui import state
from ui.widgets import device_badge


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
    st.progress(progress.fraction, text=f"{job.elapsed:.0f} s")
    if progress.epochs:
        st.plotly_chart(plots.loss_curve(progress.epochs, x_title=progress.curve_unit),
                        key=f"live-{job.job_id}")
        st.caption("Both lines should fall. When the validation line turns up while the training line keeps "
                   "falling, the model has started memorising the training rows (overfitting): training stops "
                   "there and keeps the best point.")
    if len(progress.steps) > 1:
        st.plotly_chart(plots.step_curve(progress.steps, progress.step_losses), key=f"steps-{job.job_id}")
        st.caption("Loss on each batch of training examples: noisy, but it should trend down.")
    for message in progress.messages[-4:]:
        (st.warning if message.level == "warning" else st.caption)(message.text)
