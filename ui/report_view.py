"""The offline report's download (Evaluate and Runs): built only when asked for, once per run and
manifest version (``core.export.report``), then offered as one HTML file."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import TrainboardError
from core.export.report import build_report
from core.run_record import MANIFEST_FILE, RunRecord
from ui import state


@st.cache_data(max_entries=4, show_spinner="Writing the report…")
def _report(run_dir: str, stamp: float) -> tuple[bytes, int]:
    report = build_report(run_dir, state.runs_dir())
    return report.html.encode("utf-8"), report.charts


def _ask(key: str) -> None:
    st.session_state[key] = True


def report_download(run: RunRecord, page: str) -> None:
    """A "Prepare the report" button; once pressed for this run, the report's download button."""
    key = state.report_key(page, run.run_id)
    if not st.session_state.get(key):
        st.button("Prepare the offline report", key=f"{key}:prepare", icon=":material/description:",
                  on_click=_ask, args=(key,),
                  help="One HTML file with this run's data, plan, scores and charts, each with its reading. It "
                       "opens in any browser without a network, and prints.")
        return
    try:
        data, charts = _report(str(run.path), (Path(run.path) / MANIFEST_FILE).stat().st_mtime)
    except (TrainboardError, OSError) as err:
        st.error(f"The report could not be written: {err}")
        return
    st.download_button("Download the report (HTML)", data, file_name=f"{run.run_id}-report.html", mime="text/html",
                       key=f"{key}:download", on_click="ignore", icon=":material/download:", type="primary")
    st.caption(f"{charts} charts, {len(data) / 2**20:.1f} MB (the charting library is inside): it opens from disk "
               "in any browser, with no network, and prints.")
