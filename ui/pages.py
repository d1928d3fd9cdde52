"""The app's pages, declared once: ``app.py`` builds the navigation from them and every link or
page switch names one of these, never a path string."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class Page:
    path: str  # relative to app.py (app_pages/, not pages/: see app.py)
    title: str
    icon: str

    def st_page(self, default: bool = False) -> st.Page:
        # Built per call: a StreamlitPage needs the running script's context, and Streamlit
        # matches a link's page to the navigation's by its path.
        return st.Page(self.path, title=self.title, icon=self.icon, default=default)


DATA = Page("app_pages/data.py", "Data", ":material/upload_file:")
TRAIN = Page("app_pages/train.py", "Train", ":material/model_training:")
EVALUATE = Page("app_pages/evaluate.py", "Evaluate", ":material/query_stats:")
PREDICT = Page("app_pages/predict.py", "Predict", ":material/online_prediction:")
RUNS = Page("app_pages/runs.py", "Runs", ":material/history:")
GLOSSARY = Page("app_pages/glossary.py", "Glossary", ":material/menu_book:")  # address: core.glossary.PAGE_URL
ALL = (DATA, TRAIN, EVALUATE, PREDICT, RUNS, GLOSSARY)


def navigation():
    """The app's navigation (Data first and default); returns the page to run."""
    return st.navigation([page.st_page(default=i == 0) for i, page in enumerate(ALL)])


def link(page: Page, label: str, icon: str | None = None) -> None:
    st.page_link(page.st_page(), label=label, icon=icon or page.icon)


def switch(page: Page) -> None:
    st.switch_page(page.st_page())
