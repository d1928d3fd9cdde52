"""Small pieces every page uses: the sidebar summary, the device badge, the empty-state hint."""

from __future__ import annotations

import os
import threading

import pandas as pd
import streamlit as st

from core.evaluation import METRIC_NAMES
from core.types import DeviceInfo
from ui import pages, state

BADGE_COLOURS = {"cuda": "green", "mps": "violet", "cpu": "gray"}


def device_badge(device: DeviceInfo) -> None:
    st.badge(device.badge, icon=":material/memory:", color=BADGE_COLOURS.get(device.type, "gray"))


def need_data(what: str = "train a model") -> bool:
    """On a page that needs data: say what to do when none is loaded. True when data is there."""
    if state.loaded() is not None:
        return True
    st.info(f"No data loaded yet. Upload a file or pick a bundled sample on the Data page to {what}.")
    pages.link(pages.DATA, "Go to the Data page")
    return False


def lost_jobs_notice() -> None:
    """Say so when the server restarted while jobs were running: those of this workspace (or of
    no one's, as the CLI's) are gone; a classmate's lost job is theirs to hear about."""
    lost = [job for job in state.lost_jobs() if job.workspace in (None, state.workspace())]
    if not lost:
        return
    names = ", ".join(dict.fromkeys(job.name for job in lost))
    one = len(lost) == 1
    st.warning(f"{len(lost)} job{'' if one else 's'} that {'was' if one else 'were'} running when the server stopped "
               f"{'was' if one else 'were'} lost ({names}): nothing of {'it' if one else 'them'} was saved. Start "
               f"{'it' if one else 'them'} again from the Train page. Your finished runs are all on the Runs page.",
               icon=":material/warning:")


def sidebar() -> None:
    """Current dataset, target, device and the active job's state, on every page."""
    with st.sidebar:
        st.markdown("### Session")
        data = state.loaded()
        if data is None:
            st.caption("No data loaded.")
        else:
            st.markdown(f"**Data:** {data.name}")
            if data.kind == "tabular":
                target = st.session_state.get(state.TARGET)
                st.markdown(f"**Target:** {target or '—'}")
            else:
                st.markdown(f"**Images:** {len(data.data.labels):,} in {len(data.data.class_names)} classes")
        _live_status()


#: How often the sidebar's status refreshes while there is something to watch (a job of this
#: session queued or running, or the device check still under way); idle, it never does.
STATUS_POLL_S = 3.0


def _live_status() -> None:
    """Device (or the Ray cluster) and the session's job on every page. It polls only while this
    session has a job queued or running (the poll also tells the server the user is still there)
    or the device check / cluster connection is under way: an idle session costs the server
    nothing. When that ends, the page reruns once, which draws it without a timer.

    Idle, it is no fragment at all, not a fragment without a timer: the browser's last timer
    request for the polling one can reach the server in the instant the page's final run ends.
    If a fragment of that id is still registered then, Streamlit starts a new script runner for
    it and drops the final run's messages not yet sent — the job's outcome — and, no timer being
    left, the page never draws it (a busy server's soak lost one of five that way). A request for
    a fragment that no longer exists is dropped instead."""
    if not _worth_watching():
        _draw_status()
        return

    @st.fragment(run_every=STATUS_POLL_S)
    def _polling_status() -> None:
        _draw_status()
        if not _worth_watching():
            st.rerun(scope="app")  # the last poll: the page draws the outcome, and no timer

    _polling_status()


def _draw_status() -> None:
    if _on_cluster():
        _cluster_status()
    else:
        st.markdown("**Device for neural networks:**")
        device = _device_probe().get("device")
        if device is None:
            st.caption("checking…")
        else:
            device_badge(device)
    job = state.current_job()
    if job is not None:
        words = {"queued": f"queued (position {job.position})", "running": "training…", "done": "finished",
                 "failed": "failed", "cancelled": "stopped"}
        st.markdown(f"**Job:** {words.get(job.state, job.state)}")
        if job.state in ("queued", "running"):
            pages.link(pages.TRAIN, "Watch it train", icon=":material/monitoring:")


def _on_cluster() -> bool:
    return bool(os.environ.get("TRAINBOARD_RAY_ADDRESS"))


def _worth_watching() -> bool:
    """Whether the sidebar should poll: this session's job is queued or running, or the device
    check (the cluster connection, on Ray) has not answered yet."""
    job = state.current_job()
    if job is not None and not job.done:
        return True
    if _on_cluster():
        backend = state.job_manager().backend
        return not backend.connected and not backend.broken
    return "device" not in _device_probe()


def _cluster_status() -> None:
    """Jobs run on a Ray cluster: whether it is there (the backend's own words), not this server's device."""
    backend = state.job_manager().backend
    st.markdown("**Training on:**")
    if backend.broken:
        st.error(backend.broken, icon=":material/cloud_off:")
    elif backend.connected:
        st.caption(backend.status)
    else:
        st.warning(backend.status, icon=":material/cloud_sync:")


@st.cache_resource(show_spinner=False)
def _device_probe() -> dict[str, DeviceInfo]:
    """Find the torch device in a background thread, once per server: importing torch takes
    seconds, and the first page should not wait for it."""
    found: dict[str, DeviceInfo] = {}

    def probe() -> None:
        from core.device import cpu_device, pick_device

        try:
            found["device"] = pick_device()
        except Exception:  # a broken torch install: say CPU rather than have every session poll for ever
            found["device"] = cpu_device()

    threading.Thread(target=probe, daemon=True, name="trainboard-device-probe").start()
    return found


def leaderboard_frame(rows: list[dict]) -> pd.DataFrame:
    """Leaderboard lines (``core.compare.board_row``) as the table the Train page shows."""
    metric = next((r["metric"] for r in rows if r["metric"]), None)
    name = METRIC_NAMES.get(metric, "score")
    return pd.DataFrame({
        "model": [r["model"] for r in rows],
        name: [f"{r['mean']:.3f} ± {r['std']:.3f}" if r["mean"] is not None and r["std"] is not None
               else (f"{r['mean']:.3f}" if r["mean"] is not None else "—") for r in rows],
        "folds done": [r["folds"] for r in rows],
        "seconds per fold": [round(r["fit_s"], 2) if r["fit_s"] is not None else None for r in rows],
        "note": [r["note"] for r in rows],
    })
