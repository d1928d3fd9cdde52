"""The security settings on a real server (SECURITY.md): uploads need the page's XSRF token, and a
browser session's uploads are deleted once the session ends. A server of its own: its temp folder is
watched, and a disconnected session ends after 1 s (`TRAINBOARD_DISCONNECT_GRACE_S`) instead of 120."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import app_server
from tests.e2e.screenshot import CHROMIUM, wait_for_app

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "churn.csv"


@pytest.fixture(scope="module")
def watched_server(tmp_path_factory):
    if not Path(CHROMIUM).exists() and os.environ.get("CI") != "true":
        pytest.skip(f"no Chromium at {CHROMIUM}")
    folder = tmp_path_factory.mktemp("security")
    temp = folder / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp), "TRAINBOARD_INLINE_JOBS": "1", "TRAINBOARD_DISCONNECT_GRACE_S": "1"}
    with app_server(folder, env, ("--server.disconnectedSessionTTL", "2")) as (url, _):
        yield url, temp


def test_an_upload_without_the_pages_xsrf_token_is_refused(watched_server):
    url, _ = watched_server
    request = urllib.request.Request(f"{url}/_stcore/upload_file/some-session/some-file", data=b"a,b\n1,2\n",
                                     method="PUT", headers={"Content-Type": "application/octet-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403  # XSRF is checked first; with it off this would be 400 (unknown session)


def test_a_sessions_uploads_are_deleted_when_its_browser_goes_away(watched_server, browser):
    url, temp = watched_server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    wait_for_app(page)
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="A table")
    uploader.locator('input[type="file"]').set_input_files(str(SAMPLE))
    page.get_by_role("heading", name=f"Loaded: {SAMPLE.name}").wait_for()
    folders = list(temp.glob("trainboard-upload-*"))
    assert len(folders) == 1 and list(folders[0].rglob(SAMPLE.name)), folders
    context.close()
    deadline = time.monotonic() + 60
    while folders[0].exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not folders[0].exists(), "the session's upload folder outlived its session"
