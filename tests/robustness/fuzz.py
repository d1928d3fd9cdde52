"""The fuzzing harness the robustness tests share: case counts, a wall-clock guard per case, and the
one pipeline every generated file goes through (load → prepare → check → plan).

``TRAINBOARD_FUZZ_CASES`` sets how many table files one run generates in all (default 1,000, the
``make test`` run; ``.ci/run`` sets 10,000); ``TRAINBOARD_FUZZ_CASE_S`` the seconds one case may take.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, Phase, settings

from core.checks import apply_checks
from core.datasets import load_table
from core.errors import TrainboardError
from core.pipeline import make_plan, prepare_data
from core.schema import guess_target

CASES = int(os.environ.get("TRAINBOARD_FUZZ_CASES", "1000"))
CASE_SECONDS = float(os.environ.get("TRAINBOARD_FUZZ_CASE_S", "20"))
#: Words that only a bug puts in a message (a Python or library internal leaking through).
_INTERNAL = ("Traceback", "NoneType", "object has no attribute", "unhashable", "index out of range",
             "unsupported operand", "KeyError", "ValueError(", "TypeError(")


def fuzz_settings(share: float) -> settings:
    """Seeded (derandomized), no example database, no per-example deadline (the guard bounds each
    case instead: timings on a shared machine are too noisy for hypothesis' own deadline)."""
    return settings(max_examples=max(1, round(CASES * share)), derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True,
                    phases=[p for p in Phase if p is not Phase.explain])


class CaseTooSlow(BaseException):
    """A case ran past ``CASE_SECONDS`` (a BaseException, so no ``except Exception`` in the code swallows it)."""


@contextmanager
def time_bound(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail the case when it runs longer than ``seconds`` (SIGALRM; pytest runs tests in the main thread)."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover - no alarms off the main thread
        yield
        return

    def expire(signum, frame):
        raise CaseTooSlow(f"one case took more than {seconds:g} s (TRAINBOARD_FUZZ_CASE_S)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_names_the_problem(err: TrainboardError) -> None:
    """A message for people: a few words at least, no Python internals."""
    message = str(err)
    assert len(message.split()) >= 5, f"too short to name the problem: {message!r}"
    assert not any(word in message for word in _INTERNAL), f"an internal error leaked into: {message!r}"


def through_pipeline(payload: bytes, name: str, target_pick: int = 0, role: str | None = None) -> str:
    """Load, prepare (the guessed target, then one picked by ``target_pick`` with an optional role
    forced on another column), check and plan. Returns "load" (refused there), "prepare" (both
    targets refused) or "planned" (at least one planned). Any other exception propagates (the test fails)."""
    with time_bound():
        try:
            table = load_table(payload, name)
        except TrainboardError as err:
            assert_names_the_problem(err)
            return "load"
        columns = list(table.frame.columns)
        picked = columns[target_pick % len(columns)]
        attempts = [(guess_target(table.frame), {})]
        other = columns[(target_pick + 1) % len(columns)]
        attempts.append((picked, {other: role} if role and other != picked else {}))
        outcome = "prepare"
        for target, roles in attempts:
            try:
                prepared = apply_checks(prepare_data(table, target, roles), roles, ())
                make_plan(prepared)
                outcome = "planned"
            except TrainboardError as err:
                assert_names_the_problem(err)
        return outcome


def load_errors(payloads) -> Counter[str]:
    """For looking at a generator: the first words of each load error (not used by the tests)."""
    counts: Counter[str] = Counter()
    for payload, name in payloads:
        try:
            load_table(payload, name)
            counts["loaded"] += 1
        except TrainboardError as err:
            counts[" ".join(str(err).split()[1:6])] += 1
    return counts
