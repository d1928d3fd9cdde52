"""Column roles, target guess, task detection, labels and prepare()'s checks."""

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from core.schema import detect_task, guess_target, infer_columns, label_series, natural_classes, prepare
from core.types import LoadReport, TableData

N = 60


def table(frame: pd.DataFrame) -> TableData:
    return TableData(frame=frame, load=LoadReport("t.csv", "csv", len(frame), frame.shape[1]))


def roles(frame: pd.DataFrame, target: str | None = None) -> dict[str, str]:
    return {c.name: c.role for c in infer_columns(frame, target)}


def role_of(values, name: str = "col") -> str:
    return roles(pd.DataFrame({name: values}))[name]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- roles ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, values", [
    ("Unnamed: 0", list(range(N))),
    ("column_1", list(range(N))),
    ("row", list(range(1, N + 1))),
    ("counter", list(range(100, 100 + 3 * N, 3))),  # counting up in even steps
    ("kept_rows", [i for i in range(1, N + 20) if i % 4]),  # a row number after some rows were deleted
    ("shuffled", list(np.random.default_rng(1).permutation(N))),  # a shuffled 0..n-1 is still an index
    ("customerID", list(np.random.default_rng(2).permutation(np.arange(5000, 5000 + 97 * N, 97)))),
    ("customer", [f"C-{i:05d}" for i in range(N)]),
    ("token", [f"{i:08x}-1a2b-4c3d-8e9f-{i * 7919:012x}" for i in range(N)]),
])
def test_id_like_columns(name, values):
    info = infer_columns(pd.DataFrame({name: values}))[0]
    assert info.role == "id" and not info.used
    assert "every row" in info.reason


def test_small_table_codes_are_ids_but_small_unique_words_are_categories():
    assert role_of(["A-1", "A-2", "B-7", "C-9"]) == "id"
    assert role_of(["red", "green", "blue", "black"]) == "categorical"


def test_unique_float_measurement_is_numeric(rng):
    assert role_of(rng.normal(5, 2, N).round(3), "height") == "numeric"
    assert role_of(np.sort(rng.normal(5, 2, N)), "sorted_height") == "numeric"


def test_unique_integer_measurement_is_numeric(rng):
    income = rng.choice(np.arange(20_000, 200_000), N, replace=False)
    assert role_of(income, "income") == "numeric"
    assert role_of(np.sort(income), "income") == "numeric"  # a file sorted by income
    assert role_of(income, "number_of_rooms") == "numeric"  # "number" first is not an ID name


def test_integer_column_with_repeats_or_gaps_is_numeric():
    assert role_of([1, 2, 2, 3] * 15, "id") == "numeric"
    assert role_of([1.0, 2.0, np.nan] + list(range(3, N)), "index") == "numeric"


def test_constant_and_empty():
    info = {c.name: c for c in infer_columns(pd.DataFrame({
        "same": ["x"] * 5, "same_gaps": [1, None, 1, 1, None], "nothing": [None] * 5, "blank": [" "] * 5,
    }))}
    assert info["same"].role == "constant" and "same value ('x') in every row" in info["same"].reason
    assert info["same_gaps"].role == "constant"
    assert info["nothing"].role == "empty" and info["nothing"].reason == "every value is empty"
    assert info["nothing"].n_missing == 5 and info["nothing"].n_unique == 0
    assert not info["blank"].used


def test_dates():
    days = pd.date_range("2020-01-01", periods=N, freq="5D")
    frame = pd.DataFrame({"iso": days.strftime("%Y-%m-%d"), "eu": days.strftime("%d/%m/%Y"),
                          "stamp": days.strftime("%Y-%m-%d %H:%M:%S"), "real": days,
                          "words": days.strftime("%d %B %Y")})
    info = {c.name: c for c in infer_columns(frame)}
    assert all(c.role == "datetime" for c in info.values())
    assert info["real"].dtype == "date" and info["iso"].dtype == "text"


def test_numbers_and_codes_are_not_dates():
    assert role_of([20210101 + i for i in range(N)], "day_number") != "datetime"
    assert role_of(["A-1", "B-2", "C-3"] * 20) == "categorical"
    assert role_of(["1.5", "2.5", "3.5"] * 20) == "numeric"


