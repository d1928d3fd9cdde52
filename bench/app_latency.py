"""Section 6: how fast the app answers — server start, and first paint of pages in a real browser.

``streamlit run app.py`` headless on a free loopback port (file watcher off), its runs folder a
copy of one saved run; Chromium (``/usr/bin/chromium``) driven by Playwright with the e2e tests'
launch and wait helpers. Skipped with a note where Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Config, Section, Spread, Table, log, run_child
from bench.sessions import PAGE_RATIO_TARGET, SESSION_CPU_TARGET
from tests.e2e.screenshot import free_port, healthy

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 120
CHART = '[data-testid="stPlotlyChart"]'


def _start_server(runs_dir: str, log_path: Path, script: str = "app.py") -> tuple[subprocess.Popen, str, float]:
    """Start the app (or another Streamlit script); returns the process, its URL and seconds until ``/_stcore/health`` answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, TRAINBOARD_RUNS=runs_dir, PYTHONUNBUFFERED="1")
    env.pop("TRAINBOARD_INLINE_JOBS", None)
    with open(log_path, "w") as server_log:
        t0 = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    while not healthy(url):
        if process.poll() is not None or time.perf_counter() - t0 > START_TIMEOUT_S:
            _stop(process)
            raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return process, url, time.perf_counter() - t0


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


def app_child(runs_dir: str, log_path: str, loads: int, browser: bool) -> dict[str, Any]:
    """Child task: start the server, then time page loads in fresh browser contexts."""
    process, url, health_s = _start_server(runs_dir, Path(log_path))
    try:
        if not browser:
            return {"health_s": health_s}
        try:
            return {"health_s": health_s, **_page_loads(url, loads)}
        except Exception as err:  # a browser hiccup is a finding to report, not a crash of the run
            return {"health_s": health_s, "browser_error": f"{type(err).__name__}: {str(err)[:300]}"}
    finally:
        _stop(process)


