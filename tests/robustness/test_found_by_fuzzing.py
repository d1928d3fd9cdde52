"""The failures the fuzzing found, pinned as plain examples (each crashed or hung before its fix)."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.checks import apply_checks
from core.datasets import load_table
from core.errors import DataError
from core.features import parse_dates
from core.pipeline import make_plan, prepare_data
from tests.robustness.fuzz import time_bound


def parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_a_first_row_much_wider_than_the_header_is_refused_at_once():
    with time_bound(10):  # pandas took minutes building a 70,000-level index
        with pytest.raises(DataError, match="more values than its header row has names"):
            load_table(b"-\n" + b"," * 70_000 + b"\n1\n", "wide.csv")


def test_an_unnamed_first_column_beside_a_blank_header_name_is_kept():
    data = load_table(b" ,b\n1,2,3\n4,5,6\n", "t.csv")  # the row has one value more than the header
    assert data.frame.shape == (2, 3)
    assert len(set(data.frame.columns)) == 3


def test_dates_with_mixed_utc_offsets_parse_on_utc():
    parsed = parse_dates(pd.Series(["2021-03-04T10:00:00+01:00", "2021-03-04T10:00:00-05:00", "2021-03-04", "x"]))
    assert str(parsed.dt.tz) == "UTC"
    assert parsed.notna().tolist() == [True, True, True, False]


def test_a_table_with_mixed_offset_dates_and_text_forced_numeric_is_planned():
    rows = [f"2021-03-{d:02d}T10:00:00{'+01:00' if d % 2 else '-05:00'},word{d % 3},{d % 2}" for d in range(1, 29)]
    table = load_table(("when,label,y\n" + "\n".join(rows) + "\n").encode(), "t.csv")
    roles = {"label": "numeric", "when": "datetime"}
    prepared = apply_checks(prepare_data(table, "y", roles), roles, ())
    assert make_plan(prepared).model == "auto"


def test_parquet_with_repeated_names_durations_and_lists_loads_as_plain_columns():
    n = 12
    table = pa.Table.from_arrays(
        [pa.array(range(n)), pa.array([i % 2 for i in range(n)]),
         pa.array([pd.Timedelta(seconds=i) for i in range(n)], pa.duration("ms")),
         pa.array([[i] for i in range(n)])], names=["y", "y", "wait", "items"])
    frame = load_table(parquet(table), "t.parquet").frame
    assert list(frame.columns) == ["y", "y.1", "wait", "items"]
    assert frame["wait"].tolist() == [float(i) for i in range(n)]
    assert frame["items"].iloc[3] == "[3]"


def test_an_xlsx_that_unpacks_to_far_more_than_the_limit_is_refused_unread():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("xl/workbook.xml", "<workbook/>")
        book.writestr("xl/worksheets/sheet1.xml", b" " * (60 * 2**20))
    with time_bound(30):
        with pytest.raises(DataError, match="unpacks to 60 MB, too large"):
            load_table(out.getvalue(), "bomb.xlsx", max_bytes=2**20)
