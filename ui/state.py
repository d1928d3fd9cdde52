"""Session state: every key the pages keep in ``st.session_state``, and the server-wide job manager.

Shared by several pages:

* ``DATASET`` — ``LoadedData``: the data the user picked (name, server-side path, loaded data).
* ``TARGET`` — the chosen target column (tables).
* ``ROLES`` — ``{column: role}`` the user changed by hand on the Data page (a role set on a column the
  data checks would leave out keeps it: that is their opt back in).
* ``CHECKS_OFF`` — the data checks' opt-outs the user chose (``core.checks`` keys, e.g. keep duplicates
  in validation).
* ``JOB`` — this session's latest training job (its state lives in the job manager).
* ``RUN`` — the run opened on Evaluate / Predict.

The rest belong to one page or helper each; they are declared below so no two pieces of code
pick the same name for different things. Widget keys (``st.*(key=...)``) are listed too: a
widget's value lives in the session state under its key.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from core import limits
from core.errors import DataError
from core.runs import DEFAULT_RUNS_DIR
from core.types import ImageData, TableData

DATASET, TARGET, ROLES, JOB, RUN = "dataset", "target", "roles", "job_id", "run_dir"
CHECKS_OFF = "checks_off"
PREPARED = "_prepared"  # (data, target, roles, opt-outs) → the prepared, checked table, computed once
DATA_SEEN = "_data_seen"  # upload fingerprint → None (loaded) or the error it gave
JOBS_SEEN_DONE = "_jobs_seen_done"  # jobs whose end already reran the page
COMPARE_JOB = "compare_job_id"  # the Train page's model comparison
PREDICT_JOB = "predict_job_id"  # {run and upload: prediction job}
RUNS_TO_DELETE, RUNS_DELETE_ERROR = "_runs_to_delete", "_runs_delete_error"
EVALUATE_THRESHOLD_SAVED = "_evaluate_threshold_saved"  # (run id, "success"/"error", words) after Save
REPORT_ASKED = "_report_asked"  # ui.report_view: the offline report was asked for, per page and run (report_key)
# Widgets
DATA_TABLE_UPLOAD, DATA_ZIP_UPLOAD, DATA_FOLDER_UPLOAD = "data_table_upload", "data_zip_upload", "data_folder_upload"
DATA_TARGET = "data_target"
DATA_USE_COLUMN = "data_use_column"  # one checkbox per column the checks leave out: data_use_column:<…>:<column>
DATA_KEEP_DUPLICATES = "data_keep_duplicates"  # one toggle per data: data_keep_duplicates:<fingerprint>
EVALUATE_RUN, EVALUATE_NORMALISED, EVALUATE_SALIENCY = "evaluate_run", "evaluate_normalised", "evaluate_saliency"
EVALUATE_THRESHOLD = "evaluate_threshold"  # one slider per run: evaluate_threshold:<run id>
PREDICT_RUN, PREDICT_ZIP, PREDICT_FOLDER, PREDICT_TABLE = "predict_run", "predict_zip", "predict_folder", "predict_table"
RUNS_PICKED = "runs_picked"
# Evaluate / Predict "look closer" (ui.closer_view); the cell picker is one per run: evaluate_cell:<run id>
EVALUATE_CELL, EVALUATE_CELL_CLICK = "evaluate_cell", "evaluate_cell_click"  # drill-down picker, matrix clicks
EVALUATE_DEPENDENCE, EVALUATE_DEPENDENCE_CLASS = "evaluate_dependence", "evaluate_dependence_class"
EVALUATE_EXPLAIN_ROW, PREDICT_EXPLAIN_ROW = "evaluate_explain_row", "predict_explain_row"
COMPARE_BUDGET = "compare_budget"
SESSION_INFO = "_session_info"  # SessionInfo: in the session state, so a tab that reconnects keeps it
#: The page address's query parameter holding the browser's workspace key: reloading the page, or
#: opening its address again later, comes back to the same runs (``workspace``).
WORKSPACE_PARAM = "workspace"
_WORKSPACE_KEY = re.compile(r"[0-9a-f]{32}")

#: After a browser disconnects, how long its jobs and uploads wait for it to come back before they are
#: stopped and deleted: Streamlit keeps a disconnected session resumable for two minutes (a laptop's
#: Wi-Fi dropping for a moment must not cost a student their training run).
DISCONNECT_GRACE_S = float(os.environ.get("TRAINBOARD_DISCONNECT_GRACE_S", 120))


@dataclass
class LoadedData:
    """The dataset a session works on: what the user calls it, where the server keeps it."""

    name: str
    path: str  # a file, folder or zip on the server that a worker process can read
    data: TableData | ImageData
    sample: bool = False
    fingerprint: str = ""

    @property
    def kind(self) -> str:
        return self.data.kind


@dataclass
class SessionInfo:
    """Per browser session: an owner id for its jobs and a private folder for its uploads."""

    owner: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    workspace_key: str = field(default_factory=lambda: uuid.uuid4().hex)  # the secret in the page's address
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="trainboard-upload-")))
    connected_at: float = field(default_factory=time.time)  # when the browser last (re)connected

    @property
    def workspace(self) -> str:
        """Whose runs this session sees and saves (``core.runs.list_runs``): a digest of the key,
        so a manifest (which travels in a bundle) never holds the key itself."""
        return hashlib.sha256(self.workspace_key.encode()).hexdigest()[:16]


def threshold_key(run_id: str) -> str:
    """The Evaluate page's threshold slider for one run, so switching runs starts at that run's own."""
    return f"{EVALUATE_THRESHOLD}:{run_id}"


def report_key(page: str, run_id: str) -> str:
    """Whether the offline report of ``run_id`` was asked for on ``page`` (built only then)."""
    return f"{REPORT_ASKED}:{page}:{run_id}"


def cell_key(run_id: str) -> str:
    """The Evaluate page's confusion-cell picker for one run (its cells are that run's classes)."""
    return f"{EVALUATE_CELL}:{run_id}"


def runs_dir() -> Path:
    return Path(os.environ.get("TRAINBOARD_RUNS", DEFAULT_RUNS_DIR))


@st.cache_resource(show_spinner="Starting the training workers…")
def job_manager() -> Any:
    """One job manager per server process; ``core.jobs.make_job_manager`` decides where jobs run
    (``TRAINBOARD_INLINE_JOBS=1``: inside ``submit``, for page tests)."""
    from core.jobs import make_job_manager

    return make_job_manager()


@st.cache_resource(show_spinner=False)
def lost_jobs() -> list[Any]:
    """Read once per server: the jobs an earlier server was running when it stopped
    (``core.jobs.journal.LostJob``, oldest first); their markers are removed."""
    from core.jobs.journal import recover

    return recover(runs_dir())


def release_session(info: SessionInfo) -> None:
    """The browser session has ended: cancel its jobs, delete its uploads."""
    try:
        job_manager().cancel_owner(info.owner)
    finally:
        shutil.rmtree(info.upload_dir, ignore_errors=True)


def _end_if_gone(info: SessionInfo, gone_at: float) -> None:
    """The grace after a disconnect is over: end the session unless its browser came back."""
    if info.connected_at <= gone_at:
        release_session(info)


def _disconnected(info: SessionInfo) -> None:
    timer = threading.Timer(DISCONNECT_GRACE_S, _end_if_gone, args=(info, time.time()))
    timer.daemon = True
    timer.start()


@st.cache_resource(scope="session", on_release=_disconnected, show_spinner=False)
def _connection(_info: SessionInfo) -> SessionInfo:
    """Lives while the browser is connected: Streamlit releases it when the browser disconnects."""
    _info.connected_at = time.time()
    return _info


def session() -> SessionInfo:
    """This browser session's owner id, upload folder and workspace, kept across a reconnect; when
    the browser has gone for ``DISCONNECT_GRACE_S`` its jobs are cancelled and its uploads deleted.

    The workspace key comes from the page's address (``?workspace=…``) when it holds one; ``workspace``
    puts it there.
    """
    info = st.session_state.get(SESSION_INFO)
    if info is None:
        info = SessionInfo()
        key = st.query_params.get(WORKSPACE_PARAM, "")
        if _WORKSPACE_KEY.fullmatch(key):
            info.workspace_key = key
        st.session_state[SESSION_INFO] = info
    _connection(info)
    return info


def workspace() -> str:
    """This browser's workspace id: the runs it lists, and the owner of the runs it trains. Its key
    is written into the page's address here (again after a page switch drops it), so a reload keeps
    the session's runs — only on the pages that list or train runs: rewriting the address on every
    page would cost the Glossary its ``#term`` jump (a reading's link opens it in a new tab)."""
    info = session()
    if st.query_params.get(WORKSPACE_PARAM) != info.workspace_key:
        st.query_params[WORKSPACE_PARAM] = info.workspace_key
    return info.workspace


