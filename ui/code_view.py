"""The Evaluate page's "Show me the code": the run as a standalone Python script
(``core.export.code``), with a copy button (``st.code`` has one) and a download."""

from __future__ import annotations

import streamlit as st

from core.errors import TrainboardError
from core.export.code import script_for_run, script_name
from core.run_record import RunRecord
from ui import state


@st.cache_data(max_entries=8, show_spinner="Writing the code…")
def _script(path: str, runs_dir: str, manifest_mtime: float) -> str:
    """The run's script; the manifest's time keys the cache (a saved threshold rewrites it)."""
    return script_for_run(path, runs_dir)


def code_section(run: RunRecord) -> None:
    """An expander with the script, its copy button and a download."""
    with st.expander("Show me the code", icon=":material/code:"):
        try:
            script = _script(str(run.path), str(state.runs_dir()), (run.path / "manifest.json").stat().st_mtime)
        except (TrainboardError, OSError) as err:
            st.info(f"No code for this run: {err}")
            return
        images = run.data.kind == "images"
        libraries = ("Pillow, numpy and torch" if images else "pandas, scikit-learn and torch" if "import torch" in script
                     else "pandas and scikit-learn")
        st.markdown(f"This run as one plain Python script — {libraries}, no Trainboard needed. It loads the "
                    "data, prepares it, makes the same split with the same seed, trains the same model with the "
                    "same settings and prints the validation scores shown above.")
        data = "your_images.zip" if images else "your_data.csv"
        st.caption(f"Run it with `python {_file_name(run)} {data}`; its last line is the scores as JSON. The copy "
                   "button is at the code's top right.")
        st.download_button("Download the script", script, file_name=_file_name(run), mime="text/x-python",
                           icon=":material/download:", key=f"code-download-{run.run_id}")
        st.code(script, language="python", line_numbers=True, height=480)


def _file_name(run: RunRecord) -> str:
    return script_name(run.run_id)
