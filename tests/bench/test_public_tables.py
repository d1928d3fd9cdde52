"""The public benchmark tables (bench/data/) load through Trainboard's own loader and schema with
the targets and properties bench/data/README.md promises: each is the kind of table it is there for."""

import numpy as np
import pandas as pd
import pytest

from bench.peer import PUBLIC_TABLES, SAMPLE_TABLES, outer_folds, table_path
from core.datasets import load_table
from core.schema import prepare

MB = 2**20
TASKS = {"food_reviews.csv": "binary", "chicago_ridership.csv": "regression", "lending_club.csv": "binary",
         "ames_housing.csv": "regression"}


@pytest.fixture(scope="module")
def prepared():
    return {name: prepare(load_table(table_path(name)), target=target) for name, target in PUBLIC_TABLES.items()}


def roles(p) -> dict[str, str]:
    return {c.name: c.role for c in p.columns}


def test_every_table_is_a_small_csv_with_its_documented_task(prepared):
    assert set(PUBLIC_TABLES) == set(TASKS)
    sizes = {name: table_path(name).stat().st_size for name in PUBLIC_TABLES}
    assert all(size < 2 * MB for size in sizes.values()), sizes
    assert sum(sizes.values()) < 5 * MB
    for name, p in prepared.items():
        assert p.task == TASKS[name], name
        assert p.n_rows_dropped == 0, name
        assert len(p.X) >= 1_000, name


def test_the_target_is_the_last_column_so_the_guess_finds_it():
    for name, target in PUBLIC_TABLES.items():
        table = load_table(table_path(name))
        assert table.frame.columns[-1] == target, name
        assert prepare(table).target == target, name


def test_food_reviews_has_a_free_text_column_and_an_id(prepared):
    p = prepared["food_reviews.csv"]
    assert roles(p) == {"product": "id", "review": "text"}
    assert [c.name for c in p.used_columns] == ["review"]  # the text is all a model has to go on
    assert p.classes == ("great", "other")
    assert p.X["review"].is_unique  # duplicates would sit on both sides of a fold


def test_chicago_ridership_is_driven_by_a_date(prepared):
    p = prepared["chicago_ridership.csv"]
    assert roles(p)["date"] == "datetime"
    dates = load_table(table_path("chicago_ridership.csv")).frame["date"]
    weekday = pd.to_datetime(dates).dt.day_of_week.to_numpy()
    y = np.asarray(p.y)
    # Weekends carry well under half the weekday ridership: the date matters for the target.
    assert y[weekday >= 5].mean() < 0.5 * y[weekday < 5].mean()


def test_lending_club_has_under_ten_percent_positives(prepared):
    p = prepared["lending_club.csv"]
    assert p.classes == ("no", "yes")  # the positive (last) class is the rare one
    share = float(np.mean(np.asarray(p.y) == p.classes[-1]))
    assert 0.01 < share < 0.10
    used = {c.role for c in p.used_columns}
    assert {"numeric", "categorical"} <= used


def test_ames_housing_has_fifty_plus_mixed_columns(prepared):
    p = prepared["ames_housing.csv"]
    used = [c.role for c in p.used_columns]
    assert len(used) >= 50
    assert used.count("numeric") >= 10 and used.count("categorical") >= 10


def test_outer_folds_are_seeded_and_stratified():
    y = np.array(["a"] * 90 + ["b"] * 10)
    folds = outer_folds(y, "binary", 3, seed=0)
    assert len(folds) == 3
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(100))
    assert all(np.sum(y[test] == "b") in (3, 4) for _, test in folds)
    again = outer_folds(y, "binary", 3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_the_sample_tables_named_by_the_bench_exist_with_their_targets():
    for name, target in SAMPLE_TABLES.items():
        assert prepare(load_table(table_path(name)), target=target).target == target
