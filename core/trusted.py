"""The one door to unpickling (rule 7): model files load only from one of the app's own run
folders, and only bytes this installation sealed when it saved them.

``trusted_folder(run_dir, runs_dir)`` opens the door for a run folder after checking, itself, that
it is one (``resolve_run``: inside the app's runs folder, with a manifest) — no caller can open it
on another folder. A family's ``load`` reads its pickles through ``load_pickle``, which refuses any
file but one the run wrote itself (named in its manifest's ``seal``, a plain file, not a link) and
unpickles only bytes whose keyed digest matches that seal: an HMAC-SHA256 under a key kept outside
the runs folder (``seal_key``), written by ``seal`` when the run is saved. So a family called any
other way, a path that escapes the folder, a file put in it since, a file swapped for another
under the run's own name, or a manifest rewritten to vouch for one, can never feed foreign bytes
to joblib; the bytes checked are the bytes loaded.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.run_record import MANIFEST_FILE, load_manifest

#: The open run folder and the seal its manifest holds (file name → keyed digest of its bytes).
_TRUSTED: ContextVar[tuple[Path, dict[str, str]] | None] = ContextVar("trusted_run_folder", default=None)
#: Where the sealing key lives unless ``TRAINBOARD_SEAL_KEY`` names another file: outside any runs folder.
KEY_FILE = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "trainboard" / "run-seal.key"
DOOR_SHUT = "Model files load only from the app's own runs folder, through its run history."
UNSEALED = ("This run's model files carry no seal from this installation (it was saved before Trainboard "
            "sealed them, or elsewhere), so they are not loaded: model files are programs. Train it again here.")


@functools.cache
def seal_key() -> bytes:
    """This installation's sealing key: 32 random bytes in a file only its owner can read, made on
    first use (atomically: a second process racing to make it reads the first one's)."""
    path = Path(os.environ.get("TRAINBOARD_SEAL_KEY") or KEY_FILE)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # fails if another process made it first: then theirs is the key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 32:
        raise RunError(f"The sealing key {path} is damaged (too short); delete it, then train again.")
    return key


def _digest(data: bytes) -> str:
    return hmac.new(seal_key(), data, hashlib.sha256).hexdigest()


def seal(folder: str | Path, names: Iterable[str]) -> dict[str, str]:
    """The manifest's ``seal`` for the files ``names`` in ``folder``, as this installation saved them."""
    folder = Path(folder)
    return {name: _digest((folder / name).read_bytes()) for name in sorted(names)}


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
    token = _TRUSTED.set((folder, {str(k): str(v) for k, v in (load_manifest(folder).get("seal") or {}).items()}))
    try:
        yield folder
    finally:
        _TRUSTED.reset(token)


def load_pickle(path: str | Path) -> Any:
    """``joblib.load`` of one of the files the run that ``trusted_folder`` vetted wrote itself,
    its bytes read once and unpickled only if they match the run's seal; anything else is refused
    before a byte of it is unpickled."""
    import joblib

    opened, given = _TRUSTED.get(), Path(path)
    target = given.resolve()
    if opened is None:
        raise RunError(DOOR_SHUT)
    folder, sealed = opened
    if not sealed:
        raise RunError(UNSEALED)
    if not _written_by_run(given, target, folder, sealed):
        raise RunError(DOOR_SHUT)
    data = target.read_bytes()
    if not hmac.compare_digest(sealed[target.relative_to(folder).as_posix()], _digest(data)):
        raise RunError(UNSEALED)
    return joblib.load(io.BytesIO(data))


def _written_by_run(given: Path, target: Path, folder: Path, sealed: dict[str, str]) -> bool:
    """Whether ``target`` is a file the run in ``folder`` wrote and sealed: inside it, named in its
    manifest's seal, a plain file rather than a link (to anything at all)."""
    return (folder in target.parents and target.relative_to(folder).as_posix() in sealed
            and not given.is_symlink() and target.is_file())
