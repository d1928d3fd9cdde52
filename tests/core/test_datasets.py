"""load_table: every format and sniffing branch, the frame's dtypes, and the errors users see."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.datasets import SAMPLE_DIR, SNIFF_BYTES, list_table_samples, load_table
from core.errors import DataError


def assert_sklearn_friendly(frame: pd.DataFrame) -> None:
    for name, col in frame.items():
        assert not isinstance(col.dtype, (pd.ArrowDtype, pd.CategoricalDtype)), name
        assert col.dtype == "str" or col.dtype == object or isinstance(col.dtype, np.dtype), (name, col.dtype)


def excel_bytes(*sheets: tuple[str, pd.DataFrame]) -> bytes:
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in sheets:
            frame.to_excel(writer, sheet_name=name, index=False)
    return buffer.getvalue()


# --- delimited text --------------------------------------------------------------------------

def test_comma_csv_from_path(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("age,city,score\n31,Oslo,1.5\n42,Rome,2.25\n")
    data = load_table(path)
    assert data.frame["age"].tolist() == [31, 42]
    assert data.frame["score"].dtype == np.float64
    assert (data.load.source, data.load.format, data.load.delimiter, data.load.decimal) == ("people.csv", "csv", ",", ".")
    assert (data.load.n_rows, data.load.n_columns) == (2, 3)
    assert_sklearn_friendly(data.frame)


def test_path_given_as_string_keeps_the_name_override(tmp_path):
    path = tmp_path / "tmp123.csv"
    path.write_text("a,b\n1,2\n")
    assert load_table(str(path), name="original.csv").load.source == "original.csv"


def test_semicolon_with_decimal_comma():
    data = load_table(b"width;height;kind\n3,14;2;x\n1,5;4;y\n", "eu.csv")
    assert data.load.delimiter == ";" and data.load.decimal == ","
    assert data.frame["width"].tolist() == [3.14, 1.5]
    assert data.frame["height"].dtype == np.int64


def test_decimal_comma_with_thousands_dot():
    data = load_table(b"price;n\n1.234,50;1\n99,90;2\n", "eu.csv")
    assert data.frame["price"].tolist() == [1234.5, 99.9]


def test_semicolon_without_decimal_comma_keeps_dot():
    data = load_table(b"a;b\n1.5;x\n2.5;y\n", "dot.csv")
    assert data.load.decimal == "."
    assert data.frame["a"].tolist() == [1.5, 2.5]


def test_tab_separated():
    data = load_table(b"a\tb\tc\n1\t2\thello, world\n3\t4\tok\n", "t.tsv")
    assert data.load.format == "tsv" and data.load.delimiter == "\t"
    assert data.frame["c"].tolist() == ["hello, world", "ok"]


def test_pipe_separated_txt():
    data = load_table(b"a|b\n1|x\n2|y\n", "t.txt")
    assert data.load.delimiter == "|"
    assert data.frame.columns.tolist() == ["a", "b"]


def test_quoted_commas_do_not_fool_the_sniffer():
    data = load_table(b'name,comment\nAnn,"yes, twice"\nBob,"no, never"\n', "q.csv")
    assert data.frame["comment"].tolist() == ["yes, twice", "no, never"]


def test_utf8_bom_is_not_part_of_the_first_name():
    data = load_table("\ufeffname,value\nJosé,1\nZoë,2\n".encode(), "bom.csv")
    assert data.load.encoding == "utf-8-sig"
    assert data.frame.columns[0] == "name"
    assert data.frame["name"].tolist() == ["José", "Zoë"]


def test_cp1252_bytes():
    raw = "name,value\nJosé,1\nRené,2\n".encode("cp1252")
    assert b"\xe9" in raw
    data = load_table(raw, "win.csv")
    assert data.load.encoding == "cp1252"
    assert data.frame["name"].tolist() == ["José", "René"]


def test_cp1252_byte_after_the_sniffed_sample_falls_back():
    rows = "".join(f"row{i},{i}\n" for i in range(SNIFF_BYTES // 8))
    raw = ("name,value\n" + rows).encode() + "Café,1\n".encode("cp1252")
    data = load_table(raw, "late.csv")
    assert data.load.encoding == "cp1252"
    assert data.frame["name"].iloc[-1] == "Café"


def test_utf16_text_export():
    data = load_table("a\tb\n1\tx\n2\ty\n".encode("utf-16"), "excel-unicode.txt")
    assert data.load.encoding == "utf-16"
    assert data.frame["b"].tolist() == ["x", "y"]


def test_total_footer_is_skipped_with_a_warning():
    data = load_table(b"a,b,c\n1,2,3\n4,5,6\nTotal: 15\n", "f.csv")
    assert data.frame["a"].tolist() == [1, 4]
    assert data.frame["a"].dtype == np.int64  # the footer's text did not turn the column into text
    assert len(data.load.warnings) == 1 and "Total: 15" in data.load.warnings[0]


def test_truncated_last_line_is_skipped_with_a_warning():
    data = load_table(b"a,b,c\n1,2,3\n4,5,6\n7,8\n", "cut.csv")
    assert data.load.n_rows == 2
    assert "7,8" in data.load.warnings[0]


def test_short_rows_throughout_are_kept():
    data = load_table(b"a,b,c\n1,2\n4,5\n7,8\n", "short.csv")
    assert data.load.n_rows == 3 and data.load.warnings == ()
    assert data.frame["c"].isna().all()


def test_lines_with_too_many_fields_are_counted():
    data = load_table(b"a,b\n1,2\n3,4,5\n6,7\n8,9,10,11\n12,13\n", "extra.csv")
    assert data.frame["a"].tolist() == [1, 6, 12]
    assert any("Skipped 2 lines" in w for w in data.load.warnings)


def test_bad_lines_footer_and_decimal_comma_together():
    data = load_table(b"a;b\n1.234,5;2\n3;4;5\n6,5;7\nTotal\n", "messy.csv")
    assert data.frame["a"].tolist() == [1234.5, 6.5]
    assert len(data.load.warnings) == 2 and any("Skipped 1 line " in w for w in data.load.warnings)


@pytest.mark.parametrize("arrow", [False, True], ids=["small file: numpy parse", "large file: Arrow parse"])
def test_csv_columns_are_plain_numpy_or_str(arrow, monkeypatch):
    if arrow:
        monkeypatch.setattr("core.datasets.ARROW_PARSE_BYTES", 0)
    raw = (b"ints,gaps,flags,flag_gaps,texts,empty,huge,amount\n"
           b"1,1,True,True,a,,18446744073709551615,1.5\n2,,False,,b,,1,\n3,3,True,False,,,2,-0.25\n")
    frame = load_table(raw, "types.csv").frame
    assert frame["ints"].dtype == np.int64 and frame["gaps"].dtype == np.float64
    assert frame["flags"].dtype == bool and frame["flag_gaps"].dtype == object
    assert frame["texts"].dtype == "str" and frame["empty"].dtype == np.float64
    assert frame["huge"].iloc[0] == 2**64 - 1  # not wrapped round to a negative number
    assert frame["amount"].dtype == np.float64 and frame["amount"].isna().tolist() == [False, True, False]
    assert frame["texts"].tolist()[:2] == ["a", "b"] and pd.isna(frame["texts"].iloc[2])
    assert_sklearn_friendly(frame)


def test_column_names_cleaned():
    data = load_table(b" a ,,b,a,  \n1,2,3,4,5\n6,7,8,9,10\n", "names.csv")
    names = data.frame.columns.tolist()
    assert names[:3] == ["a", "column_2", "b"]
    assert names[4] == "column_5"
    assert len(set(names)) == 5 and names[3].startswith("a.")


def test_leading_unnamed_index_stays_a_column():
    raw = pd.DataFrame({"x": [5, 6, 7], "y": ["a", "b", "c"]}).to_csv().encode()
    data = load_table(raw, "indexed.csv")
    assert data.frame.columns.tolist() == ["column_1", "x", "y"]
    assert data.frame["column_1"].tolist() == [0, 1, 2]


def test_header_one_field_short_keeps_first_column():
    data = load_table(b"a,b\n5,1,2\n9,3,4\n", "r-style.csv")
    assert data.frame.columns.tolist() == ["column_1", "a", "b"]
    assert data.frame["column_1"].tolist() == [5, 9]


# --- sources and sniffing ----------------------------------------------------------------------

def test_file_like_upload_with_a_name():
    upload = io.BytesIO(b"a,b\n1,2\n3,4\n")
    upload.name = "upload.csv"
    upload.read()  # Streamlit may hand over a stream that was already read: getvalue() still sees it all
    data = load_table(upload)
    assert data.load.source == "upload.csv" and data.load.n_rows == 2


def test_stream_with_only_read():
    class Stream:
        def __init__(self, data):
            self._buffer = io.BytesIO(data)

        def read(self, size=-1):
            return self._buffer.read(size)

    data = load_table(Stream(b"a;b\n1;2\n"), "s.csv")
    assert data.load.delimiter == ";" and data.frame["b"].tolist() == [2]


def test_unknown_extension_sniffs_text():
    assert load_table(b"a,b\n1,2\n", "export.dat").load.format == "csv"


def test_unknown_extension_sniffs_parquet():
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(buffer)
    data = load_table(buffer.getvalue(), "blob.bin")
    assert data.load.format == "parquet" and data.frame["b"].tolist() == ["x", "y"]


def test_unknown_extension_sniffs_xlsx():
    raw = excel_bytes(("Sheet1", pd.DataFrame({"a": [1, 2], "b": [3.5, 4.5]})))
    data = load_table(raw)
    assert data.load.format == "excel" and data.load.source == "uploaded table"
    assert data.frame["b"].tolist() == [3.5, 4.5]


# --- Excel and Parquet -------------------------------------------------------------------------

def test_excel_first_sheet_and_warning_about_others(tmp_path):
    first = pd.DataFrame({"n": [1, 2, 3], "name": ["a", "b", None], "when": pd.to_datetime(["2021-01-01"] * 3)})
    path = tmp_path / "book.xlsx"
    path.write_bytes(excel_bytes(("Data", first), ("Notes", pd.DataFrame({"x": [1]}))))
    data = load_table(path)
    assert data.load.format == "excel" and data.load.encoding is None
    assert data.frame["n"].tolist() == [1, 2, 3]
    assert pd.api.types.is_datetime64_any_dtype(data.frame["when"])
    assert len(data.load.warnings) == 1 and "'Notes'" in data.load.warnings[0] and "'Data'" in data.load.warnings[0]
    assert_sklearn_friendly(data.frame)


def test_parquet_nullable_and_arrow_columns_become_numpy(tmp_path):
    frame = pd.DataFrame({
        "ints_with_gap": pd.array([1, None, 3], dtype="Int64"),
        "ints": pd.array([1, 2, 3], dtype="Int32"),
        "arrow_ints": pd.array([4, 5, 6], dtype="int64[pyarrow]"),
        "flags": pd.array([True, None, False], dtype="boolean"),
        "texts": pd.array(["a", None, "c"], dtype="string"),
        "cats": pd.Categorical(["u", "v", "u"]),
    })
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    data = load_table(path)
    out = data.frame
    assert out["ints_with_gap"].dtype == np.float64 and np.isnan(out["ints_with_gap"][1])
    assert out["ints"].dtype == np.int64 and out["arrow_ints"].dtype == np.int64
    assert out["cats"].tolist() == ["u", "v", "u"]
    assert out["flags"].dtype == object and out["flags"][0] is True and pd.isna(out["flags"][1])
    assert_sklearn_friendly(out)


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"   \n\n  \t"])
def test_empty_file(raw):
    with pytest.raises(DataError, match="is empty"):
        load_table(raw, "nothing.csv")


def test_binary_junk_is_not_a_table():
    with pytest.raises(DataError, match="does not look like a table"):
        load_table(bytes(range(256)) * 4, "junk.csv")


@pytest.mark.parametrize("raw, what", [(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "PNG image"),
                                       (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
                                       (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image")])
def test_images_and_pdfs_are_named(raw, what):
    with pytest.raises(DataError, match=what):
        load_table(raw, "photo.csv")


def test_header_only():
    with pytest.raises(DataError, match="no rows") as err:
        load_table(b"age,income,churn\n", "header.csv")
    assert "age, income, churn" in str(err.value)


def test_only_one_column():
    with pytest.raises(DataError, match="at least one column to learn from and one to predict") as err:
        load_table(b"score\n1\n2\n3\n", "single.csv")
    assert "'score'" in str(err.value)


def test_larger_than_max_bytes_from_bytes_and_path(tmp_path):
    raw = b"a,b\n" + b"1,2\n" * 1000
    with pytest.raises(DataError, match="the limit is"):
        load_table(raw, "big.csv", max_bytes=1000)
    path = tmp_path / "big.csv"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="smaller sample"):
        load_table(path, max_bytes=1000)


def test_corrupt_excel():
    raw = excel_bytes(("S", pd.DataFrame({"a": [1], "b": [2]})))
    with pytest.raises(DataError, match="Excel workbook; it may be damaged"):
        load_table(raw[: len(raw) // 2], "broken.xlsx")


def test_xlsx_extension_on_text_is_reported_as_damaged_excel():
    with pytest.raises(DataError, match="Excel"):
        load_table(b"a,b\n1,2\n", "renamed.xlsx")


def test_zip_that_is_not_a_workbook():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="zip archive, not an Excel workbook"):
        load_table(buffer.getvalue(), "data.zip")


def test_corrupt_parquet():
    with pytest.raises(DataError, match="Parquet"):
        load_table(b"PAR1 this is not really parquet", "broken.parquet")


def test_old_xls_format():
    with pytest.raises(DataError, match=r"\.xlsx or CSV"):
        load_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="Cannot find"):
        load_table(tmp_path / "nope.csv")


def test_unclosed_quote():
    with pytest.raises(DataError, match="quote"):
        load_table(b'a,b\n1,"never closed\n2,3\n', "q.csv")


# --- samples -----------------------------------------------------------------------------------

def test_bundled_samples_are_listed_and_load():
    names = [p.name for p in list_table_samples()]
    assert names == sorted(names)
    assert {"iris.csv", "wine.csv", "breast_cancer.csv", "diabetes.csv", "churn.csv"} <= set(names)
    assert all(p.parent == SAMPLE_DIR for p in list_table_samples())
    churn = load_table(SAMPLE_DIR / "churn.csv")
    assert churn.load.n_rows == 5000 and churn.frame.columns[-1] == "churned"
    assert_sklearn_friendly(churn.frame)


def test_spaces_after_the_delimiter_are_skipped_only_when_present():
    spaced = load_table(b"a, b, c\n1, x, 2.5\n2, y, 3.5\n", name="spaced.csv").frame
    assert spaced["b"].tolist() == ["x", "y"] and spaced["c"].tolist() == [2.5, 3.5]
    tight = load_table(b"a,b\n1, x\n2,y\n", name="tight.csv").frame  # no ", " in the header: kept as written
    assert list(tight.columns) == ["a", "b"]
