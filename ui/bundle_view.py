"""The model bundle's download button (Evaluate, Runs): the zip is built only when clicked, on
Streamlit's download thread, and kept for the few runs last downloaded."""

from __future__ import annotations

from functools import lru_cache

import streamlit as st

from core.export.bundle import build_bundle, bundle_name, bundle_problem
from core.run_record import MANIFEST_FILE, RunRecord
from ui import state

HELP = ("A zip to use the model without Trainboard: the model, its manifest (the threshold included), "
        "requirements.txt with the versions it was trained with, and a README with the few lines of Python "
        "that predict on a CSV or a folder of images as this app does.")


@lru_cache(maxsize=2)  # bundles can be large: the last two only
def _bundle(run_dir: str, runs_dir: str, stamp: int) -> bytes:
    """One run's bundle; ``stamp`` (the manifest's change time) makes a moved threshold a new entry."""
    return build_bundle(run_dir, runs_dir)


def bundle_button(run: RunRecord, key: str, width: str = "content") -> None:
    """"Download the model (zip)" for ``run`` (disabled, saying why, for a run it cannot package)."""
    run_dir, runs_dir = str(run.path), str(state.runs_dir())
    try:
        stamp = (run.path / MANIFEST_FILE).stat().st_mtime_ns
    except OSError:
        stamp = 0
    problem = bundle_problem(run)
    st.download_button("Download the model (zip)", data=lambda: _bundle(run_dir, runs_dir, stamp),
                       file_name=bundle_name(run), mime="application/zip", icon=":material/deployed_code:",
                       on_click="ignore", key=f"{key}-{run.run_id}", width=width, disabled=problem is not None,
                       help=problem or HELP)
