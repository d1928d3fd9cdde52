"""A class in real browsers on one server: several sessions at once each load a table, train, evaluate
and predict, and see only their own; a browser that goes away mid-training has its job stopped and
its uploads removed. ``make test`` walks one session. The soak (``make soak``, ``.ci/run``) is the
whole class at once: five browsers walk while 30 simulated sessions (``tests/core/simulated_class.py``,
in a process of their own with their own job manager) train, evaluate and predict, and both the
server and that process come back near their threads and memory from before."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from core.runs import list_runs
from tests.core.simulated_class import READY, assert_soak, footprint, peak_mb
from tests.e2e.conftest import ROOT, app_server, skip_without_chromium
from tests.e2e.screenshot import select_option, wait_for_app
from tests.e2e.test_browser import SAMPLES, TRAIN_TIMEOUT_MS, open_evaluate, open_page, outcome, upload
from ui.widgets import STATUS_POLL_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLES = ("iris.csv", "wine.csv", "diabetes.csv", "breast_cancer.csv", "churn.csv")
#: How far the server may stay above its threads and memory from before, once the sessions are gone.
THREADS_SLACK, MEMORY_SLACK_MB = 6, 300
QUEUED = re.compile(r"position (\d+) in the queue")


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """A server of its own: its temporary files in a folder the tests can look into, and a short
    idle timeout and grace after a disconnect (a browser that has gone loses its jobs within seconds)."""
    skip_without_chromium()
    folder = tmp_path_factory.mktemp("class")
    (folder / "tmp").mkdir()
    env = {"TMPDIR": str(folder / "tmp"), "TRAINBOARD_IDLE_TTL_S": "20", "TRAINBOARD_DISCONNECT_GRACE_S": "3"}
    with app_server(folder, env=env) as (url, process):
        yield url, process, folder


def uploads(folder: Path) -> list[Path]:
    return sorted((folder / "tmp").glob("trainboard-upload-*"))


#: A script-run request names its page (a hash) and widget states: far longer than a heartbeat.
RERUN_REQUEST_BYTES = 40


def record_requests(page) -> list[float]:
    """When the page asked the server for a script run (its websocket's longer sent frames)."""
    sent: list[float] = []
    page.on("websocket", lambda ws: ws.on(
        "framesent", lambda frame: sent.append(time.monotonic()) if len(frame) >= RERUN_REQUEST_BYTES else None))
    return sent


def walk(browser, url: str, names: tuple[str, ...], quiet_check_s: float = 0.0,
         before_training=None) -> tuple[float, float]:
    """Sessions at once: each loads its own sample, all start training together (linear models, the
    server's one worker queues them), then each evaluates and predicts; each sees only its own.
    ``before_training`` is called just before the first "Start training". ``quiet_check_s``:
    afterwards, no page may ask the server for anything for that long (idle sessions do not poll).
    Returns when the first job was started and when the last page showed its outcome (``time.time()``)."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in names]
    pages = [context.new_page() for context in contexts]
    requests = [record_requests(page) for page in pages]
    try:
        for page, name in zip(pages, names, strict=True):
            page.set_default_timeout(60_000)
            page.goto(url)
            wait_for_app(page)
            page.get_by_role("tab", name="Try a sample").click()
            page.get_by_role("button", name=name).click()
            page.get_by_role("heading", name=f"Loaded: {name}").wait_for()
            open_page(page, "Train")
            page.locator("summary", has_text="Settings").click()
            select_option(page, "Model", "Linear model")
        if before_training is not None:
            before_training()
        clicked = time.time()
        for page in pages:  # all at once
            page.get_by_role("button", name="Start training").click()
        for page in pages:
            queued = page.get_by_text(QUEUED)
            queued.or_(page.get_by_role("button", name=re.compile(r"Stop$"))).or_(
                page.get_by_role("link", name="Open in Evaluate")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
            if queued.count():  # a queued job's place: behind at most the others
                assert 1 <= int(QUEUED.search(queued.first.inner_text()).group(1)) < len(names)
        for page in pages:
            assert outcome(page).first.inner_text().startswith("Finished. Model: ")
        trained = time.time()
        for page, name in zip(pages, names, strict=True):
            others = [n for n in names if n != name]
            sidebar = page.get_by_test_id("stSidebar").inner_text()
            assert name in sidebar and not any(n in sidebar for n in others)
            open_evaluate(page)
            main = page.get_by_test_id("stMain").inner_text()
            assert name in main and not any(n in main for n in others), (name, others)
            open_page(page, "Predict")
            upload(page, "A table of new rows", SAMPLES / name)
            rows = len(pd.read_csv(SAMPLES / name))
            page.get_by_text(f"{rows:,} predictions with").wait_for(timeout=TRAIN_TIMEOUT_MS)
            assert page.get_by_text(f"({name})", exact=False).count() >= 1
        if quiet_check_s:
            for page in pages:
                wait_for_app(page)
            since = time.monotonic()
            pages[0].wait_for_timeout(quiet_check_s * 1000)
            assert all(requests), "the pages' requests were not seen: the check could not fail"
            assert [[t - since for t in sent if t > since] for sent in requests] == [[] for _ in pages]
    finally:
        for context in contexts:
            context.close()
    return clicked, trained


def settle_footprint(pid: int, seconds: float = 8.0) -> tuple[int, float]:
    time.sleep(seconds)  # closed sessions are released, their script threads end
    return footprint(pid)


def test_one_session_walks_the_whole_path_and_sees_only_its_own(browser, class_server):
    url, _, _ = class_server
    walk(browser, url, TABLES[:1], quiet_check_s=2.5 * STATUS_POLL_S)


class SimulatedClass:
    """``tests.core.simulated_class`` in a child process of its own (its own job manager and
    workers, its own threads and memory to measure): it warms up at once, and its sessions start
    on ``start()``."""

    SESSIONS = 30
    READY_TIMEOUT_S, RESULT_TIMEOUT_S = 300, 600

    def __init__(self, folder: Path) -> None:
        self.log = folder / "simulated.log"
        self._lines: queue.Queue[str] = queue.Queue()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.core.simulated_class", str(self.SESSIONS), str(folder)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def _next_line(self, timeout_s: float) -> str:
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"the simulated class said nothing for {timeout_s:.0f} s; its log:\n"
                                 f"{self.log.read_text()[-4000:]}") from None

    def wait_ready(self) -> None:
        line = self._next_line(self.READY_TIMEOUT_S)
        assert line == READY, (line, self.log.read_text()[-4000:])

    def start(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> dict:
        line = self._next_line(self.RESULT_TIMEOUT_S)
        assert self.process.wait(30) == 0, self.log.read_text()[-4000:]
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.soak
def test_a_class_at_once_five_browsers_and_thirty_simulated_sessions_then_back_to_baseline(
        browser, class_server, tmp_path):
    url, process, _ = class_server
    walk(browser, url, TABLES[:1])  # the server's first imports and caches, once
    simulated = SimulatedClass(tmp_path)  # warms up while the server settles
    try:
        threads_before, rss_before = settle_footprint(process.pid)
        simulated.wait_ready()
        began = time.perf_counter()
        clicked, trained = walk(browser, url, TABLES, before_training=simulated.start)
        result = simulated.result()
        wall = time.perf_counter() - began
    finally:
        simulated.close()
    threads_after, rss_after = settle_footprint(process.pid)
    ran_from, ran_to = result["window"]
    together = min(ran_to, trained) - max(ran_from, clicked)
    print(f"\nclass soak: {wall:.0f} s in all; browsers' training {trained - clicked:.0f} s, simulated "
          f"{ran_to - ran_from:.0f} s, {together:.0f} s of it at once; server threads {threads_before} → "
          f"{threads_after}, RSS {rss_before:.0f} → {rss_after:.0f} MB (peak {peak_mb(process.pid):.0f})")
    assert together > 0, "the simulated sessions and the browsers did not train at the same time"
    assert_soak(result, SimulatedClass.SESSIONS)
    assert threads_after <= threads_before + THREADS_SLACK
    assert rss_after <= rss_before + MEMORY_SLACK_MB


def test_a_browser_that_goes_away_mid_training_loses_its_job_and_its_uploads(browser, class_server, tmp_path):
    url, _, folder = class_server
    # Churn ten times over: 5,000 trees on it take far longer than the disconnect grace (on churn
    # itself a quiet machine grows them in a few seconds, and the job could end before its cancel).
    big = tmp_path / "churn.csv"
    pd.concat([pd.read_csv(SAMPLES / "churn.csv")] * 10).to_csv(big, index=False)
    before = uploads(folder)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_for_app(page)
    upload(page, "A table", big)
    page.get_by_role("heading", name="Loaded: churn.csv").wait_for()
    wait_for_app(page)
    mine = [p for p in uploads(folder) if p not in before]  # this session's private folder
    assert len(mine) == 1 and any(mine[0].rglob("churn.csv"))
    open_page(page, "Train")
    # The sidebar's device check reruns the page once when it answers: let that happen before
    # opening a dropdown it would close.
    page.get_by_text("checking…").wait_for(state="detached", timeout=TRAIN_TIMEOUT_MS)
    wait_for_app(page)
    page.locator("summary", has_text="Settings").click()
    # A forest of 5,000 trees has no early stopping: it is still growing when the tab closes
    # (an MLP on churn stops early within a second or two on a quiet machine).
    select_option(page, "Model", "Random forest")
    page.get_by_text("Random forest").first.wait_for()
    field = page.get_by_label("Most epochs / boosting rounds / trees (0 = automatic)")
    field.fill("5000")
    field.press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name=re.compile(r"Stop$")).wait_for(timeout=TRAIN_TIMEOUT_MS)
    # Stop shows for a queued job too (a fresh worker still loading its libraries): wait until it trains.
    page.get_by_text("training…").first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    context.close()  # the tab is closed mid-training

    runs = folder / "runs"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stopped = [r for r in list_runs(runs) if r.data.source == "churn.csv" and r.cancelled]
        if stopped and not mine[0].exists():
            break
        time.sleep(1.0)
    assert not mine[0].exists(), "the session's uploads are still on the server"
    assert stopped, f"the job of the closed session was not stopped: {[(r.run_id, r.cancelled) for r in list_runs(runs)]}"
