"""Under a chart: its reading (``core.readings``, this run's numbers) and, folded beside it, the
generic "How to read this" text with a link to the chart's word in the Glossary. One look for
every chart on every page."""

from __future__ import annotations

import streamlit as st

from core.glossary import link

HOW_TO_READ = "How to read this"


def notes(reading: str, how: str, term: str | None = None) -> None:
    """The reading as the chart's caption, then the how-to text in a small folded expander;
    ``term`` (a ``core.glossary`` key) adds a link to that word in the Glossary."""
    st.caption(reading)
    with st.expander(HOW_TO_READ, icon=":material/help:", type="compact"):
        st.caption(how + (f" In the glossary: {link(term)}." if term else ""))
