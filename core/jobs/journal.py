"""Jobs the server has started, on disk, so a restarted server can say which ones were lost.

A job's marker is a small JSON file in the runs folder's hidden ``.jobs/`` folder, written when the
job starts and removed when it ends (its run saved, failed or cancelled). A server that stops
with jobs running leaves their markers behind; the next server's ``recover`` reads them (only
those of servers that are no longer running), removes them and returns what was lost. It also
removes half-written run folders (``.tmp-<run id>-<pid>``, ``core.runs.save_run``) whose writer
is gone. Markers never hold the data, only the job's name and times.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOLDER = ".jobs"


@dataclass(frozen=True)
class LostJob:
    """A job that was queued or running when its server stopped."""

    name: str  # what the user called the data
    mode: str  # train, compare or predict
    started: float  # epoch seconds
    workspace: str | None = None  # whose job it was (``JobSpec.workspace``): only they are told


def _process_start(pid: int) -> str | None:
    """When a process started (Linux: ``/proc/<pid>/stat`` field 22), so a reused pid is told
    apart; None where that cannot be read (the pid alone is checked then)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return start is None or _process_start(pid) in (None, start)


def marker_path(runs_dir: str | Path, job_id: str) -> Path:
    return Path(runs_dir) / FOLDER / f"{os.getpid()}-{job_id}.json"


def job_started(runs_dir: str | Path, job_id: str, spec: Any) -> Path | None:
    """Write the job's marker; None (and nothing written) when the runs folder is not writable —
    the job itself will say so when it saves."""
    path = marker_path(runs_dir, job_id)
    record = {"name": getattr(spec, "display_name", "") or job_id, "mode": getattr(spec, "mode", "train"),
              "started": time.time(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
              "workspace": getattr(spec, "workspace", None)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    except OSError:
        return None
    return path


def job_ended(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def recover(runs_dir: str | Path) -> list[LostJob]:
    """The jobs that servers no longer running left unfinished (oldest first); their markers and
    those servers' half-written runs are removed."""
    runs_dir = Path(runs_dir)
    lost = []
    for path in sorted((runs_dir / FOLDER).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid, start = int(record["pid"]), record.get("pid_start")
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: it cannot be a live server's either
            continue
        mine = pid == os.getpid() and start is not None and start == _process_start(pid)
        if mine or (pid != os.getpid() and _alive(pid, start)):
            continue  # a server still running (this one, or another sharing the runs folder)
        workspace = record.get("workspace")
        lost.append(LostJob(str(record.get("name", "")), str(record.get("mode", "train")),
                            float(record.get("started", 0.0)), workspace if isinstance(workspace, str) else None))
        path.unlink(missing_ok=True)
    for tmp in runs_dir.glob(".tmp-*") if runs_dir.is_dir() else []:
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid), None):
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(lost, key=lambda job: job.started)
