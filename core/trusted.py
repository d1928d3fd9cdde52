"""The one door to unpickling (rule 7): model files load only from a run folder that
``core.runs.load_model`` has just checked is one of the app's own (``resolve_run``).

``load_model`` opens the door for that folder (``trusted_folder``); a family's ``load`` reads its
pickles through ``load_pickle``, which refuses any path outside it — so a family called any other
way, or a path that escapes the folder, can never feed uploaded bytes to joblib.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from core.errors import RunError

_TRUSTED: ContextVar[Path | None] = ContextVar("trusted_run_folder", default=None)


@contextmanager
def trusted_folder(folder: str | Path) -> Iterator[None]:
    """While inside, ``load_pickle`` may read files in ``folder`` (an already checked run folder)."""
    token = _TRUSTED.set(Path(folder).resolve())
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def load_pickle(path: str | Path) -> Any:
    """``joblib.load(path)`` for a file inside the run folder ``load_model`` vetted; anything else
    is refused."""
    import joblib

    folder, target = _TRUSTED.get(), Path(path).resolve()
    if folder is None or folder not in target.parents:
        raise RunError("Model files load only from the app's own runs folder, through its run history.")
    return joblib.load(target)
