"""A session's private upload folder inside a sandbox, so a test can assert that nothing was written
anywhere else (the working directory, the temp folder and the upload folder's parent are all inside)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ui import state


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "sandbox"
    for folder in ("cwd", "tmp"):
        (root / folder).mkdir(parents=True)
    info = state.SessionInfo(upload_dir=root / "session")
    info.upload_dir.mkdir()
    monkeypatch.setattr(state, "session", lambda: info)
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    return root


def written_outside(root: Path) -> list[str]:
    """Files under the sandbox that are not inside the session's upload folder."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.is_dir() and Path(root, "session") not in p.parents)