def test_long_free_text_vs_long_category_labels():
    reviews = [f"the delivery took {i} days and the box was {'fine' if i % 2 else 'damaged'} on arrival"
               for i in range(N)]
    labels = ["bachelor's degree in science and engineering", "master's degree in arts and humanities"] * (N // 2)
    assert role_of(reviews) == "text"
    assert role_of(labels) == "categorical"


def test_numbers_stored_as_text():
    values = [str(v) for v in np.round(np.random.default_rng(3).normal(size=N - 1), 2)] + ["n/a?"]
    info = infer_columns(pd.DataFrame({"amount": values}))[0]
    assert info.role == "numeric" and "stored as text" in info.reason and info.dtype == "text"
    half = ["1", "2", "x", "y"] * 15
    assert role_of(half) == "categorical"


def test_booleans_and_dtype_labels():
    frame = pd.DataFrame({"flag": [True, False] * 5, "n": [1.5] * 9 + [2.0], "s": list("abcdeabcde"),
                          "mixed": [1, "a"] * 5})
    info = {c.name: c for c in infer_columns(frame)}
    assert info["flag"].role == "categorical" and info["flag"].dtype == "yes/no"
    assert info["n"].dtype == "number" and info["s"].dtype == "text" and info["mixed"].dtype == "mixed"


def test_counts_and_order_exclude_the_target():
    frame = pd.DataFrame({"b": [1.0, np.nan, 2.0, 2.0], "y": [0, 1, 0, 1], "a": ["u", "v", None, "u"]})
    info = infer_columns(frame, target="y")
    assert [c.name for c in info] == ["b", "a"]
    assert (info[0].n_unique, info[0].n_missing) == (2, 1)
    assert (info[1].n_unique, info[1].n_missing) == (2, 1)


# --- target and task ---------------------------------------------------------------------------

def test_guess_target_by_name_then_last_column():
    assert guess_target(pd.DataFrame(columns=["a", " Label ", "b"])) == " Label "
    assert guess_target(pd.DataFrame(columns=["class", "x", "TARGET"])) == "TARGET"  # target outranks class
    assert guess_target(pd.DataFrame(columns=["a", "b", "price"])) == "price"
    assert guess_target(pd.DataFrame(columns=["ylabel", "why", "z"])) == "z"


def test_detect_task():
    assert detect_task(pd.Series(["1", 1, 1.0, "2", 2] * 4)) == "binary"  # "1"/1/1.0 are one class
    assert detect_task(pd.Series(["yes", "no", None] * 5)) == "binary"
    assert detect_task(pd.Series([True, False] * 5)) == "binary"
    assert detect_task(pd.Series(["a", "b", "c"] * 5)) == "multiclass"
    assert detect_task(pd.Series([1, 2, 3] * 20)) == "multiclass"  # numbers as classes
    assert detect_task(pd.Series(["3", "5", "7"] * 20)) == "multiclass"
    assert detect_task(pd.Series(np.random.default_rng(0).normal(size=100))) == "regression"
    assert detect_task(pd.Series(range(100))) == "regression"  # many distinct whole numbers
    assert detect_task(pd.Series([1, 2, 3, 4, 5, 6, 7, 8])) == "regression"  # few rows per value
    assert detect_task(pd.Series([0.0, 1.0, np.nan] * 10)) == "binary"


def test_labels_and_natural_order():
    labels = label_series(pd.Series(["1", 1, 1.0, 10, "2", None]))
    assert labels.tolist()[:5] == ["1", "1", "1", "10", "2"] and pd.isna(labels.iloc[5])
    assert natural_classes(labels) == ("1", "2", "10")
    assert natural_classes(pd.Series(["b", "A", "c", "b"])) == ("A", "b", "c")


# --- prepare -----------------------------------------------------------------------------------

def churn_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": range(n),
        "amount": [str(v) for v in rng.normal(size=n).round(2)],
        "plan": rng.choice(["a", "b"], n),
        "note": ["same"] * n,
        "churn": rng.choice(["yes", "no"], n),
    })


def test_prepare_classification_defaults_to_last_column_and_drops_missing_target_rows():
    frame = churn_frame()
    frame.loc[[3, 7, 11], "churn"] = None
    frame.loc[5, "churn"] = "   "
    prepared = prepare(table(frame))
    assert prepared.target == "churn" and prepared.task == "binary"
    assert prepared.classes == ("no", "yes")
    assert prepared.n_rows_dropped == 4 and len(prepared.y) == len(prepared.X) == 36
    assert any("4 of 40 rows" in m and "'churn'" in m for m in prepared.messages)
    assert list(prepared.X.columns) == ["amount", "plan"]
    assert prepared.X["amount"].dtype != np.float64  # raw, not cast: the pipeline casts
    assert prepared.column("id").role == "id" and prepared.column("note").role == "constant"
    assert any("'id'" in m for m in prepared.messages) and any("'note'" in m for m in prepared.messages)
    assert [c.name for c in prepared.columns] == ["id", "amount", "plan", "note"]


