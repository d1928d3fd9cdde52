"""core.features, dates: parts, days since 1970 and the days between dates, for dense and tree models."""

import io

import joblib
import numpy as np
import pandas as pd

from core.features import DATE_PAIR_COLUMNS, DateParts, dense_preprocessor, encoded_width, tree_preprocessor
from core.types import ColumnInfo


def col(name, role, n_unique=3):
    return ColumnInfo(name=name, role=role, reason="", dtype="", n_unique=n_unique, n_missing=0)


ORDERS = pd.DataFrame({"ordered": ["2024-03-15", "1970-01-02", None, "2024-12-31T12:00"],
                       "shipped": ["2024-03-20", None, "2024-02-01", "2025-01-02"]})


def test_parts_elapsed_days_and_the_days_between_two_dates():
    parts = DateParts().fit(ORDERS)
    out = parts.transform(ORDERS)
    names = list(parts.get_feature_names_out())
    assert names == ["ordered_year", "ordered_month", "ordered_day", "ordered_day_of_week", "ordered_day_of_year",
                     "ordered_elapsed_days", "shipped_year", "shipped_month", "shipped_day", "shipped_day_of_week",
                     "shipped_day_of_year", "shipped_elapsed_days", "shipped_minus_ordered_days"]
    frame = pd.DataFrame(out, columns=names)
    assert frame["ordered_elapsed_days"].tolist()[:2] == [19797.0, 1.0]
    assert frame["ordered_elapsed_days"].iloc[3] == 20088.5  # noon: half a day
    assert frame["shipped_minus_ordered_days"].iloc[0] == 5.0
    assert frame["shipped_minus_ordered_days"].iloc[3] == 1.5
    # A missing date stays missing in everything made from it.
    assert frame.iloc[2, :6].isna().all() and frame.iloc[1, 6:].isna().all()
    assert frame["shipped_minus_ordered_days"].iloc[1:3].isna().all()


def test_every_pair_of_dates_among_the_first_ten():
    three = ORDERS.assign(paid=["2024-03-16", "1970-01-03", "2024-01-30", None])
    parts = DateParts().fit(three)
    names = list(parts.get_feature_names_out())
    assert names[-3:] == ["shipped_minus_ordered_days", "paid_minus_ordered_days", "paid_minus_shipped_days"]
    assert parts.transform(three)[2, -1] == -2.0  # paid two days before it shipped
    many = pd.DataFrame({f"d{i}": ["2024-01-01"] for i in range(DATE_PAIR_COLUMNS + 2)})
    n_pairs = DATE_PAIR_COLUMNS * (DATE_PAIR_COLUMNS - 1) // 2
    assert DateParts().fit(many).transform(many).shape[1] == (DATE_PAIR_COLUMNS + 2) * 6 + n_pairs


def test_time_zones_count_elapsed_days_in_utc():
    aware = pd.DataFrame({"d": pd.to_datetime(["1970-01-02T02:00+02:00"], utc=True).tz_convert("Europe/Oslo")})
    assert DateParts().fit(aware).transform(aware)[0, -1] == 1.0


def test_trees_keep_missing_dates_and_dense_models_fill_them():
    columns = (col("n", "numeric"), col("ordered", "datetime"), col("shipped", "datetime"))
    train = ORDERS.assign(n=[1.0, 2.0, 3.0, 4.0])
    tree, _ = tree_preprocessor(columns, "binary")
    out = tree.fit_transform(train, ["a", "b", "a", "b"])
    assert "datetime__shipped_minus_ordered_days" in out.columns
    assert out["datetime__shipped_minus_ordered_days"].isna().tolist() == [False, True, True, False]
    assert out["datetime__ordered_elapsed_days"].iloc[0] == 19797.0  # raw, not scaled
    dense = dense_preprocessor(columns).fit(train)
    matrix = dense.transform(train)
    assert np.isfinite(matrix).all()
    assert matrix.shape[1] == encoded_width(columns) - 1  # no number is missing here: no missing flag
    assert np.allclose(matrix[:, 1:].mean(axis=0), 0.0)  # scaled


def test_a_fitted_pipeline_predicts_new_rows_after_saving():
    columns = (col("ordered", "datetime"), col("shipped", "datetime"))
    tree, _ = tree_preprocessor(columns, "regression")
    tree.fit(ORDERS, [1.0, 2.0, 3.0, 4.0])
    buffer = io.BytesIO()
    joblib.dump(tree, buffer)
    new = pd.DataFrame({"ordered": ["2030-06-01"], "shipped": ["2030-06-11"], "ignored": [1]})
    out = joblib.load(io.BytesIO(buffer.getvalue())).transform(new)
    assert out["datetime__shipped_minus_ordered_days"].tolist() == [10.0]


def test_date_parts_fitted_before_elapsed_days_keep_their_width():
    # A pipeline saved before elapsed days existed has a model that expects five parts a date.
    old = DateParts().fit(ORDERS)
    del old.pairs_
    assert old.transform(ORDERS).shape == (4, 10) and len(old.get_feature_names_out()) == 10


def test_encoded_width_counts_elapsed_days_and_pairs():
    dates = [col(f"d{i}", "datetime") for i in range(3)]
    assert encoded_width(dates[:1]) == 6
    assert encoded_width(dates) == 3 * 6 + 3
