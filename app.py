"""Trainboard: upload a table or images, get a model picked, watch it train, read honest plots.

Entry point for ``streamlit run app.py``. Pages live in ``app_pages/`` — not ``pages/``, which
Streamlit would also serve as stand-alone pages until app.py first runs. All computing happens in
``core/`` (training in worker processes, see ``core.jobs``). The pages are declared in
``ui/pages.py``; every session-state key in ``ui/state.py``. The map: ARCHITECTURE.md.
"""

import streamlit as st

from ui import pages, state, widgets


def main() -> None:
    st.set_page_config(page_title="Trainboard", page_icon=":material/model_training:", layout="wide")
    page = pages.navigation()
    state.session()  # registers this browser session, so its jobs end with it (after a grace for reconnecting)
    state.lost_jobs()  # once per server: jobs an earlier server left unfinished (said on Train and Runs)
    widgets.sidebar()
    page.run()


# Streamlit runs this file as ``__main__``. Training worker processes are spawned, and spawning
# re-imports the main script as ``__mp_main__``: there it must draw nothing.
if __name__ == "__main__":
    main()
