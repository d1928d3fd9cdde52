"""Generated and mutated table files through loading, preparing, checking and planning: each either
works or raises a ``core.errors`` error that names the problem — never another exception, never a
hang (``fuzz.time_bound``). The counts come from ``TRAINBOARD_FUZZ_CASES`` (``fuzz.CASES``)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from core.types import USER_ROLES
from tests.robustness.fuzz import CASES, fuzz_settings, through_pipeline

OUTCOMES: Counter[str] = Counter()

# --- delimited text ------------------------------------------------------------------------------

_ODD_TEXT = st.text(alphabet=st.sampled_from(list("ab Z,;|\t\"'\n\r\\=+-.0159é€ü中\ufeff\u2028")), max_size=12)
_DATES = st.sampled_from(["2021-03-04", "04/03/2021", "2021-03-04T10:00:00+01:00", "2021-03-04T10:00:00-05:00",
                          "2021-03-04 10:00:00Z", "2021-13-45", "1900-01-01", "9999-12-31T23:59:59+14:00",
                          "Mar 4, 2021", "0001-01-01", "2021-03-04T10:00:00+01:00 extra"])
_NUMBERS = st.one_of(st.integers(-10**20, 10**20).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr),
                     st.decimals(allow_nan=False, places=3, max_value=10**6, min_value=-10**6).map(str),
                     st.sampled_from(["1,5", "1.234,56", "1e309", "-0", "0x1F", "1_000", "  7 ", "NaN", "inf"]))
_MISSING = st.sampled_from(["", "NA", "null", "None", "N/A", "-", "?", " "])
_BOOLS = st.sampled_from(["yes", "no", "TRUE", "false", "1", "0", "Y", "n"])
_KINDS = {"number": _NUMBERS, "date": _DATES, "bool": _BOOLS, "category": st.sampled_from(["a", "b", "c", "ä"]),
          "text": _ODD_TEXT, "missing": _MISSING}


@st.composite
def cells(draw, kind: str, mixed: bool = True) -> str:
    """Mostly values of the column's kind, sometimes another kind's (mixed types), rarely a huge field."""
    roll = draw(st.integers(0, 99)) if mixed else 99
    if roll < 2:
        return draw(st.sampled_from(["x", "9", "\"", ","])) * draw(st.sampled_from([1000, 70_000]))
    if roll < 15:
        return draw(st.one_of(*_KINDS.values()))
    return draw(_KINDS[kind])


@st.composite
def grids(draw) -> list[list[str]]:
    """A header row and up to 60 rows of 1–6 columns, each column of one kind (names may be odd or
    repeat). Half the grids are tidy enough to learn from: enough rows, a clean yes/no or category
    target last, so that files also get through preparing and planning, not only to their refusal."""
    n_cols = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=n_cols, max_size=n_cols))
    header = draw(st.lists(st.one_of(st.sampled_from(["y", "id", "date", "x", "", "Unnamed: 0"]), _ODD_TEXT),
                           min_size=n_cols, max_size=n_cols))
    tidy = draw(st.booleans())
    if tidy:
        kinds[-1], header[-1] = draw(st.sampled_from(["bool", "category"])), "y"
    n_rows = draw(st.sampled_from([12, 25, 40, 60] if tidy else [0, 1, 3, 12, 25, 40, 60]))
    rows = [[draw(cells(kind, mixed=not (tidy and i == n_cols - 1))) for i, kind in enumerate(kinds)]
            for _ in range(n_rows)]
    return [header, *rows]


def render(grid: list[list[str]], delimiter: str, quoting: int | None, newline: str) -> str:
    """As the csv module writes it, or (``quoting=None``) joined raw: delimiters and quotes inside
    values are left bare, as hand-made files have them."""
    if quoting is None:
        return "".join(delimiter.join(row) + newline for row in grid)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=newline)
    for row in grid:
        writer.writerow(row)
    return out.getvalue()


#: Mostly UTF-8, as most files are; the others often enough to exercise sniffing and fallbacks.
_ENCODINGS = ("utf-8",) * 6 + ("utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-16-le", "shift_jis")


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """Zero to three byte-level mutations: NULs, cuts, ragged lines, stray quotes, invalid UTF-8, junk."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        if not data:
            break
        # A position as a share of the length: the draws stay the same when a file's size varies
        # (an .xlsx carries its creation time), which hypothesis requires.
        at = draw(st.integers(0, 1000)) * len(data) // 1000
        how = draw(st.sampled_from(["nul", "cut", "ragged", "quote", "bytes", "duplicate", "footer", "bom"]))
        if how == "nul":
            data = data[:at] + b"\x00" + data[at:]
        elif how == "cut":
            data = data[:at]
        elif how == "ragged":
            data = data[:at] + draw(st.sampled_from([b",", b";", b"\t", b"\n", b",,,,,,"])) + data[at:]
        elif how == "quote":
            data = data[:at] + b'"' + data[at:]
        elif how == "bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif how == "duplicate":
            data = data + data[at:]
        elif how == "footer":
            data = data + draw(st.sampled_from([b"\nTotal,,123\n", b"\n\xff\xfe junk", b"\n# end"]))
        else:
            data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + data
    return data


