"""Trainboard: upload a table or images, get a model picked, watch it train, read honest plots.

Entry point for ``streamlit run app.py``. Pages live in ``pages/``; all computing happens in
``core/`` (training in worker processes, see ``core.jobs``). Session state keys are documented in
``ui/state.py``: ``dataset``, ``target``, ``roles``, ``job_id``, ``run_dir``.
"""

import streamlit as st

from ui import state, widgets

st.set_page_config(page_title="Trainboard", page_icon=":material/model_training:", layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/upload_file:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/online_prediction:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
]

page = st.navigation(PAGES)
state.session()  # registers this browser session, so its jobs end with it
widgets.sidebar()
page.run()
