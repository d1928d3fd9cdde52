"""Take a full-page screenshot of a running Trainboard page in headless Chromium.

Usage::

    python tests/e2e/screenshot.py URL OUT.png [--click TEXT ...] [--select LABEL=OPTION ...]
                                   [--width 1400] [--wait 1.0]

``--click`` clicks a button, tab, link or expander with that visible text; ``--select
"LABEL=TEXT"`` picks the option containing TEXT in the selectbox labelled LABEL. Both repeat and
run in the order given, the app settling after each (for example ``--click "Try a sample"
--click churn.csv``). The browser helpers here are shared with the e2e tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
#: Streamlit shows this icon (top right) while a script run is in progress — after a short delay,
#: so "settled" means: a page title is drawn and the icon has stayed away for a while.
RUNNING = '[data-testid="stStatusWidgetRunningIcon"]'
TITLE = '[data-testid="stMain"] h1'
#: Tries at opening a dropdown and finding its option (a page rerun may close the menu meanwhile).
SELECT_ATTEMPTS = 4


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether a Streamlit server at ``url`` answers its health endpoint."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def launch(playwright):
    """Headless Chromium from the system package (Playwright's own browsers are not installed)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def wait_for_app(page, timeout_s: float = 60.0, settle_s: float = 1.5) -> None:
    """Wait until a page title is drawn and no script run has been in progress for ``settle_s``
    (best effort: a page that polls, like Train while training, may never be quiet)."""
    page.wait_for_selector(TITLE, timeout=timeout_s * 1000)
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if page.locator(RUNNING).count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(100)


def full_page_screenshot(page, out: str | Path, width: int = 1400) -> Path:
    """Streamlit scrolls inside its main container, so grow the viewport to the content first."""
    height = page.evaluate("""() => Math.max(document.body.scrollHeight,
        ...Array.from(document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], '
                                                + '[data-testid="stMainBlockContainer"]'))
            .map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": width, "height": min(int(height) + 80, 16000)})
    page.wait_for_timeout(500)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    return out


def click_text(page, text: str) -> None:
    """Click the first button, tab, link or expander showing ``text``, then wait for the app to settle."""
    target = page.get_by_role("button", name=text).or_(page.get_by_role("tab", name=text)) \
        .or_(page.get_by_role("link", name=text)).or_(page.locator("summary", has_text=text)).first
    target.click()
    page.wait_for_timeout(300)
    wait_for_app(page)


def select_option(page, label: str, option: str) -> None:
    """Pick the option containing ``option`` in the selectbox labelled ``label``, then settle."""
    from playwright.sync_api import TimeoutError  # noqa: A004 (Playwright's own, raised by wait_for)

    for attempt in range(SELECT_ATTEMPTS):
        page.get_by_label(label, exact=True).first.click()
        page.keyboard.type(option)  # filters the list: long lists only draw the options in view
        try:
            page.get_by_role("option").filter(has_text=option).first.wait_for(timeout=10_000)
            break
        except TimeoutError:  # a rerun of the page closed the menu under us: open it again
            page.keyboard.press("Escape")
            wait_for_app(page)
            if attempt == SELECT_ATTEMPTS - 1:
                raise
    # The first match has the focus: Enter picks it. (Clicking it raced the menu's redraws: its
    # element was replaced again and again while a busy server answered, and the click timed out.)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # a multiselect keeps its menu open over the page
    page.wait_for_timeout(300)
    wait_for_app(page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--click", action="append", dest="actions", type=lambda t: ("click", t),
                        help="visible text of a button, tab, link or expander to click (repeatable)")
    parser.add_argument("--select", action="append", dest="actions", type=lambda t: ("select", t),
                        metavar="LABEL=OPTION", help="pick an option (by part of its text) in a selectbox or "
                                                     "multiselect (repeatable; actions run in the order given)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--wait", type=float, default=1.0, help="extra seconds before the shot (charts drawing)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(args.url)
        wait_for_app(page)
        for action, text in args.actions or []:
            if action == "click":
                click_text(page, text)
            else:
                label, _, option = text.partition("=")
                select_option(page, label, option)
        page.wait_for_timeout(args.wait * 1000)
        print(full_page_screenshot(page, args.out, args.width))
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
