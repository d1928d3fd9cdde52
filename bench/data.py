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


#: The wide table of the evaluation-cost case: 10,000 rows × 47 feature columns.
WIDE_NUMERIC = 43
WIDE_CATEGORICAL = 4


def wide_path(n_rows: int) -> Path:
    return TABLES / f"wide-{VERSION}-{n_rows}.csv"


def make_wide(n_rows: int = 10_000) -> dict:
    """Child task: write the wide table (43 numbers + 4 categories + ``label``) unless it exists."""
    path = wide_path(n_rows)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        wide_frame(n_rows).to_csv(partial, index=False, float_format="%.4f")
        partial.replace(path)
    return {"path": str(path), "bytes": path.stat().st_size}


def wide_frame(n_rows: int, seed: int = 0):
    """43 numeric columns (a dozen informative, one interaction, the rest noise, a few with missing
    values) and 4 categorical ones (3 to 12 levels, two informative), with a yes/no ``label``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, WIDE_NUMERIC))
    weights = np.zeros(WIDE_NUMERIC)
    weights[:12] = np.linspace(1.0, 0.1, 12) * np.where(np.arange(12) % 2, -1, 1)
    logit = X @ weights + 0.6 * X[:, 12] * X[:, 13]
    frame = pd.DataFrame(X, columns=[f"n{i:02d}" for i in range(WIDE_NUMERIC)])
    for column in ("n20", "n21", "n22"):
        frame.loc[rng.random(n_rows) < 0.05, column] = np.nan
    for i, levels in enumerate((3, 5, 8, 12)):
        codes = rng.integers(0, levels, n_rows)
        frame[f"c{i}"] = np.array([f"level_{k}" for k in range(levels)])[codes]
        if i < 2:
            logit = logit + np.linspace(-0.7, 0.7, levels)[codes]
    frame[TARGET] = np.where(logit + rng.logistic(size=n_rows) > 0, "yes", "no")
    return frame