def _page_loads(url: str, loads: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.e2e.screenshot import TITLE, launch, wait_for_app

    out: dict[str, list[float]] = {"data_paint": [], "data_settled": [], "evaluate_paint": [],
                                   "evaluate_chart": [], "evaluate_settled": [], "evaluate_reload_chart": []}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            for _ in range(loads):
                for page_name in ("data", "evaluate"):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.set_default_timeout(90_000)
                    t0 = time.perf_counter()
                    page.goto(url if page_name == "data" else f"{url}/evaluate")
                    page.wait_for_selector(TITLE)
                    out[f"{page_name}_paint"].append(time.perf_counter() - t0)
                    if page_name == "evaluate":
                        page.locator(f"{CHART} >> visible=true").first.wait_for()
                        out["evaluate_chart"].append(time.perf_counter() - t0)
                    wait_for_app(page, settle_s=1.0)
                    out[f"{page_name}_settled"].append(time.perf_counter() - t0 - 1.0)
                    if page_name == "evaluate":  # again in the same tab: plotly.js is cached by now
                        t0 = time.perf_counter()
                        page.reload()
                        page.locator(f"{CHART} >> visible=true").first.wait_for()
                        out["evaluate_reload_chart"].append(time.perf_counter() - t0)
                    context.close()
        finally:
            browser.close()
    return out


def _browser_available() -> str | None:
    """None when the browser part can run, else why not."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    return None


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    section = Section(
        "6. App latency",
        "`streamlit run app.py` (headless, free loopback port, `--server.fileWatcherType none`): seconds from "
        "launch until `/_stcore/health` answers. Then headless Chromium (Playwright) opens pages in fresh "
        "browser contexts: *paint* is the page title drawn, *settled* is no script run in progress (the e2e "
        "helper's test, its 1 s quiet period subtracted). Evaluate shows a saved run (`TRAINBOARD_RUNS` holds "
        "one: the churn run of section 5). The first load of each page includes the server's first imports.")
    runs_dir = cfg.work / "runs-app"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    source = (shared.get("runs") or {}).get("churn.csv")
    if source is None:
        log("app latency: training churn.csv for the Evaluate page")
        source = run_child("end_to_end:job_child", source="sample_data/churn.csv",
                           runs_dir=str(cfg.work / "runs-e2e")).data["run_dir"]
    shutil.copytree(source, runs_dir / Path(source).name)
    missing = _browser_available()
    if missing:
        section.notes.append(f"Browser timings skipped: {missing}.")
    starts, loads = [], []
    for i in range(1 if cfg.quick else 2):
        log(f"app latency: server start {i + 1}")
        data = run_child("app_latency:app_child", runs_dir=str(runs_dir), log_path=str(cfg.work / "server.log"),
                         loads=2 if cfg.quick else 3, browser=missing is None and i == 0, timeout=600).data
        starts.append(data["health_s"])
        if "data_paint" in data:
            loads.append(data)
        if "browser_error" in data:
            section.notes.append(f"The browser part failed: {data['browser_error']}")
    table = Table(["what", "first s", "later loads s (median (min–max))"])
    table.add("server start → /_stcore/health", Spread.of(starts).text(), "—")
    if loads:
        data = loads[0]
        for key, label in (("data_paint", "Data page: title painted"), ("data_settled", "Data page: settled"),
                           ("evaluate_paint", "Evaluate page (saved run): title painted"),
                           ("evaluate_chart", "Evaluate page: first chart drawn"),
                           ("evaluate_settled", "Evaluate page: settled"),
                           ("evaluate_reload_chart", "Evaluate page reloaded in the same tab: first chart")):
            values = data[key]
            later = Spread.of(values[1:]).text() if len(values) > 1 else "—"
            table.add(label, f"{values[0]:.2f}", later)
    section.tables.append(table)
    if missing is None:
        _class(cfg, section, str(runs_dir))
    return section


def _class(cfg: Config, section: Section, runs_dir: str) -> None:
    """A class on one server: a new session's Data page against an empty page with one uploader,
    and what idle sessions cost the server (``bench.sessions``)."""
    counts = [1, 4] if cfg.quick else [1, 10, 30]
    log(f"app latency: a class — fresh sessions, then {counts} idle ones (app, then an empty page)")
    data = run_child("sessions:class_child", runs_dir=runs_dir, log_dir=str(cfg.work), loads=3 if cfg.quick else 6,
                     counts=counts, window_s=10.0 if cfg.quick else 30.0, timeout=1800).data
    app, empty = Spread.of(data["app_uploader_s"][1:]), Spread.of(data["empty_uploader_s"][1:])
    ratio = app.median / empty.median
    pages = Table(["page (fresh browser context each)", "first s", "later loads s", "ratio to the empty page",
                   "target", "verdict"],
                  title="A new session's Data page: usable (its uploader attached)")
    pages.add("empty Streamlit page with one uploader", f"{data['empty_uploader_s'][0]:.2f}", empty.text(), "1",
              "—", "—")
    pages.add("Trainboard's Data page", f"{data['app_uploader_s'][0]:.2f}", app.text(), f"{ratio:.2f}",
              f"≤ {PAGE_RATIO_TARGET:g}", section.judge("Data page usable vs an empty page (ratio)", ratio,
                                                       PAGE_RATIO_TARGET))
    section.tables.append(pages)
    idle = Table(["idle sessions on the Data page", "empty page: server CPU", "Trainboard: server CPU",
                  "Trainboard's cost per session", "target", "verdict"],
                 title="What idle browser sessions cost the server (share of one core; server and its workers)")
    idle.add("none (server just started, workers importing)", f"{data['empty_no_session']:.1%}",
             f"{data['app_no_session']:.1%}", "—", "—", "—")
    for count in counts:
        share, reference = data["app_idle"][str(count)], data["empty_idle"][str(count)]
        per_session = max(0.0, share - reference) / count
        idle.add(str(count), f"{reference:.1%}", f"{share:.1%}", f"{per_session:.2%}", f"≤ {SESSION_CPU_TARGET:.0%}",
                 section.judge(f"server CPU per idle session ({count} open)", per_session * 100,
                               SESSION_CPU_TARGET * 100))
    section.tables.append(idle)
    section.notes.append("Data page: the first load is the server's first page (imports, the training workers "
                         "spawned); the later ones start once the server is quiet again (its workers have "
                         "imported their libraries), each in a fresh browser context.")
    section.notes.append("Idle: each session sits on the Data page with nothing loaded; the server's CPU (user + "
                         "system time of the streamlit process and its children, from /proc) over "
                         f"{10 if cfg.quick else 30} s, after the sessions have settled. A session polls the server "
                         "only while one of its jobs is queued or running.")
