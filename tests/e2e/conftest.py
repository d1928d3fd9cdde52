"""Real-browser fixtures: a ``streamlit run app.py`` server on a free loopback port (its runs in a
temporary folder) and a headless Chromium page per test, screenshotted when the test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.screenshot import CHROMIUM, free_port, full_page_screenshot, healthy, launch, wait_for_app

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90


def skip_without_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":  # CI installs it (.ci/run): a skip there would hide a broken install
            pytest.fail(f"no Chromium at {CHROMIUM} although CI=true: .ci/run should have installed it")
        pytest.skip(f"no Chromium at {CHROMIUM}: the browser tests need it (`apt-get install chromium`; CI installs it)")


@contextlib.contextmanager
def app_server(folder: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
    """``streamlit run app.py`` with its runs in ``folder / "runs"``; yields (URL, process). Its log
    (``folder / "server.log"``) is printed when it fails to start."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base = {k: v for k, v in os.environ.items() if k != "TRAINBOARD_INLINE_JOBS"}  # real worker processes,
    env = dict(base, TRAINBOARD_RUNS=str(folder / "runs"), PYTHONUNBUFFERED="1", **(env or {}))  # unless asked
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start; its log:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its training workers
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@pytest.fixture(scope="session")
def server_home(tmp_path_factory) -> Path:
    """The ``server``'s folder: its log, and the runs it saves under ``runs/``."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def server(server_home):
    """The app as a user gets it; yields its URL."""
    skip_without_chromium()
    with app_server(server_home) as (url, _):
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    skip_without_chromium()
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell that its test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(server, browser, request, tmp_path_factory):
    """A fresh browser session on the app's first page; a full-page screenshot if the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(server)
    wait_for_app(tab)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path_factory.mktemp("e2e-screenshots") / f"{request.node.name}.png"
        try:
            print(f"\nscreenshot of the failure: {full_page_screenshot(tab, shot)}")
        except Exception as err:  # a screenshot must never hide the test's own failure
            print(f"\ncould not take a screenshot: {err}")
    context.close()
