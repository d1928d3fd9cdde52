"""The one door to unpickling (rule 7): model files load only from one of the app's own run
folders.

``trusted_folder(run_dir, runs_dir)`` opens the door for a run folder after checking, itself, that
it is one (``resolve_run``: inside the app's runs folder, with a manifest) — no caller can open it
on another folder. A family's ``load`` reads its pickles through ``load_pickle``, which refuses any
path outside the open folder — so a family called any other way, or a path that escapes the
folder, can never feed uploaded bytes to joblib.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.run_record import MANIFEST_FILE

_TRUSTED: ContextVar[Path | None] = ContextVar("trusted_run_folder", default=None)


def resolve_run(run_dir: str | Path, runs_dir: str | Path) -> Path:
    """The run folder, which must lie inside ``runs_dir``: model files are pickles, so only the
    app's own runs may be loaded (ARCHITECTURE.md, "The run folder"). ``run_dir`` may also be a bare run id."""
    root = Path(runs_dir).resolve()
    path = Path(run_dir)
    if not path.exists() and (root / path).exists():
        path = root / path
    path = path.resolve()
    if root not in path.parents:
        raise RunError(f"Only runs saved by this app, inside its runs folder ({root}), can be opened. "
                       "Pick a run from the Runs page, or pass --runs-dir with the folder that holds it.")
    if not (path / MANIFEST_FILE).is_file():
        raise RunError(f"'{run_dir}' is not a saved run. Pick one from the Runs page or train a new one.")
    return path


@contextmanager
def trusted_folder(run_dir: str | Path, runs_dir: str | Path) -> Iterator[Path]:
    """While inside, ``load_pickle`` may read files in the run folder ``run_dir`` — which must be
    one of the app's runs in ``runs_dir`` (``resolve_run``); yields that folder."""
    folder = resolve_run(run_dir, runs_dir)
    token = _TRUSTED.set(folder)
    try:
        yield folder
    finally:
        _TRUSTED.reset(token)


def load_pickle(path: str | Path) -> Any:
    """``joblib.load(path)`` for a file inside the run folder ``trusted_folder`` vetted; anything
    else is refused."""
    import joblib

    folder, target = _TRUSTED.get(), Path(path).resolve()
    if folder is None or folder not in target.parents:
        raise RunError("Model files load only from the app's own runs folder, through its run history.")
    return joblib.load(target)
