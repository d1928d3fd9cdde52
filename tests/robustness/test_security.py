"""Security settings (SECURITY.md): XSRF on, no typed path reaches the file system, no pickle or eval
of uploaded bytes, uploads deleted with their session. The real-server half is tests/e2e/test_security_server.py."""

from __future__ import annotations

import ast
import pickle
import tomllib
from pathlib import Path

import joblib
import pytest

from core import limits
from core.datasets import load_table
from core.errors import DataError, RunError
from core.runs import load_model
from ui import state

ROOT = Path(__file__).resolve().parents[2]
APP_CODE = sorted([ROOT / "app.py", *(ROOT / "app_pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])
SERVER_CODE = sorted([*APP_CODE, *(ROOT / "core").rglob("*.py")])


def calls(paths: list[Path]) -> list[tuple[str, str, ast.Call]]:
    """(file, dotted name, node) for every call in ``paths``: ``st.text_input``, ``joblib.load``…"""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                found.append((str(path.relative_to(ROOT)), ast.unparse(node.func), node))
    return found


def test_xsrf_protection_is_on_and_the_upload_ceiling_covers_the_app_limits():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True  # CORS off would let other sites read responses
    assert server["maxUploadSize"] >= max(limits.TABLE_MB.default, limits.IMAGES_MB.default)


def test_no_widget_takes_a_typed_path_or_query_parameter():
    """The browser can only pick uploads and bundled samples: no text box, no path. The one URL
    parameter is the workspace key, read in ``ui/state.py`` alone and used only if it is 32 hex
    digits (tests/app/test_train_page.py::test_a_forged_workspace_key_gets_a_fresh_workspace)."""
    typed = [(file, name) for file, name, _ in calls(APP_CODE)
             if name.split(".")[-1] in {"text_input", "text_area", "chat_input"}]
    assert typed == []
    reading_the_address = [path.name for path in APP_CODE if "query_params" in path.read_text()]
    assert reading_the_address == ["state.py"]


def test_no_eval_exec_or_unpickling_outside_the_trusted_door():
    risky = []
    for file, name, node in calls(SERVER_CODE):
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name in {"eval", "exec", "pickle.load", "pickle.loads", "pd.read_pickle", "marshal.loads",
                    "dill.load", "cloudpickle.load"}:
            risky.append((file, name))
        elif name == "joblib.load" and file != "core/trusted.py":
            risky.append((file, name))
        elif name == "torch.load" and keywords.get("weights_only") != "True":
            risky.append((file, name))
        elif name in {"np.load", "numpy.load"} and keywords.get("allow_pickle", "False") != "False":
            risky.append((file, name))
    assert risky == []


def test_an_uploaded_pickle_is_refused_as_a_table_never_unpickled(tmp_path):
    payload = pickle.dumps({"not": "a table"})
    for name in ("model.pkl", "table.csv", "table.parquet", "table.xlsx"):
        with pytest.raises(DataError):
            load_table(payload, name)


def test_a_model_outside_the_runs_folder_never_loads(tmp_path):
    """A 'run' planted in the uploads folder (or reached by ..) is refused before anything is unpickled."""
    runs, uploads = tmp_path / "runs", tmp_path / "session"
    planted = uploads / "evil-run"
    planted.mkdir(parents=True)
    runs.mkdir()
    joblib.dump({"evil": 1}, planted / "model.joblib")
    (planted / "manifest.json").write_text('{"model": {"key": "logistic"}}')
    for path in (planted, runs / ".." / "session" / "evil-run", "../session/evil-run"):
        with pytest.raises(RunError):
            load_model(path, runs)


def test_a_session_ending_cancels_its_jobs_and_deletes_its_uploads(tmp_path, monkeypatch):
    cancelled = []

    class Manager:
        def cancel_owner(self, owner):
            cancelled.append(owner)

    monkeypatch.setattr(state, "job_manager", lambda: Manager())
    info = state.SessionInfo(upload_dir=tmp_path / "uploads")
    (info.upload_dir / "abc").mkdir(parents=True)
    (info.upload_dir / "abc" / "table.csv").write_text("a,b\n1,2\n")
    state.release_session(info)
    assert cancelled == [info.owner]
    assert not info.upload_dir.exists()


def test_a_session_over_its_disk_limit_is_refused_naming_the_setting(sandbox, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_SESSION_DISK_MB", "1")
    state.save_upload("a.csv", b"x" * 600_000)
    with pytest.raises(DataError, match="1 MB per session.*TRAINBOARD_SESSION_DISK_MB"):
        state.save_upload("b.csv", b"y" * 600_000)
