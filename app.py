"""Trainboard: upload a table or images, get a model picked, watch it train, read honest plots.

Entry point for ``streamlit run app.py``. Pages live in ``app_pages/`` — not ``pages/``, which
Streamlit would also serve as stand-alone pages until app.py first runs. All computing happens in
``core/`` (training in worker processes, see ``core.jobs``). Session state keys are documented in
``ui/state.py``: ``dataset``, ``target``, ``roles``, ``job_id``, ``run_dir``.
"""

import streamlit as st

from ui import state, widgets

PAGES = [
    ("app_pages/data.py", "Data", ":material/upload_file:"),
    ("app_pages/train.py", "Train", ":material/model_training:"),
    ("app_pages/evaluate.py", "Evaluate", ":material/query_stats:"),
    ("app_pages/predict.py", "Predict", ":material/online_prediction:"),
    ("app_pages/runs.py", "Runs", ":material/history:"),
]


def main() -> None:
    st.set_page_config(page_title="Trainboard", page_icon=":material/model_training:", layout="wide")
    pages = [st.Page(path, title=title, icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(PAGES)]
    page = st.navigation(pages)
    state.session()  # registers this browser session, so its jobs end with it
    widgets.sidebar()
    page.run()


# Streamlit runs this file as ``__main__``. Training worker processes are spawned, and spawning
# re-imports the main script as ``__mp_main__``: there it must draw nothing.
if __name__ == "__main__":
    main()
