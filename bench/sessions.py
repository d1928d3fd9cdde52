"""A class on one server: what idle browser sessions cost the server, and how soon a new session's
Data page is usable, each against an empty Streamlit page with one uploader on the same machine.

Used by section 6 (``bench.app_latency``). The server's CPU is read from ``/proc/<pid>/stat``
(user + system time of the ``streamlit`` process and its children, i.e. the training workers),
so other processes on a busy machine do not count; the empty page is measured the same way in
the same run as the reference.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, WORK

#: Targets (issue 15): a new session's Data page within 1.5× an empty page; an idle session ≤ 1% of a core.
PAGE_RATIO_TARGET = 1.5
SESSION_CPU_TARGET = 0.01
#: The page is usable once the uploader's real <input type=file> is attached.
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"]'
EMPTY_APP = '''"""An empty Streamlit page with one uploader: the reference for the app's Data page."""
import streamlit as st

st.title("Empty")
st.file_uploader("A table")
'''


def empty_app() -> Path:
    """The reference script, written under ``bench/_work``."""
    path = WORK / "empty_app.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EMPTY_APP)
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children that were waited for
    (``/proc/<pid>/stat`` fields 14–17), plus its live children's own."""
    tick = os.sysconf("SC_CLK_TCK")

    def own(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return sum(int(f) for f in fields[11:15]) / tick

    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += (task / "children").read_text().split()
    except OSError:
        pass
    return own(pid) + sum(own(int(c)) for c in set(children))


def server_cpu_share(pid: int, window_s: float) -> float:
    """The share of one core the server used over ``window_s`` seconds (0.10 = 10%)."""
    before, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(window_s)
    return (cpu_seconds(pid) - before) / (time.perf_counter() - t0)


def wait_quiet(pid: int, share: float = 0.05, window_s: float = 2.0, timeout_s: float = 120.0) -> float:
    """Wait until the server (and its workers, importing their libraries after its first page) uses
    under ``share`` of a core; returns the seconds waited."""
    t0 = time.perf_counter()
    while server_cpu_share(pid, window_s) > share and time.perf_counter() - t0 < timeout_s:
        pass
    return time.perf_counter() - t0


def idle_sessions(browser, url: str, pid: int, counts: list[int], window_s: float) -> dict[str, float]:
    """Open sessions on the Data page (fresh browser contexts) up to each count, let them settle,
    then measure the server's CPU while they sit idle: ``{"1": share, "10": share, ...}``."""
    from tests.e2e.screenshot import wait_for_app

    contexts: list[Any] = []
    out: dict[str, float] = {}
    try:
        for count in sorted(counts):
            while len(contexts) < count:
                context = browser.new_context(viewport={"width": 1200, "height": 800})
                page = context.new_page()
                page.set_default_timeout(180_000)
                page.goto(url)
                page.wait_for_selector(UPLOADER, state="attached")
                contexts.append((context, page))
            for _, page in contexts[-3:]:
                wait_for_app(page, settle_s=1.0)
            time.sleep(3.0)  # the last sessions' first runs are over
            out[str(count)] = server_cpu_share(pid, window_s)
    finally:
        for context, _ in contexts:
            context.close()
    return out


def uploader_times(browser, url: str, loads: int, pid: int) -> list[float]:
    """Seconds from opening ``url`` in a fresh browser context until the uploader is attached. The
    first load is the server's first page; the later ones start once the server is quiet again
    (its training workers have finished importing), as on a server that has been up a while."""
    times = []
    for i in range(loads):
        if i == 1:
            wait_quiet(pid)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(120_000)
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(UPLOADER, state="attached")
        times.append(time.perf_counter() - t0)
        context.close()
    return times


def class_child(runs_dir: str, log_dir: str, loads: int, counts: list[int], window_s: float) -> dict[str, Any]:
    """Child task: for the app and the empty page in turn, start a server, time ``loads`` fresh
    sessions until their uploader is attached, then measure the server's CPU with ``counts`` idle
    sessions open."""
    from playwright.sync_api import sync_playwright

    from bench.app_latency import _start_server, _stop
    from tests.e2e.screenshot import launch

    out: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            for name, script in (("empty", str(empty_app())), ("app", "app.py")):
                process, url, _ = _start_server(runs_dir, Path(log_dir) / f"server-{name}.log", script=script)
                try:
                    out[f"{name}_uploader_s"] = uploader_times(browser, url, loads, process.pid)
                    time.sleep(2.0)
                    out[f"{name}_no_session"] = server_cpu_share(process.pid, window_s)
                    out[f"{name}_idle"] = idle_sessions(browser, url, process.pid, counts, window_s)
                finally:
                    _stop(process)
        finally:
            browser.close()
    return out


if __name__ == "__main__":  # a quick look: python -m bench.sessions [COUNTS...] (0: page times only)
    import json
    import sys

    counts = [int(c) for c in sys.argv[1:] if int(c) > 0] if len(sys.argv) > 1 else [1, 4]
    work = WORK / "sessions"
    work.mkdir(parents=True, exist_ok=True)
    (work / "runs").mkdir(exist_ok=True)
    os.chdir(ROOT)
    print(json.dumps(class_child(str(work / "runs"), str(work), 5, counts, 20.0), indent=1))