@st.composite
def delimited_files(draw) -> tuple[bytes, str]:
    text = render(draw(grids()), draw(st.sampled_from([",", ";", "\t", "|"])),
                  draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, None])),
                  draw(st.sampled_from(["\n", "\r\n", "\r"])))
    data = draw(mutated(encode(text, draw(st.sampled_from(_ENCODINGS)))))
    return data, draw(st.sampled_from(["t.csv", "t.tsv", "t.txt", "table", "t.dat", "t.CSV"]))


# --- Parquet and Excel with odd types ------------------------------------------------------------

_N = 30


def _odd_arrow_columns() -> list[pa.Array]:
    rows = range(_N)
    odd = [
        pa.array([i % 3 for i in rows], pa.int8()),
        pa.array([2**64 - 1 - i for i in rows], pa.uint64()),
        pa.array([None] * _N, pa.null()),
        pa.array([float("nan") if i % 4 else i / 3 for i in rows], pa.float32()),
        pa.array([decimal.Decimal(f"{i / 7:.6f}") for i in rows], pa.decimal128(20, 6)),
        pa.array([dt.date(2020, 1, 1 + i) for i in rows], pa.date32()),
        pa.array([dt.datetime(2020, 1, 1 + i, i % 24) for i in rows], pa.timestamp("ns", tz="Europe/Paris")),
        pa.array([dt.datetime(1, 1, 1) if i % 5 == 0 else dt.datetime(2020, 1, 1) for i in rows], pa.timestamp("us")),
        pa.array([dt.timedelta(seconds=i) for i in rows], pa.duration("s")),
        pa.array([bytes([i, 0, 255]) for i in rows], pa.binary()),
        pa.array([[i, i + 1] for i in rows], pa.list_(pa.int64())),
        pa.array([{"a": i, "b": str(i)} for i in rows], pa.struct([("a", pa.int64()), ("b", pa.string())])),
        pa.array(["x" if i % 2 else None for i in rows], pa.large_string()),
        pa.array([i % 2 == 0 if i % 3 else None for i in rows], pa.bool_()),
        pa.DictionaryArray.from_arrays(pa.array([i % 2 for i in rows], pa.int32()), pa.array(["lo", "hi"])),
        pa.array([dt.time(i % 24) for i in rows], pa.time64("us")),
        pa.array([f"2021-03-04T10:00:00{'+01:00' if i % 2 else '-05:00'}" for i in rows]),
        pa.array(["1,5" if i % 2 else "abc" for i in rows]),
        pa.array([i % 2 for i in rows], pa.int64()),
    ]
    return odd