def safe_name(name: str) -> str:
    """A file name safe to write in the upload folder (no folders, no odd characters)."""
    base = Path(name.replace("\\", "/")).name
    return re.sub(r"[^A-Za-z0-9._ -]+", "_", base).strip(" .") or "upload"


def save_upload(name: str, payload: bytes) -> Path:
    """Write an uploaded file once into this session's private folder; the worker reads it there.
    Refuses (``DataError``) a file that would take the folder past the per-session disk limit."""
    digest = hashlib.sha256(payload).hexdigest()[:12]
    folder = session().upload_dir / digest
    _check_disk(session().upload_dir, len(payload), name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_name(name)
    if not path.exists():
        path.write_bytes(payload)
    return path


def _check_disk(upload_dir: Path, size: int, name: str) -> None:
    limit = limits.SESSION_DISK_MB.value()
    used = sum(p.stat().st_size for p in upload_dir.rglob("*") if p.is_file())
    if used + size > limit * 2**20:
        raise DataError(f"'{name}' would take this session's uploads to {(used + size) / 2**20:,.0f} MB; the limit "
                        f"is {limit:,} MB per session ({limits.SESSION_DISK_MB.setting}). Reload the page to "
                        "start a fresh session, or upload a smaller file.")


def loaded() -> LoadedData | None:
    return st.session_state.get(DATASET)


def set_dataset(data: LoadedData) -> None:
    """Switch to new data: forget the old target, roles and check opt-outs."""
    st.session_state[DATASET] = data
    for key in (TARGET, ROLES, CHECKS_OFF):
        st.session_state.pop(key, None)


def current_job() -> Any:
    job_manager().touch(session().owner)  # every page run and every poll says "still here"
    job_id = st.session_state.get(JOB)
    return job_manager().get(job_id) if job_id else None


def checks_off() -> tuple[str, ...]:
    """The data checks' opt-outs chosen on the Data page, in a stable order."""
    return tuple(sorted(st.session_state.get(CHECKS_OFF) or ()))


def set_check_off(key: str, off: bool) -> None:
    """Turn one of the data checks' automatic actions off (``off=True``) or back on."""
    chosen = set(checks_off())
    if off:
        chosen.add(key)
    else:
        chosen.discard(key)
    st.session_state[CHECKS_OFF] = tuple(sorted(chosen))


def prepared() -> Any:
    """The current data made ready for training (target, roles, task) and checked (``core.checks``:
    the findings in ``.checks``, a leaking column left out unless the user kept it), computed once
    per (data, target, roles, opt-outs) and kept in the session. Raises ``core.errors.DataError``."""
    from core.checks import apply_checks
    from core.pipeline import prepare_data

    data = loaded()
    if data is None:
        return None
    target = st.session_state.get(TARGET)
    roles = dict(st.session_state.get(ROLES) or {})
    off = checks_off()
    key = (data.fingerprint or data.path, target, tuple(sorted(roles.items())), off)
    memo = st.session_state.get(PREPARED)
    if memo is None or memo[0] != key:
        memo = (key, apply_checks(prepare_data(data.data, target, roles), roles, off))
        st.session_state[PREPARED] = memo
    return memo[1]
