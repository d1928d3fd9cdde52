"""Loading tables from files, bytes or uploads: format sniffing, validation, clear errors.

CSV/TSV/TXT are sniffed on the first 64 KB only (encoding, delimiter, decimal comma, a junk
last line) and read with pandas' C engine: into Arrow-backed columns from 32 MB up (as fast as
numpy columns there, and leanest in memory), into numpy below (faster on small files). Excel
(.xlsx) is read with openpyxl, Parquet with pyarrow. Whatever the format, the frame that comes
back holds plain numpy/``str`` dtypes that scikit-learn accepts; anything a user can get wrong
raises ``DataError``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import limits
from core.errors import DataError
from core.memory import release_freed_memory
from core.types import LoadReport, TableData

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"

#: Bytes read from the start (and the end) of a file to guess its encoding, delimiter and footer.
SNIFF_BYTES = 64 * 1024
#: CSVs from this size up are parsed into Arrow-backed columns (leaner); smaller ones into numpy.
ARROW_PARSE_BYTES = 32 * 2**20
#: An .xlsx may unpack to at most this many times ``max_bytes`` (guards against zip bombs).
XLSX_UNPACK_FACTOR = 10

DELIMITERS = (",", ";", "\t", "|")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS_HINT = "Upload a CSV, TSV, Excel (.xlsx) or Parquet file."
#: What a table upload may be (suffixes without the dot, for the upload widgets); its largest size,
#: rows and columns are ``core.limits.TABLE_MB``, ``ROWS`` and ``COLUMNS``.
TABLE_UPLOAD_TYPES = ("csv", "tsv", "txt", "xlsx", "xlsm", "parquet", "pq")

_MAGIC = (
    (b"PAR1", "parquet"),
    (b"PK\x03\x04", "zip"),
    (b"\xd0\xcf\x11\xe0", "old Excel (.xls)"),
    (b"%PDF", "PDF document"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"BM", "bitmap image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
)
_UNNAMED = re.compile(r"Unnamed: \d+(_level_\d+)?")
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")
_THOUSANDS_DOT = re.compile(r"[-+]?\d{1,3}(\.\d{3})+(,\d+)?")
_BAD_LINE = re.compile(r"Expected \d+ fields")
_DECODE_CHUNK = 4 * 2**20
#: Leading values without a header name that are kept as columns (more: the header is not the table's).
MAX_UNNAMED_COLUMNS = 20
#: Python types in object columns that scikit-learn and counting cannot take: shown as text.
_NOT_PLAIN = (list, dict, tuple, set, bytes, np.ndarray, dt.time, dt.timedelta)


def list_table_samples() -> list[Path]:
    """The bundled sample tables (``sample_data/*.csv``), sorted by name."""
    return sorted(SAMPLE_DIR.glob("*.csv"))


@dataclass(frozen=True, eq=False)
class _Source:
    """A file's bytes (or its path) plus the head and tail used for sniffing."""

    name: str
    path: Path | None
    data: bytes | None
    size: int
    head: bytes
    tail: bytes

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()

    def handle(self, limit: int | None = None) -> Path | IO[bytes]:
        """What pandas reads: the path itself (streamed) or a fresh buffer, cut to ``limit`` bytes."""
        if self.path is not None and limit is None:
            return self.path
        if self.path is not None:
            with self.path.open("rb") as handle:
                return io.BytesIO(handle.read(limit))
        return io.BytesIO(self.data if limit is None else (self.data or b"")[:limit])

    def whole(self) -> bool:
        return self.size <= len(self.head)


def load_table(source: str | Path | bytes | IO[bytes], name: str | None = None, *,
               max_bytes: int | None = None) -> TableData:
    """Read a CSV/TSV/TXT, Excel or Parquet table from a path, bytes or an upload.

    ``name`` is the file name for bytes and streams (its extension picks the format; unknown
    extensions are sniffed) and is reported as ``LoadReport.source``. ``max_bytes`` defaults to
    the ``core.limits.TABLE_MB`` setting; rows and columns are held to ``ROWS`` and ``COLUMNS``.
    """
    max_bytes = max_bytes or limits.TABLE_MB.value() * 2**20
    src = _open_source(source, name, max_bytes)
    kind = _detect_kind(src)
    if kind == "excel":
        frame, report = _read_excel(src, max_bytes)
    elif kind == "parquet":
        frame, report = _read_parquet(src)
    else:
        frame, report = _read_delimited(src)
    frame = _plain_dtypes(frame)
    frame.columns = _clean_names(frame.columns)
    _check_shape(frame, src.name)
    release_freed_memory()  # the parser's buffers: as much again as the frame on a large CSV
    return TableData(frame=frame, load=replace(report, n_rows=len(frame), n_columns=frame.shape[1]))


# --- getting the bytes -------------------------------------------------------------------------

def _open_source(source, name: str | None, max_bytes: int) -> _Source:
    if isinstance(source, (str, Path)):
        return _open_path(Path(source), name, max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "getvalue"):
        data = source.getvalue()
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
    else:
        raise TypeError(f"load_table() takes a path, bytes or a binary file object, not {type(source).__name__}")
    if isinstance(data, str):
        data = data.encode("utf-8")
    name = name or Path(str(getattr(source, "name", "") or "")).name or "uploaded table"
    _check_size(len(data), max_bytes, name)
    return _Source(name, None, data, len(data), data[:SNIFF_BYTES], data[-SNIFF_BYTES:])


def _open_path(path: Path, name: str | None, max_bytes: int) -> _Source:
    if not path.is_file():
        raise DataError(f"Cannot find the file '{path}'. Check the path and try again.")
    size = path.stat().st_size
    _check_size(size, max_bytes, name or path.name)
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        handle.seek(max(size - SNIFF_BYTES, 0))
        tail = handle.read()
    return _Source(name or path.name, path, None, size, head, tail)


def _check_size(size: int, max_bytes: int, name: str) -> None:
    if size > max_bytes:
        raise DataError(f"'{name}' is {size / 2**20:,.0f} MB; the limit is {max_bytes / 2**20:,.0f} MB "
                        f"({limits.TABLE_MB.setting}). Use a smaller sample of the rows, or drop columns you "
                        "do not need.")


def _detect_kind(src: _Source) -> str:
    """'excel', 'parquet' or 'delimited'; raises DataError for files that are no table."""
    if not src.head.strip():
        raise DataError(f"'{src.name}' is empty. Choose a file that holds a table with a header row.")
    magic = next((kind for prefix, kind in _MAGIC if src.head.startswith(prefix)), None)
    if src.suffix in EXCEL_SUFFIXES or magic == "zip":
        return "excel"
    if src.suffix in PARQUET_SUFFIXES or magic == "parquet":
        return "parquet"
    if src.suffix == ".xls" or magic == "old Excel (.xls)":
        raise DataError(f"'{src.name}' is in the old Excel format (.xls). Open it in Excel or LibreOffice "
                        "and save it as .xlsx or CSV, then upload that.")
    if magic is not None:
        raise DataError(f"'{src.name}' looks like a {magic}, not a table. {FORMATS_HINT}")
    if b"\x00" in src.head and not src.head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"'{src.name}' does not look like a table (it holds binary data). {FORMATS_HINT} "
                        "If it is text saved as UTF-16, save it again as UTF-8 CSV.")
    return "delimited"


# --- delimited text ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Dialect:
    encoding: str
    delimiter: str
    decimal: str
    thousands: str | None
    n_fields: int  # fields in the header row
    footer: str | None = None  # a trailing line that does not fit the table, if any
    limit: int | None = None  # bytes to read: where that footer starts
    # Spaces after the delimiter ("a, b") are skipped only when the sample has them: the option
    # made pandas' C parser 1.5x slower on a 1M-row file without any.
    initial_space: bool = True


def _read_delimited(src: _Source) -> tuple[pd.DataFrame, LoadReport]:
    dialect = _sniff_dialect(src)
    warnings: list[str] = []
    frame, encoding, skipped = _parse_with_fallback_encodings(src, dialect)
    if dialect.footer is not None:
        warnings.append(f"Skipped the last line ('{_shorten(dialect.footer)}') because it does not fit the "
                        "table (a total, a note or a cut-off row).")
    if skipped:
        warnings.append(f"Skipped {skipped:,} line{'s' if skipped != 1 else ''} whose number of values does "
                        "not match the header. Check the file if those rows matter.")
    report = LoadReport(source=src.name, format="tsv" if dialect.delimiter == "\t" else "csv", n_rows=0,
                        n_columns=0, encoding=encoding, delimiter=dialect.delimiter, decimal=dialect.decimal,
                        warnings=tuple(warnings))
    return frame, report


def _sniff_dialect(src: _Source) -> _Dialect:
    encoding = _detect_encoding(src.head, src.whole())
    head = src.head.decode(encoding, errors="replace")
    text = _complete_lines(head, src.whole())
    delimiter, n_fields = _detect_delimiter(text)
    _check_first_row(src.name, head, delimiter, n_fields)
    decimal, thousands = _detect_decimal(text, delimiter)
    dialect = _Dialect(encoding, delimiter, decimal, thousands, n_fields,
                       initial_space=f"{delimiter} " in text)
    return dialect if encoding == "utf-16" else _with_junk_footer(src, dialect)


def _detect_encoding(head: bytes, whole: bool) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252, else latin-1 (never fails)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        try:
            # An incremental decoder tolerates a character cut in two at the end of the sample.
            codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def _complete_lines(text: str, whole: bool) -> str:
    """The sample without its last, probably cut-off, line (unless the sample is the whole file)."""
    return text if whole or "\n" not in text else text[: text.rindex("\n") + 1]


def _records(text: str, delimiter: str, limit: int = 200) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    try:
        return [row for _, row in zip(range(limit), reader, strict=False) if row]
    except csv.Error:
        return []


def _detect_delimiter(text: str) -> tuple[str, int]:
    """The delimiter that splits the sample into the most consistent rows of more than one field."""
    best: tuple[tuple[float, int], str, int] = ((0.0, 1), ",", 1)
    for delimiter in DELIMITERS:
        rows = _records(text, delimiter)
        if not rows or len(rows[0]) < 2:
            continue
        n_fields = len(rows[0])
        body = rows[1:] or rows
        score = (sum(len(r) == n_fields for r in body) / len(body), n_fields)
        if score > best[0]:
            best = (score, delimiter, n_fields)
    return best[1], best[2]


def _check_first_row(name: str, head: str, delimiter: str, n_fields: int) -> None:
    """Refuse, before parsing, a first data row far wider than the header: pandas would make all its
    extra values an index of as many levels, which takes minutes for tens of thousands of them."""
    rows = _records(head, delimiter, 2)  # the row may be cut off: its count is then a lower bound
    extra = len(rows[1]) - n_fields if len(rows) == 2 else 0
    if extra > MAX_UNNAMED_COLUMNS:
        raise DataError(f"'{name}' has rows with {extra:,} more values than its header row has names. Check "
                        "that the first row holds the column names and that every row uses the same separator.")


def _detect_decimal(text: str, delimiter: str) -> tuple[str, str | None]:
    """Decimal comma (and maybe thousands dot) when the delimiter is not a comma and numbers say so."""
    if delimiter == ",":
        return ".", None
    values = [v.strip() for row in _records(text, delimiter)[1:] for v in row]
    if not any(_DECIMAL_COMMA.fullmatch(v) for v in values):
        return ".", None
    return ",", "." if any(_THOUSANDS_DOT.fullmatch(v) for v in values) else None


def _with_junk_footer(src: _Source, dialect: _Dialect) -> _Dialect:
    """Mark the last line as junk if its field count fits neither the header nor the line before."""
    lines = [line for line in src.tail.decode(dialect.encoding, errors="replace").splitlines() if line.strip()]
    if len(lines) < (2 if src.whole() else 3):
        return dialect
    last, previous = lines[-1], lines[-2]
    if last.count('"') % 2:  # the end of a quoted value that spans lines, not a row of its own
        return dialect
    count, previous_count = (len(next(iter(_records(line, dialect.delimiter, 1)), [])) for line in (last, previous))
    if count == dialect.n_fields or previous_count != dialect.n_fields:
        return dialect
    # Encodings here are ASCII-compatible, so the last line starts after the last b"\n" byte.
    start = src.tail.rstrip().rfind(b"\n") + 1
    return replace(dialect, footer=last.strip(), limit=src.size - len(src.tail) + start)


def _parse_with_fallback_encodings(src: _Source, dialect: _Dialect) -> tuple[pd.DataFrame, str, int]:
    """Parse, trying the next encoding if the sniffed one fails further into the file."""
    candidates = ["utf-8", "cp1252", "latin-1"]
    order = [dialect.encoding] + candidates[candidates.index(dialect.encoding) + 1:] \
        if dialect.encoding in candidates else [dialect.encoding]
    for encoding in order:
        try:
            frame, skipped = _parse(src, dialect, encoding)
            return frame, encoding, skipped
        except UnicodeDecodeError:
            continue
    raise DataError(f"'{src.name}' uses a text encoding Trainboard cannot read. Save it again as UTF-8 CSV.")


def _parse(src: _Source, dialect: _Dialect, encoding: str) -> tuple[pd.DataFrame, int]:
    """C engine first (fast); when lines do not fit, again skipping and counting them."""
    options = dict(sep=dialect.delimiter, decimal=dialect.decimal, encoding=encoding)
    if src.size >= ARROW_PARSE_BYTES:
        # Arrow-backed parsing keeps text out of Python objects: 339 vs 461 MB peak on a 1M×21 CSV,
        # and no slower (0.62 vs 0.68 s). On small files its set-up costs more than it saves (100k
        # rows: 54 vs 37 ms). _plain_dtypes turns the columns back into numpy/str afterwards.
        options["dtype_backend"] = "pyarrow"
    try:
        frame = pd.read_csv(src.handle(dialect.limit), engine="c", on_bad_lines="error",
                            skipinitialspace=dialect.initial_space,
                            thousands=dialect.thousands, **options)
        return _keep_index_column(frame), 0
    except pd.errors.ParserError as err:
        if not _BAD_LINE.search(str(err)):
            raise _unreadable(src, err) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"'{src.name}' is empty. Choose a file that holds a table with a header row.") from err
    return _parse_skipping(src, dialect, options)


def _parse_skipping(src: _Source, dialect: _Dialect, options: dict) -> tuple[pd.DataFrame, int]:
    """The path for malformed files: skip and count the lines that do not fit.

    The C engine cannot count what it skips without the (thread-unsafe) warnings machinery, so
    this uses the pyarrow engine's callback (python's only for thousands separators it lacks).
    """
    bad: list[object] = []

    def skip(row):
        bad.append(row)
        return "skip" if dialect.thousands is None else None

    if dialect.thousands is None and options["encoding"].startswith("utf-8"):
        _check_decodes(src, dialect.limit, options["encoding"])
    try:
        if dialect.thousands is None:
            frame = pd.read_csv(src.handle(dialect.limit), engine="pyarrow", on_bad_lines=skip, **options)
        else:
            frame = pd.read_csv(src.handle(dialect.limit), engine="python", on_bad_lines=skip,
                                skipinitialspace=dialect.initial_space, thousands=dialect.thousands, **options)
    except (pd.errors.ParserError, pa.ArrowInvalid) as err:
        raise _unreadable(src, err) from err
    return _keep_index_column(frame), len(bad)


def _check_decodes(src: _Source, limit: int | None, encoding: str) -> None:
    """Raise UnicodeDecodeError (the caller then tries the next encoding) if the bytes are not valid
    ``encoding``: pyarrow passes rows it cannot decode to no callback, so they would go uncounted."""
    handle = src.handle(limit)
    decoder = codecs.getincrementaldecoder(encoding)()
    with handle.open("rb") if isinstance(handle, Path) else handle as stream:
        while chunk := stream.read(_DECODE_CHUNK):
            decoder.decode(chunk)
    decoder.decode(b"", final=True)
    if isinstance(handle, io.BytesIO):
        handle.close()


def _keep_index_column(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas turns a first column without a header into the index; keep it as a column."""
    if frame.index.equals(pd.RangeIndex(len(frame))):
        return frame
    # Names no column has (pandas refuses duplicates here); _clean_names turns them into column_N.
    taken = {str(c) for c in frame.columns}
    free = (name for k in range(len(taken) + frame.index.nlevels + 1) if (name := f"Unnamed: {k}") not in taken)
    index = frame.index.to_frame(index=False)
    index.columns = [next(free) for _ in range(frame.index.nlevels)]
    return pd.concat([index, frame.reset_index(drop=True)], axis=1)  # at once: inserting one by one fragments


def _unreadable(src: _Source, err: Exception) -> DataError:
    detail = str(err).replace("Error tokenizing data. C error: ", "").strip()
    return DataError(f"'{src.name}' could not be read as a table ({detail}). Check that every row has the same "
                     "columns and every quote is closed, or save it again as CSV from your spreadsheet program.")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Excel and Parquet ---------------------------------------------------------------------------

def _read_excel(src: _Source, max_bytes: int) -> tuple[pd.DataFrame, LoadReport]:
    handle = src.handle()
    _check_workbook(handle, src, max_bytes)
    try:
        with pd.ExcelFile(handle, engine="openpyxl") as book:
            sheets = book.sheet_names
            frame = pd.read_excel(book, sheet_name=0)
    except DataError:
        raise
    except Exception as err:  # openpyxl raises many kinds for damaged files; all mean the same to a user
        raise DataError(f"'{src.name}' could not be read as an Excel workbook; it may be damaged. Open it in "
                        "Excel or LibreOffice and save it again (or export it as CSV).") from err
    warnings = ()
    if len(sheets) > 1:
        others = ", ".join(f"'{s}'" for s in sheets[1:])
        warnings = (f"This workbook has {len(sheets)} sheets; only the first ('{sheets[0]}') was read. Other "
                    f"sheets: {others}. To use another one, move it to the front or save it as CSV.",)
    report = LoadReport(source=src.name, format="excel", n_rows=0, n_columns=0, warnings=warnings)
    return frame, report


def _check_workbook(handle, src: _Source, max_bytes: int) -> None:
    """Refuse zips that are not workbooks, and workbooks that unpack to something huge."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DataError(f"'{src.name}' could not be read as an Excel workbook; it may be damaged. Open it in "
                        "Excel or LibreOffice and save it again (or export it as CSV).") from err
    finally:
        if not isinstance(handle, Path):
            handle.seek(0)
    if "xl/workbook.xml" not in names:
        raise DataError(f"'{src.name}' is a zip archive, not an Excel workbook. Unzip it and upload the table "
                        "inside (CSV, Excel or Parquet).")
    if unpacked > XLSX_UNPACK_FACTOR * max_bytes:
        raise DataError(f"'{src.name}' unpacks to {unpacked / 2**20:,.0f} MB, too large to read. Save the "
                        "sheet you need as CSV, or use fewer rows.")


def _read_parquet(src: _Source) -> tuple[pd.DataFrame, LoadReport]:
    try:
        try:
            frame = pd.read_parquet(src.handle(), engine="pyarrow")
        except pa.ArrowInvalid as err:
            if "Multiple matches" not in str(err):
                raise
            # Repeated column names: pandas' reader refuses them; the file's own reader does not
            # (and _clean_names numbers the repeats).
            frame = pq.ParquetFile(src.handle()).read().to_pandas()
    except Exception as err:  # pyarrow's errors for damaged files vary (ArrowInvalid, OSError…)
        raise DataError(f"'{src.name}' could not be read as a Parquet file; it may be damaged or not Parquet "
                        "at all. Write it again, or export the table as CSV.") from err
    return frame, LoadReport(source=src.name, format="parquet", n_rows=0, n_columns=0)


# --- the frame that comes back -------------------------------------------------------------------

def _plain_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable and Arrow-backed columns → numpy float64/int64/bool, ``str`` or object."""
    changed = {}
    for position, (_, col) in enumerate(frame.items()):
        plain = _plain_column(col)
        if plain is not col:
            changed[position] = plain
    for position, plain in changed.items():
        frame.isetitem(position, plain)
    return frame


def _plain_column(col: pd.Series) -> pd.Series:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _plain_column(col.astype(dtype.categories.dtype))
    if isinstance(dtype, pd.ArrowDtype):
        return _plain_arrow(col, dtype.pyarrow_dtype)
    if isinstance(dtype, pd.StringDtype) and dtype != pd.StringDtype(na_value=np.nan):
        return col.astype("str")
    if isinstance(dtype, pd.BooleanDtype):
        return col.astype(bool) if not col.hasnans else col.astype(object).where(col.notna(), np.nan)
    if isinstance(dtype, (pd.Int64Dtype, pd.Int32Dtype, pd.Int16Dtype, pd.Int8Dtype, pd.UInt64Dtype,
                          pd.UInt32Dtype, pd.UInt16Dtype, pd.UInt8Dtype)):
        return col.astype(_wide_int(dtype.numpy_dtype)) if not col.hasnans else col.astype("float64")
    if isinstance(dtype, (pd.Float64Dtype, pd.Float32Dtype)):
        return col.astype("float64")
    if pd.api.types.is_timedelta64_dtype(dtype):  # durations: a number of seconds
        return col / pd.Timedelta(seconds=1)
    if pd.api.types.is_object_dtype(dtype) and col.map(lambda v: isinstance(v, _NOT_PLAIN)).any():
        return _as_text(col)
    return col


def _plain_arrow(col: pd.Series, arrow_type: pa.DataType) -> pd.Series:
    if pa.types.is_null(arrow_type):
        return pd.Series(np.nan, index=col.index, name=col.name)
    if pa.types.is_integer(arrow_type):
        return col.astype(_wide_int(arrow_type.to_pandas_dtype())) if not col.hasnans else col.astype("float64")
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return col.astype("float64")
    if pa.types.is_boolean(arrow_type):
        return col.astype(bool) if not col.hasnans else col.astype(object).where(col.notna(), np.nan)
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return col.astype("str")
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        dates = pa.chunked_array(pa.array(col)).to_pandas(date_as_object=False)
        return pd.Series(dates.to_numpy(), index=col.index, name=col.name)
    if pa.types.is_duration(arrow_type):
        counts = pa.array(col).cast(pa.int64()).to_numpy(zero_copy_only=False)
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[arrow_type.unit]
        return pd.Series(counts / per_second, index=col.index, name=col.name).where(col.notna())
    return _as_text(col)


def _as_text(col: pd.Series) -> pd.Series:
    """Values of other kinds (times of day, lists, records, bytes) as their text; missing stays missing.
    As Python objects they would break counting and sorting (a list is not hashable)."""
    return col.astype(object).map(lambda v: None if v is None or v is pd.NA else str(v)).astype("str")


def _wide_int(dtype) -> type:
    """int64 for every integer type but uint64, whose large values would wrap round in int64."""
    return np.uint64 if np.dtype(dtype) == np.uint64 else np.int64


def _clean_names(columns: pd.Index) -> list[str]:
    """Stripped names; blank or pandas' 'Unnamed: 3' headers become 'column_4'; duplicates numbered."""
    names = []
    for position, column in enumerate(columns, start=1):
        text = "" if column is None or (isinstance(column, float) and np.isnan(column)) else str(column).strip()
        names.append(f"column_{position}" if not text or _UNNAMED.fullmatch(text) else text)
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}.{n}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def _check_shape(frame: pd.DataFrame, name: str) -> None:
    if frame.shape[1] == 0:
        raise DataError(f"'{name}' is empty. Choose a file that holds a table with a header row.")
    if len(frame) == 0:
        header = ", ".join(map(str, frame.columns[:5])) + (", …" if frame.shape[1] > 5 else "")
        raise DataError(f"'{name}' has a header row ({header}) but no rows of data. Add rows below the header "
                        "and upload it again.")
    max_rows, max_columns = limits.ROWS.value(), limits.COLUMNS.value()
    if len(frame) > max_rows:
        raise DataError(f"'{name}' has {len(frame):,} rows; the limit is {max_rows:,} rows ({limits.ROWS.setting}). "
                        "Use a sample of the rows.")
    if frame.shape[1] > max_columns:
        raise DataError(f"'{name}' has {frame.shape[1]:,} columns; the limit is {max_columns:,} columns "
                        f"({limits.COLUMNS.setting}). Keep only the columns the model needs.")
    if frame.shape[1] == 1:
        raise DataError(f"'{name}' has only one column ('{frame.columns[0]}'). Trainboard needs at least one "
                        "column to learn from and one to predict. If your file uses another separator, "
                        "save it as a comma-separated CSV.")
