"""``python -m bench [--quick] [--only N ...] [--out PATH]``: run the benchmarks, write RESULTS.md.

Exits non-zero only when a section fails with an error; a missed target is a finding, reported
in the file, not a failure.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    app_latency,
    classroom,
    end_to_end,
    live,
    loading,
    peer,
    pretrained,
    quality,
    tables,
    torch_loops,
    under_load,
)
from bench import checks as data_checks
from bench.common import NOISY_SPREAD, ROOT, WORK, Config, Section, log

SECTIONS: dict[str, Callable[[Config, dict[str, Any]], Section]] = {
    "1": lambda cfg, shared: tables.run(cfg),
    "2": lambda cfg, shared: live.run(cfg),
    "3": lambda cfg, shared: torch_loops.run(cfg),
    "4": lambda cfg, shared: loading.run(cfg),
    "5": end_to_end.run,
    "6": app_latency.run,
    "7": quality.run,
    "8": peer.run,
    "9": data_checks.run,
    "10": classroom.run,
    "11": pretrained.run,
    "12": under_load.run,
}
THREAD_VARS = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "TORCH_")
LIBRARIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "torch", "plotly", "streamlit", "pillow", "playwright")


def machine() -> list[str]:
    """Lines describing where and with what this run happened."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine())
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal")), 0)
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- Machine: {cpu}, {len(os.sched_getaffinity(0))} cores usable, {mem_kb / 2**20:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}",
            f"- Load average at start (1/5/15 min): {_load()}",
            "- OpenMP/thread settings in the environment: "
            + (", ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(THREAD_VARS)) or "none"
               + " (library defaults: OpenMP threads spin-wait actively)"),
            f"- Python {platform.python_version()}; " + ", ".join(versions)]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_sections(cfg: Config, only: list[str]) -> list[Section]:
    shared: dict[str, Any] = {}
    done = []
    for key, run in SECTIONS.items():
        if only and key not in only:
            continue
        started, load = time.perf_counter(), _load()
        try:
            section = run(cfg, shared)
        except Exception:
            log(f"section {key} failed")
            traceback.print_exc()
            section = Section(f"{key}. (failed)", error=traceback.format_exc())
        section.seconds = time.perf_counter() - started
        section.notes.append(f"Load average at the section's start / end: {load} → {_load()}.")
        done.append(section)
        log(f"section {key} done in {section.seconds:.0f} s")
    return done


def render(cfg: Config, header: list[str], sections: list[Section], total_s: float) -> str:
    misses = [m for s in sections for m in s.misses]
    errors = [s.title for s in sections if s.error]
    lines = ["# Trainboard benchmark results", "",
             "Written by `python -m bench`" + (" --quick (a smoke run: small sizes, one repeat)" if cfg.quick else "")
             + " — see `bench/__init__.py`. Every figure is a ratio of two things measured in this run, each in a "
               "fresh process, repeats interleaved; times are median (min–max). A verdict marked *(noisy)* "
               f"had repeats disagreeing by more than {NOISY_SPREAD}×, usually other processes fighting for the "
               "cores (OpenMP's spin-waiting threads collapse when a core is taken): rerun before acting on it.",
             "", *header,
             f"- Load average at the end: {_load()}; whole run {total_s / 60:.1f} min.", "",
             "## Summary", ""]
    lines += [f"- MISS — {m}" for m in misses] or ["- Every target met."]
    lines += [f"- ERROR — {e}" for e in errors]
    lines.append("")
    for section in sections:
        lines.append(section.markdown())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run of a few minutes")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=[], metavar="N",
                        help=f"run only these sections (1-{len(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the results (default bench/RESULTS.md; bench/_work/RESULTS-quick.md "
                             "for --quick, bench/_work/RESULTS-partial.md for --only)")
    args = parser.parse_args(argv)
    cfg = Config(quick=args.quick)
    # Only a full run of every section replaces bench/RESULTS.md.
    partial = args.quick or bool(args.only)
    out = args.out or (WORK / f"RESULTS-{'quick' if args.quick else 'partial'}.md" if partial
                       else ROOT / "bench" / "RESULTS.md")
    WORK.mkdir(parents=True, exist_ok=True)
    header = machine()
    log("machine: " + " | ".join(line[2:] for line in header))
    started = time.perf_counter()
    sections = run_sections(cfg, args.only)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(cfg, header, sections, time.perf_counter() - started))
    log(f"wrote {out}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
