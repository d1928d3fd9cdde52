"""Errors meant for people: each message says what is wrong and what to do about it.

Pages show them with ``st.error``; the CLI prints ``error: <message>`` and exits with status 2.
Anything that is *not* a ``TrainboardError`` is a bug, never the user's fault.
"""


class TrainboardError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is the whole message."""


class DataError(TrainboardError):
    """The file or its contents cannot be used as given (empty, not a table, bad target…)."""


class PlanError(TrainboardError):
    """The requested model or settings do not fit the data (e.g. a CNN for a table)."""


class RunError(TrainboardError):
    """A saved run is missing, incomplete or not one of this app's runs."""


class StorageError(TrainboardError):
    """The server could not write what it must keep (a full disk, a folder it may not write to)."""
