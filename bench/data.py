"""Synthetic classification tables, generated once and reused (``bench/_work/tables``).

20 feature columns — 18 numeric (two with ~3% missing values) and 2 categorical (8 and 4 levels) —
plus a yes/no target ``label`` that depends on some numbers linearly, on others through an
interaction and a curve, and on both categories, with label noise: a table where boosting has
something to find and a linear model does not find it all.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import WORK

VERSION = "v1"
TARGET = "label"
N_NUMERIC = 18
TABLES = WORK / "tables"


def table_path(n_rows: int, fmt: str) -> Path:
    """Where the table of ``n_rows`` rows lives in format ``fmt`` ("csv" or "parquet")."""
    return TABLES / f"synthetic-{VERSION}-{n_rows}.{fmt}"


def make(n_rows: int, fmt: str) -> dict:
    """Child task: write the table unless it exists; returns its path and size."""
    path = table_path(n_rows, fmt)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = synthetic_frame(n_rows)
        partial = path.with_suffix(f".{os.getpid()}.part")
        if fmt == "csv":
            frame.to_csv(partial, index=False, float_format="%.4f")
        else:
            frame.to_parquet(partial, index=False)
        partial.replace(path)
    return {"path": str(path), "bytes": path.stat().st_size}


def synthetic_frame(n_rows: int, seed: int = 0):
    """The table itself (see the module docstring)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_NUMERIC)).astype(np.float32)
    weights = np.zeros(N_NUMERIC)
    weights[:8] = [1.2, -0.9, 0.7, 0.6, -0.5, 0.4, 0.3, -0.3]
    regions = np.array([f"region_{c}" for c in "ABCDEFGH"])
    plans = np.array(["basic", "plus", "pro", "team"])
    region = rng.integers(0, len(regions), n_rows)
    plan = rng.integers(0, len(plans), n_rows)
    logit = (X @ weights + 0.8 * X[:, 8] * X[:, 9] + np.sin(2 * X[:, 10])
             + np.linspace(-0.8, 0.8, len(regions))[region] + np.array([-0.5, 0.0, 0.3, 0.6])[plan])
    label = np.where(logit + rng.logistic(size=n_rows) > 0, "yes", "no")
    frame = pd.DataFrame(X, columns=[f"x{i:02d}" for i in range(N_NUMERIC)])
    for column in ("x12", "x13"):
        frame.loc[rng.random(n_rows) < 0.03, column] = np.nan
    frame["region"] = regions[region]
    frame["plan"] = plans[plan]
    frame[TARGET] = label
    return frame
