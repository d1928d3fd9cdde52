"""Small in-memory tables for core tests (built once per test session where it matters)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.types import LoadReport, TableData


def table(frame: pd.DataFrame, name: str = "test.csv") -> TableData:
    return TableData(frame=frame, load=LoadReport(source=name, format="csv", n_rows=len(frame),
                                                  n_columns=frame.shape[1]))


def churn_like(n: int = 400, seed: int = 0, positive_share: float = 0.3) -> pd.DataFrame:
    """Numeric, categorical (with missing values), a date and an ID; a binary target with signal."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n).astype(float)
    charges = rng.normal(70, 20, n)
    contract = rng.choice(["monthly", "yearly", "two-year"], n)
    logit = -0.05 * tenure + 0.03 * (charges - 70) + np.where(contract == "monthly", 1.5, -1.0)
    logit += np.quantile(logit, 1 - positive_share) * -1
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-3 * logit)), "yes", "no")
    frame = pd.DataFrame({
        "customer_id": [f"C-{i:05d}" for i in range(n)],
        "tenure": tenure,
        "charges": charges,
        "contract": contract,
        "region": rng.choice(["north", "south", None], n),
        "signup": pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "churned": churn,
    })
    frame.loc[rng.random(n) < 0.05, "charges"] = np.nan
    return frame


def regression_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    group = rng.choice(["a", "b"], n)
    y = 3 * x1 - 2 * x2 + np.where(group == "a", 1.0, -1.0) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "y": y})


def with_free_text(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``frame`` with a ``note`` column long, varied and spaced enough for the schema to read as free text."""
    rng = np.random.default_rng(seed)
    words = np.array(["great service", "slow support", "too expensive", "happy with it", "cancel soon"])
    return frame.assign(note=[" and ".join(rng.choice(words, 3)) + f", ticket {rng.integers(10_000)}"
                              for _ in range(len(frame))])
