"""Write the bundled sample tables into ``sample_data/`` (deterministic: same bytes every run).

    python sample_data/make_samples.py

iris, wine, breast cancer and diabetes come from scikit-learn's bundled copies (no download);
churn is synthetic, made here with fixed seeds. See README.md for sources and licences.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

HERE = Path(__file__).resolve().parent
CHURN_ROWS = 5_000
CHURN_SEED = 20_240_101


def snake_case(name: str) -> str:
    """'mean radius' → 'mean_radius', 'od280/od315_of_diluted_wines' → 'od280_od315_of_diluted_wines'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def iris() -> pd.DataFrame:
    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.data.set_axis(["sepal_length", "sepal_width", "petal_length", "petal_width"], axis=1)
    return frame.assign(species=bunch.target_names[bunch.target])


def wine() -> pd.DataFrame:
    bunch = datasets.load_wine(as_frame=True)
    frame = bunch.data.rename(columns=snake_case)
    return whole_numbers_as_int(frame).assign(cultivar=bunch.target + 1)  # the cultivars are numbered 1-3 in the original data


def breast_cancer() -> pd.DataFrame:
    bunch = datasets.load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=snake_case)
    return frame.assign(diagnosis=bunch.target_names[bunch.target])


def diabetes() -> pd.DataFrame:
    bunch = datasets.load_diabetes(as_frame=True, scaled=False)
    frame = bunch.data.rename(columns={"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu"})
    return whole_numbers_as_int(frame.assign(progression=bunch.target))


def churn(n: int = CHURN_ROWS, seed: int = CHURN_SEED) -> pd.DataFrame:
    """A synthetic telecom customer table whose 'churned' column depends on the others, with noise."""
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D")
    tenure = ((pd.Timestamp("2024-01-01") - signup).days // 30).to_numpy()
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n, p=[0.55, 0.25, 0.20])
    internet = rng.choice(["fiber", "dsl", "none"], n, p=[0.45, 0.35, 0.20])
    payment = rng.choice(["electronic check", "mailed check", "bank transfer", "credit card"], n,
                         p=[0.35, 0.2, 0.225, 0.225])
    region = rng.choice(["north", "south", "east", "west"], n)
    base = np.select([internet == "fiber", internet == "dsl"], [75.0, 55.0], 25.0)
    monthly = (base + rng.normal(0, 12, n)).clip(18, 120).round(2)
    total = (monthly * tenure * rng.uniform(0.9, 1.05, n)).round(2)
    calls = rng.poisson(np.where(internet == "fiber", 2.0, 1.2))
    age = rng.integers(18, 80, n)

    logit = (-2.4
             + np.select([contract == "month-to-month", contract == "one-year"], [1.2, -0.9], -2.0)
             - 0.08 * tenure
             + 0.7 * calls
             + 0.025 * (monthly - 60)
             + np.where(payment == "electronic check", 0.5, 0.0)
             + np.where(internet == "fiber", 0.3, 0.0)
             + rng.normal(0, 0.5, n))
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")

    frame = pd.DataFrame({
        "customer_id": [f"C-{i:06d}" for i in rng.permutation(np.arange(1, n + 1))],
        "signup_date": signup.strftime("%Y-%m-%d"),
        "region": region,
        "age": age.astype(float),
        "contract": contract,
        "internet_service": internet,
        "payment_method": payment,
        "tenure_months": tenure.astype(float),
        "monthly_charges": monthly,
        "total_charges": total,
        "support_calls": calls.astype(float),
        "churned": churned,
    })
    missing = {"age": 0.06, "monthly_charges": 0.03, "total_charges": 0.05, "support_calls": 0.08,
               "payment_method": 0.04, "tenure_months": 0.03}
    for column, fraction in missing.items():
        frame.loc[rng.random(n) < fraction, column] = np.nan
    return whole_numbers_as_int(frame)


def whole_numbers_as_int(frame: pd.DataFrame) -> pd.DataFrame:
    """Write 34 rather than 34.0 for columns that only hold whole numbers (missing stays empty)."""
    out = frame.copy()
    for name, col in frame.items():
        if pd.api.types.is_float_dtype(col) and (col.dropna() % 1 == 0).all():
            out[name] = col.astype("Int64")
    return out


SAMPLES = {"iris": iris, "wine": wine, "breast_cancer": breast_cancer, "diabetes": diabetes, "churn": churn}


def main() -> None:
    for name, make in SAMPLES.items():
        path = HERE / f"{name}.csv"
        frame = make()
        frame.to_csv(path, index=False, lineterminator="\n")
        print(f"{path.name}: {len(frame):,} rows × {frame.shape[1]} columns, {path.stat().st_size / 1024:,.0f} KB")


if __name__ == "__main__":
    main()
