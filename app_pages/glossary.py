"""Glossary: the words Trainboard uses, each in two or three plain sentences (``core.glossary``).

Every term is a heading whose anchor is its key, so the readings under the charts link straight to
it (``glossary#recall``); related terms link within the page."""

import streamlit as st

from core.glossary import TERMS, terms

st.title("Glossary")
st.caption("The words the charts and scores use, in plain language. The links under the charts open this page "
           "at the word.")
for term in terms():
    st.subheader(term.name, anchor=term.key)
    st.markdown(term.text)
    if term.see:
        st.caption("See also: " + ", ".join(f"[{TERMS[k].name}](#{k})" for k in term.see))