def test_prepare_regression_has_float_target():
    frame = churn_frame().assign(spend=np.random.default_rng(1).normal(100, 10, 40)).drop(columns="churn")
    prepared = prepare(table(frame), target="spend")
    assert prepared.task == "regression" and prepared.classes == ()
    assert prepared.y.dtype == np.float64 and prepared.y.name == "spend"


def test_prepare_numbers_as_classes():
    frame = churn_frame().assign(grade=[1, 2, "3", 1.0] * 10)
    prepared = prepare(table(frame), target="grade")
    assert prepared.task == "multiclass" and prepared.classes == ("1", "2", "3")
    assert "churn" in prepared.X.columns


def test_prepare_role_overrides_including_ignore():
    prepared = prepare(table(churn_frame()), roles={"plan": "ignore", "id": "numeric", "amount": "categorical"})
    assert prepared.column("plan").role == "ignore" and prepared.column("plan").reason == "ignored by you"
    assert prepared.column("id").role == "numeric" and "by you" in prepared.column("id").reason
    assert list(prepared.X.columns) == ["id", "amount"]
    assert any("'plan' (ignored by you)" in m for m in prepared.messages)


def test_prepare_override_errors():
    with pytest.raises(DataError, match="'ghost'"):
        prepare(table(churn_frame()), roles={"ghost": "numeric"})
    with pytest.raises(ValueError):
        prepare(table(churn_frame()), roles={"plan": "banana"})


def test_unknown_target_lists_columns():
    with pytest.raises(DataError, match="no column named 'churned'") as err:
        prepare(table(churn_frame()), target="churned")
    assert "'churn'" in str(err.value) and "'plan'" in str(err.value)


def test_target_with_one_class_quotes_it():
    with pytest.raises(DataError, match=r"only one value \('no'\)"):
        prepare(table(churn_frame().assign(churn="no")))


def test_rare_class_is_named_with_its_count():
    frame = churn_frame()
    frame.loc[0, "churn"] = "maybe"
    with pytest.raises(DataError, match="'maybe'") as err:
        prepare(table(frame))
    assert "only 1 row" in str(err.value) and "pick another target" in str(err.value)


def test_no_usable_feature_left():
    frame = churn_frame()[["id", "note", "churn"]]
    with pytest.raises(DataError, match="No column is left") as err:
        prepare(table(frame))
    assert "'id'" in str(err.value)
    with pytest.raises(DataError, match="No column is left"):
        prepare(table(churn_frame()), roles={"amount": "ignore", "plan": "ignore"})


def test_too_many_columns_after_encoding():
    frame = churn_frame()
    wide = frame.assign(**{f"words_{i}": "some words" for i in range(21)})
    with pytest.raises(DataError, match="model inputs") as err:
        prepare(table(wide), target="churn", roles={f"words_{i}": "text" for i in range(21)})
    assert "ignore" in str(err.value)


def test_target_all_empty():
    with pytest.raises(DataError, match="empty in every row"):
        prepare(table(churn_frame().assign(churn=None)))


def test_too_few_rows_with_a_target():
    frame = churn_frame(12)
    frame.loc[:4, "churn"] = None
    with pytest.raises(DataError, match="Only 7 rows have a value in 'churn'"):
        prepare(table(frame))


def test_prepare_on_bundled_samples():
    from core.datasets import SAMPLE_DIR, load_table

    churn = prepare(load_table(SAMPLE_DIR / "churn.csv"))
    assert churn.target == "churned" and churn.task == "binary" and churn.classes == ("no", "yes")
    assert churn.column("customer_id").role == "id"
    assert churn.column("signup_date").role == "datetime"
    assert churn.column("contract").role == "categorical"
    assert churn.column("tenure_months").role == "numeric"
    assert prepare(load_table(SAMPLE_DIR / "diabetes.csv")).task == "regression"
    assert prepare(load_table(SAMPLE_DIR / "wine.csv")).classes == ("1", "2", "3")
