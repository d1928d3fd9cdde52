"""The Glossary in a real browser: the readings' links (``glossary#<term>``) open it at the term,
and the sidebar reaches it from any page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.glossary import PAGE_URL, TERMS
from tests.e2e.screenshot import wait_for_app

pytestmark = [pytest.mark.e2e]


def test_a_readings_link_opens_the_glossary_at_its_term(page, server):
    page.goto(f"{server}/{PAGE_URL}#threshold")
    wait_for_app(page)
    heading = page.get_by_role("heading", name=TERMS["threshold"].name, exact=True)
    expect(heading).to_be_in_viewport()  # scrolled to: it is far down the alphabet
    expect(page.get_by_role("heading", name=TERMS["accuracy"].name, exact=True)).not_to_be_in_viewport()


def test_the_sidebar_reaches_the_glossary(page):
    page.get_by_role("link", name="Glossary", exact=True).first.click()
    page.get_by_role("heading", name="Glossary", level=1).wait_for()
    assert page.url.rstrip("/").endswith(f"/{PAGE_URL}")