_ARROW_COLUMNS = st.sampled_from(_odd_arrow_columns())


@st.composite
def parquet_files(draw) -> tuple[bytes, str]:
    columns = draw(st.lists(_ARROW_COLUMNS, min_size=2, max_size=5))
    names = draw(st.lists(st.sampled_from(["y", "x", "", "date", "y ", "é", "id", "z"]), min_size=len(columns),
                          max_size=len(columns), unique=draw(st.integers(0, 4)) > 0))
    rows = draw(st.sampled_from([0, 1, 9, _N, _N, _N]))
    table = pa.Table.from_arrays([c.slice(0, rows) for c in columns], names=names)
    out = io.BytesIO()
    pq.write_table(table, out)
    return draw(mutated(out.getvalue())) if draw(st.integers(0, 4)) == 0 else out.getvalue(), "t.parquet"


_EXCEL_VALUES = st.one_of(st.integers(-10**15, 10**15), st.floats(allow_nan=False, allow_infinity=False),
                          st.booleans(), st.none(), st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=8),
                          st.sampled_from(["=1/0", "=A1", "#N/A", "2021-03-04T10:00:00+01:00", "1,5"]),
                          st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(2100, 1, 1)),
                          st.dates(min_value=dt.date(1900, 3, 1)), st.times())


@st.composite
def excel_files(draw) -> tuple[bytes, str]:
    n_cols = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(_EXCEL_VALUES, min_size=n_cols, max_size=n_cols), max_size=10))
    header = draw(st.lists(st.sampled_from(["y", "x", "", "d", "x"]), min_size=n_cols, max_size=n_cols))
    frame = pd.DataFrame(rows, columns=pd.Index(header, dtype=object)) if rows else pd.DataFrame(columns=header)
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False)
        if draw(st.booleans()):
            pd.DataFrame({"other": [1]}).to_excel(writer, sheet_name="second", index=False)
    data = out.getvalue()
    return (draw(mutated(data)) if draw(st.integers(0, 4)) == 0 else data), draw(st.sampled_from(["t.xlsx", "t.xlsm"]))


# --- the tests -----------------------------------------------------------------------------------

SHARES = {"delimited": 0.75, "parquet": 0.15, "excel": 0.10}
_ROLES = st.one_of(st.none(), st.sampled_from(USER_ROLES))


def _run(strategy, share: float, kind: str) -> None:
    before = sum(OUTCOMES.values())

    @fuzz_settings(share)
    @given(strategy, st.integers(0, 10), _ROLES)
    def case(file: tuple[bytes, str], target_pick: int, role: str | None) -> None:
        OUTCOMES[(kind, through_pipeline(*file, target_pick=target_pick, role=role))] += 1

    case()
    ran = sum(OUTCOMES.values()) - before
    assert ran >= max(1, round(CASES * share)), f"only {ran} {kind} cases ran"
    print(f"\n{kind}: {ran} cases, " + ", ".join(f"{o}: {n}" for (k, o), n in sorted(OUTCOMES.items()) if k == kind))


def test_delimited_text_files_work_or_name_their_problem():
    _run(delimited_files(), SHARES["delimited"], "delimited")


def test_parquet_files_with_odd_types_work_or_name_their_problem():
    _run(parquet_files(), SHARES["parquet"], "parquet")


def test_excel_files_with_odd_types_work_or_name_their_problem():
    _run(excel_files(), SHARES["excel"], "excel")


def test_the_fuzzed_cases_reach_every_stage():
    """The generator is not degenerate: over a run, files are refused at loading, at preparing, and planned."""
    stages = {outcome for (_, outcome) in OUTCOMES}
    if not OUTCOMES:  # run on its own: nothing generated yet
        test_delimited_text_files_work_or_name_their_problem()
        stages = {outcome for (_, outcome) in OUTCOMES}
    assert {"load", "prepare", "planned"} <= stages, OUTCOMES
    assert np.isfinite(sum(OUTCOMES.values()))
