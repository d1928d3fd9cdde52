"""Section 9: what the data checks (``core.checks``) cost next to loading the table they check.

Target (issue #12): the checks on the 1M-row synthetic table take at most 10% of its load time plus
2 s. Each repeat is a fresh process that imports what a job worker has imported anyway (pandas,
scikit-learn, the planner), reads the CSV with ``core.datasets.load_table``, prepares it and runs
``core.checks.apply_checks``. The findings on each bundled sample are listed beside it.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Config, Section, Spread, Table, interleaved, log, ratios, run_child

TARGET_SHARE, TARGET_EXTRA_S = 0.10, 2.0
SAMPLES = ("iris.csv", "wine.csv", "breast_cancer.csv", "diabetes.csv", "churn.csv", "digits.zip", "shapes.zip")


def checks_child(path: str, target: str) -> dict[str, Any]:
    """Child task: load, prepare and check one table; seconds for each step."""
    import core.planner  # noqa: F401  (a job worker has these loaded before it reads the file)
    from core.checks import apply_checks, summary
    from core.datasets import load_table
    from core.schema import prepare

    t0 = time.perf_counter()
    table = load_table(path)
    t1 = time.perf_counter()
    prepared = prepare(table, target=target)
    t2 = time.perf_counter()
    checked = apply_checks(prepared)
    t3 = time.perf_counter()
    return {"load_s": t1 - t0, "prepare_s": t2 - t1, "checks_s": t3 - t2, "rows": len(prepared.X),
            "summary": summary(checked.checks), "ids": [f.id for f in checked.checks]}


def samples_child() -> dict[str, Any]:
    """Child task: the findings on every bundled sample, by severity."""
    from core.checks import apply_checks
    from core.datasets import SAMPLE_DIR, load_table
    from core.images import load_images
    from core.schema import prepare

    out = {}
    for name in SAMPLES:
        path = SAMPLE_DIR / name
        data = load_images(path) if name.endswith(".zip") else prepare(load_table(path))
        t0 = time.perf_counter()
        findings = apply_checks(data).checks
        out[name] = {"seconds": time.perf_counter() - t0,
                     "findings": [f"{f.severity}: {f.id} — {f.title}" for f in findings]}
    return out


def run(cfg: Config, shared: dict[str, Any]) -> Section:
    from bench.data import TARGET

    section = Section(
        "9. Data checks",
        f"`core.checks.apply_checks` (every table check: leakage, row order, duplicates, columns, target) on the "
        f"synthetic table of {cfg.big_csv_rows:,} rows × 21 columns, after `load_table` and `prepare` in the same "
        "fresh process (which has imported pandas, scikit-learn and the planner first, as a job worker has). "
        f"Target: checks ≤ {TARGET_SHARE:.0%} of the load time + {TARGET_EXTRA_S:g} s.")
    made = run_child("data:make", n_rows=cfg.big_csv_rows, fmt="csv").data
    log(f"checks: {cfg.big_csv_rows:,} rows × {cfg.repeats}")
    details: list[dict[str, Any]] = []

    def measure(_variant: str, _repeat: int) -> float:
        data = run_child("checks:checks_child", path=made["path"], target=TARGET).data
        details.append(data)
        return data["checks_s"]

    checks_s = interleaved(["checks"], cfg.repeats, measure)["checks"]
    load_s = [d["load_s"] for d in details]
    budget = [TARGET_SHARE * s + TARGET_EXTRA_S for s in load_s]
    share = ratios(checks_s, budget)
    table = Table(["rows", "load s", "prepare s", "checks s", "target s (10% of load + 2)", "checks / target",
                   "result", "findings"], title="Cost of the checks")
    table.add(f"{details[0]['rows']:,}", Spread.of(load_s).text(), Spread.of([d["prepare_s"] for d in details]).text(),
              Spread.of(checks_s).text(), Spread.of(budget).text(), share.text(2),
              section.judge(f"data checks on {cfg.big_csv_rows:,} rows (share of their budget)", share, 1.0),
              details[0]["summary"])
    section.tables.append(table)
    log("checks: bundled samples")
    samples = run_child("checks:samples_child").data
    listing = Table(["sample", "checks s", "findings"], title="Findings on the bundled samples",
                    note="Severity blocker/warning/note; a clean sample should have no warning.")
    for name, found in samples.items():
        listing.add(name, f"{found['seconds']:.2f}", "<br>".join(found["findings"]) or "none")
    section.tables.append(listing)
    return section
