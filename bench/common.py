"""What every section shares: the run's settings, fresh child processes, spreads, verdicts, tables.

Kept free of heavy imports: the parent process only orchestrates (it stays idle while a child
measures), and children import this module too.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"
RESULT_MARK = "BENCH-RESULT "
#: Per-repeat ratios spanning more than this factor make a verdict "noisy".
NOISY_SPREAD = 1.5


@dataclass(frozen=True)
class Config:
    """Sizes and repeats of one run; ``quick`` shrinks everything to a smoke run."""

    quick: bool = False
    work: Path = WORK

    @property
    def table_sizes(self) -> dict[int, int]:
        """Rows of the synthetic training tables → repeats."""
        if self.quick:
            return {5_000: 1, 20_000: 1}
        return {10_000: 7, 100_000: 5, 1_000_000: 2}

    @property
    def repeats(self) -> int:
        return 1 if self.quick else 3

    def rounds(self, n_rows: int) -> int:
        """Boosting rounds for the overhead comparisons (fixed: early stopping never fires); fewer on
        the largest table to keep the run short, which if anything weighs fixed costs more."""
        return 30 if self.quick else 100 if n_rows < 1_000_000 else 50

    @property
    def job_repeats(self) -> int:
        """Repeats of the JobManager and second-thread comparisons."""
        return 1 if self.quick else 2

    @property
    def job_rows(self) -> int:
        return 20_000 if self.quick else 100_000

    @property
    def csv_sizes(self) -> dict[int, int]:
        """Rows of the synthetic CSVs for loading → repeats."""
        if self.quick:
            return {20_000: 1}
        return {100_000: 5, 1_000_000: 5}

    @property
    def big_csv_rows(self) -> int:
        """Rows of the generated CSV the end-to-end section trains on."""
        return 50_000 if self.quick else 1_000_000

    @property
    def mlp_rows(self) -> int:
        return 20_000 if self.quick else 100_000

    @property
    def mlp_epochs(self) -> int:
        return 2 if self.quick else 4

    @property
    def cnn_epochs(self) -> int:
        """Two epochs (~3 s a fit) let start-up costs swing the ratio by ±0.2 between runs."""
        return 1 if self.quick else 4


# ------------------------------------------------------------------ child processes


class ChildError(RuntimeError):
    """A child process failed; the message carries the tail of its error output."""


@dataclass(frozen=True)
class ChildResult:
    """What a child printed as its result, plus what the kernel says it used."""

    data: dict[str, Any]
    peak_rss_mb: float  # the child's peak resident memory (from wait4), the honest figure
    wall_s: float  # from start to exit, imports included


def run_child(task: str, timeout: float = 600.0, env: dict[str, str] | None = None, **kwargs: Any) -> ChildResult:
    """Run ``bench.child`` TASK in a fresh interpreter and return its result.

    ``task`` is ``"module:function"`` in ``bench``; keyword arguments travel as JSON. The child's
    peak RSS comes from ``wait4`` on exactly that child (``RUSAGE_CHILDREN`` would give the
    maximum over every child so far).
    """
    cmd = [sys.executable, "-m", "bench.child", task, json.dumps(kwargs)]
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=out, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, args=(process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        _kill_group(process.pid)  # anything the child left behind (servers, workers)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not lines:
        why = "timed out" if process.returncode in (-signal.SIGKILL, -signal.SIGTERM) else f"exit {process.returncode}"
        raise ChildError(f"{task} {kwargs} failed ({why}):\n{(stderr or stdout)[-3000:]}")
    return ChildResult(json.loads(lines[-1][len(RESULT_MARK):]), usage.ru_maxrss / 1024, wall)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def own_peak_rss_mb() -> float:
    """This process's peak resident memory so far (a high-water mark), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> float:
    """Start a fresh high-water mark and return the resident memory now, in MB (Linux; elsewhere
    the mark cannot be reset and ``peak_rss_since_reset_mb`` is the whole life's peak).

    A step's own peak is then ``peak_rss_since_reset_mb() - reset_peak_rss()``: subtracting the
    peak after imports instead reads 0 when the imports briefly peaked higher than the step.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _proc_status_mb("VmRSS")
    except OSError:
        return 0.0


def peak_rss_since_reset_mb() -> float:
    try:
        return _proc_status_mb("VmHWM")
    except OSError:
        return own_peak_rss_mb()


def _proc_status_mb(key: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {key} in /proc/self/status")


def interleaved(variants: Sequence[str], repeats: int, measure: Callable[[str, int], float]
                ) -> dict[str, list[float]]:
    """Call ``measure(variant, repeat)`` for every variant in turn, ``repeats`` rounds, so slow
    phases of a shared machine hit every variant alike."""
    values: dict[str, list[float]] = {v: [] for v in variants}
    for repeat in range(repeats):
        for variant in variants:
            values[variant].append(measure(variant, repeat))
    return values


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Spread:
    """Repeated measurements of one thing."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(tuple(float(v) for v in values))

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def text(self, digits: int = 2) -> str:
        """``median (min–max)``, or one number for one measurement."""
        if len(self.values) == 1:
            return f"{self.values[0]:.{digits}f}"
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}–{self.max:.{digits}f})"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Per-repeat ratios (repeat i of one variant over repeat i of the other)."""
    return Spread.of([a / b for a, b in zip(numerators, denominators, strict=True)])


def verdict(value: float | None, target: float, higher_is_better: bool = False) -> str:
    """PASS or MISS against a target; ``—`` when there is nothing to judge."""
    if value is None:
        return "—"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


@dataclass
class Table:
    """A Markdown table with an optional note under it."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""
    note: str = ""

    def add(self, *cells: Any) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        lines += ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


@dataclass
class Section:
    """One section of RESULTS.md: tables, notes, and the targets it missed."""

    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def judge(self, what: str, value: float | Spread | None, target: float, higher_is_better: bool = False) -> str:
        """The verdict (on the median of a spread), remembering a miss for the summary. Repeats that
        disagree by more than ``NOISY_SPREAD``× mark the verdict noisy: on a shared machine that
        is usually another process fighting for the cores, not the code."""
        spread = value if isinstance(value, Spread) else None
        number = spread.median if spread is not None else value
        result = verdict(number, target, higher_is_better)
        noisy = spread is not None and spread.min > 0 and spread.max / spread.min > NOISY_SPREAD
        if result == "MISS":
            sign = "≥" if higher_is_better else "≤"
            caveat = f" — noisy: repeats ranged {spread.min:.2f}–{spread.max:.2f}" if noisy else ""
            self.misses.append(f"{what}: {number:.2f} (target {sign} {target:g}){caveat}")
        return f"{result} (noisy)" if noisy and result != "—" else result

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        if self.intro:
            parts += [self.intro, ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        parts += [f"- {note}" for note in self.notes]
        if self.error:
            parts += ["", f"**This section failed:** `{self.error.splitlines()[-1][:300]}`"]
        parts += ["", f"_Section time: {self.seconds:.0f} s._", ""]
        return "\n".join(parts)


def seconds(value: float) -> str:
    return f"{value:.2f}"


def log(text: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
