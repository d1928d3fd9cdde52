"""Tables past the row limit train on a stratified sample, and the Data page's notice says so."""

import numpy as np
import pandas as pd
import pytest

from core.pipeline import make_plan
from core.planner import Overrides
from core.sample_limit import DEFAULT_ROWS, MEMORY_ENV, ROWS_ENV, row_limit
from core.schema import prepare
from core.splits import sample_rows
from tests.core.helpers import churn_like, regression_table, table


@pytest.fixture(autouse=True)
def no_limits_from_outside(monkeypatch):
    monkeypatch.delenv(ROWS_ENV, raising=False)
    monkeypatch.setenv(MEMORY_ENV, "100000")  # this machine's memory never decides in these tests


def test_the_row_limit_comes_from_its_setting_or_the_default():
    assert row_limit(10**6, 10**4, {ROWS_ENV: "5000", MEMORY_ENV: "100000"}).rows == 5000
    assert row_limit(10**6, 10**4, {ROWS_ENV: "5_000", MEMORY_ENV: "100000"}).rows == 5000
    for junk in ("", "lots", "-3", "0"):
        limit = row_limit(10**6, 10**4, {ROWS_ENV: junk, MEMORY_ENV: "100000"})
        assert (limit.rows, limit.setting) == (DEFAULT_ROWS, ROWS_ENV)


def test_the_memory_limit_wins_when_it_allows_fewer_rows():
    # 1,000 bytes a row, ×5 at the peak: 10 MB allows 2,097 rows.
    limit = row_limit(10**6, 1000, {ROWS_ENV: "5000", MEMORY_ENV: "10"})
    assert (limit.rows, limit.setting, limit.why) == (2097, MEMORY_ENV, "memory")


def test_a_table_past_the_limit_becomes_a_stratified_sample_with_a_notice(monkeypatch):
    frame = churn_like(2000, positive_share=0.2)
    share = (frame["churned"] == "yes").mean()
    monkeypatch.setenv(ROWS_ENV, "500")
    prepared = prepare(table(frame), target="churned")
    assert len(prepared.X) == len(prepared.y) == 500
    assert abs((prepared.y == "yes").mean() - share) < 0.005
    notice = next(m for m in prepared.messages if "sample" in m)
    for words in ("2,000 rows", "500 rows", ROWS_ENV, "stratified by 'churned'"):
        assert words in notice
    # The rows kept are the file's own rows, each with its own target.
    kept = frame.iloc[sample_rows(frame["churned"], "binary", 500)]
    assert np.allclose(prepared.X["tenure"], kept["tenure"]) and list(prepared.y) == list(kept["churned"])
    # The plan the Train page shows is made on the same sample the job will read.
    assert make_plan(prepared, Overrides(model="linear")).n_rows == 500


def test_a_table_within_the_limit_is_left_alone(monkeypatch):
    monkeypatch.setenv(ROWS_ENV, "2000")
    prepared = prepare(table(churn_like(2000)), target="churned")
    assert len(prepared.X) == 2000
    assert not any("sample" in m for m in prepared.messages)


def test_a_regression_table_is_sampled_at_random(monkeypatch):
    monkeypatch.setenv(ROWS_ENV, "100")
    prepared = prepare(table(regression_table(300)))
    assert len(prepared.y) == 100
    assert any("drawn at random" in m and ROWS_ENV in m for m in prepared.messages)


def test_a_sample_keeps_every_class_even_a_rare_one():
    y = pd.Series(np.r_[np.repeat("common", 990), np.repeat("rare", 10)])
    keep = sample_rows(y, "binary", 50, seed=0)
    assert len(keep) == 50 and set(y.iloc[keep]) == {"common", "rare"}
    assert np.all(np.diff(keep) > 0)
