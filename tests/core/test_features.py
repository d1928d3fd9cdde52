"""core.features: casting and encoding inside the pipeline, the same at fit and predict time."""

import numpy as np
import pandas as pd

from core.features import ColumnCaster, DateParts, category_label, dense_preprocessor, tree_preprocessor
from core.types import ColumnInfo


def col(name, role, n_unique=3):
    return ColumnInfo(name=name, role=role, reason="", dtype="", n_unique=n_unique, n_missing=0)


def test_category_labels_are_canonical():
    assert {category_label(v) for v in (1, 1.0, "1", " 1", np.int64(1))} == {"1"}
    assert category_label(2.5) == "2.5" and category_label("abc") == "abc" and category_label(True) == "True"
    assert category_label("007") == "007"  # codes with leading zeros are not numbers


def test_caster_turns_messy_columns_into_model_types():
    frame = pd.DataFrame({"n": ["1", "x", "3.5"], "c": [1, "1", None], "d": ["2024-01-05", "bad", None]})
    out = ColumnCaster({"n": "numeric", "c": "categorical", "d": "datetime"}).fit(frame).transform(frame)
    assert out["n"].tolist()[0] == 1.0 and np.isnan(out["n"].tolist()[1])
    assert out["c"].tolist()[:2] == ["1", "1"] and pd.isna(out["c"].tolist()[2])
    assert out["d"].iloc[0] == pd.Timestamp("2024-01-05") and pd.isna(out["d"].iloc[1])


def test_unseen_and_missing_values_at_predict_time():
    columns = (col("n", "numeric"), col("c", "categorical"), col("d", "datetime"), col("t", "text"))
    train = pd.DataFrame({"n": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None],
                          "d": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"],
                          "t": ["good fast service", "bad slow service", "good food", "slow food"]})
    new = pd.DataFrame({"n": [None], "c": ["never seen"], "d": [None], "t": [None]})
    dense = dense_preprocessor(columns).fit(train)
    assert np.isfinite(dense.transform(new)).all()
    tree, categorical = tree_preprocessor(columns, "binary")
    tree.fit(train, ["x", "y", "x", "y"])
    assert tree.transform(new).shape[0] == 1 and categorical == [1]


def test_date_parts():
    parts = DateParts().fit(pd.DataFrame({"d": ["2024-03-15"]})).transform(pd.DataFrame({"d": ["2024-03-15"]}))
    assert parts.tolist() == [[2024, 3, 15, 4, 75, 19797]]  # Friday, day 75 of a leap year, 19,797 days after 1970


def test_tree_encoding_passes_numbers_through_without_copying():
    # A million-row table's numbers are most of its memory: the tree pipeline hands the booster the
    # input's own float columns (it makes its one float matrix itself).
    columns = (col("a", "numeric"), col("b", "numeric"), col("c", "categorical"))
    train = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [0.5, 0.1, 0.2, 0.3], "c": ["x", "y", "x", None]})
    tree, categorical = tree_preprocessor(columns, "binary")
    out = tree.fit_transform(train, ["p", "q", "p", "q"])
    assert isinstance(out, pd.DataFrame) and out.shape == (4, 3) and categorical == [2]
    assert np.shares_memory(out.iloc[:, 0].to_numpy(), train["a"].to_numpy())
    assert out.iloc[:, 2].tolist()[:3] == [0.0, 1.0, 0.0] and np.isnan(out.iloc[3, 2])
    train.loc[0, "a"] = 99.0  # copy-on-write: the caller's later edits never reach the encoded frame
    assert out.iloc[0, 0] == 1.0


def test_text_stack_names_its_outputs():
    columns = (col("n", "numeric"), col("t", "text"))
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "t": ["good fast", "bad slow", "good food", "slow food"]})
    tree, _ = tree_preprocessor(columns, "binary")
    out = tree.fit_transform(train, ["x", "y", "x", "y"])
    # The number and the stacked text score; too few rows for the text's components.
    assert list(out.columns) == ["numeric__n", "text_t__t_text_score"]
    train = pd.concat([train] * 5, ignore_index=True)
    out = tree.fit_transform(train, ["x", "y", "x", "y"] * 5)
    assert list(out.columns[:3]) == ["numeric__n", "text_t__t_text_score", "text_t__t_text_0"]
    assert out.columns[-1] == "text_t__t_text_7"


def test_target_encoding_is_seeded():
    # Its cross-fitting shuffles the rows: the plan's seed must fix how, or a rerun differs.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"city": [f"c{i}" for i in rng.integers(0, 600, 2000)]})
    y = rng.choice(["a", "b"], 2000)
    columns = (col("city", "categorical", n_unique=600),)
    runs = [tree_preprocessor(columns, "binary", seed)[0].fit_transform(frame, y).to_numpy() for seed in (1, 1, 2)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
