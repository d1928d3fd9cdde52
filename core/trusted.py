"""The one door to unpickling (rule 7): model files load only from one of the app's own run
folders.

``trusted_folder(run_dir, runs_dir)`` opens the door for a run folder after checking, itself, that
it is one (``resolve_run``: inside the app's runs folder, with a manifest) — no caller can open it
on another folder. A family's ``load`` reads its pickles through ``load_pickle``, which refuses any
file but one the run wrote itself (named in its manifest's ``files``, a plain file, not a link) —
so a family called any other way, a path that escapes the folder, or a file put in it since, can
never feed uploaded bytes to joblib.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.run_record import MANIFEST_FILE, load_manifest

#: The open run folder and the files its manifest says the run wrote.
_TRUSTED: ContextVar[tuple[Path, frozenset[str]] | None] = ContextVar("trusted_run_folder", default=None)


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
    token = _TRUSTED.set((folder, frozenset(str(name) for name in load_manifest(folder).get("files") or ())))
    try:
        yield folder
    finally:
        _TRUSTED.reset(token)


def load_pickle(path: str | Path) -> Any:
    """``joblib.load(path)`` for one of the files the run that ``trusted_folder`` vetted wrote
    itself; anything else is refused before a byte of it is read."""
    import joblib

    opened, given = _TRUSTED.get(), Path(path)
    target = given.resolve()
    if opened is None or not _written_by_run(given, target, *opened):
        raise RunError("Model files load only from the app's own runs folder, through its run history.")
    return joblib.load(target)


def _written_by_run(given: Path, target: Path, folder: Path, files: frozenset[str]) -> bool:
    """Whether ``target`` is a file the run in ``folder`` wrote: inside it, named in its manifest,
    a plain file rather than a link (to anything at all)."""
    return (folder in target.parents and target.relative_to(folder).as_posix() in files
            and not given.is_symlink() and target.is_file())
