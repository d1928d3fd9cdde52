"""Column roles, the target and the task: what each column is, and what we are predicting.

Every decision comes with a reason in plain words, because the Data page shows it and a user
may disagree and override it. Expensive checks (parsing numbers and dates held as text) look at
a fixed random sample of rows, so a million-row table is as quick to inspect as a small one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.errors import DataError
from core.features import MAX_ENCODED_WIDTH, category_label, encoded_width, parse_dates
from core.sample_limit import row_limit, sample_notice
from core.splits import sample_rows
from core.types import USER_ROLES, ColumnInfo, Prepared, TableData, Task

#: Rows looked at for the expensive parse checks (numbers or dates stored as text, free text).
SAMPLE_ROWS = 10_000
#: A table needs at least this many rows with a target to learn and to check what it learned.
MIN_ROWS = 10
TARGET_NAMES = ("target", "label", "class", "y", "outcome")
#: Numeric targets with at most this many distinct whole numbers are read as classes.
MAX_NUMERIC_CLASSES = 20
#: What a date column becomes (``core.features.DateParts``), said in the column's role reason.
DATE_WORDS = ("the model sees year, month, day, weekday and day of year, the days since 1970 (trends), "
              "and the days between date columns (durations)")

_ID_LAST_WORDS = {"id", "ids", "idx", "index", "key", "code", "number", "no", "num", "nr", "uuid", "guid"}
_ID_FIRST_WORDS = {"id", "idx", "index", "key", "uuid", "guid", "unnamed"}
_GENERATED_NAME = re.compile(r"(column_\d+|Unnamed: \d+)")
_CODE = re.compile(r"[A-Za-z]{0,6}[-_ /#]?\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_MONTHS = r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DATE_LIKE = re.compile(
    rf"\d{{4}}[-/.]\d{{1,2}}([-/.]\d{{1,2}})?([ T]\d{{1,2}}:\d{{2}}.*)?"  # 2021-03-05, 2021/3, ISO times
    rf"|\d{{1,2}}[-/.]\d{{1,2}}[-/.]\d{{2,4}}([ T]\d{{1,2}}:\d{{2}}.*)?"  # 05/03/2021, 5.3.21 12:00
    rf"|.*\b({_MONTHS})[a-z]*\b.*\d.*|\d.*\b({_MONTHS})[a-z]*\b.*",  # 5 March 2021, Mar 5, 2021
    re.IGNORECASE,
)


# --- column roles ------------------------------------------------------------------------------

def infer_columns(frame: pd.DataFrame, target: str | None = None) -> tuple[ColumnInfo, ...]:
    """Every column except the target, in file order, with a role and the reason for it."""
    sample = frame.sample(n=SAMPLE_ROWS, random_state=0) if len(frame) > SAMPLE_ROWS else frame
    return tuple(_column_info(frame[name], sample[name]) for name in frame.columns if name != target)


def _column_info(col: pd.Series, sample: pd.Series) -> ColumnInfo:
    n_missing = int(col.isna().sum())
    n_unique = int(col.nunique(dropna=True))
    role, reason = _role(col, sample, n_unique, n_missing)
    return ColumnInfo(name=str(col.name), role=role, reason=reason, dtype=_human_dtype(col, sample),
                      n_unique=n_unique, n_missing=n_missing)


def _role(col: pd.Series, sample: pd.Series, n_unique: int, n_missing: int) -> tuple[str, str]:
    if n_missing == len(col):
        return "empty", "every value is empty"
    if n_unique == 1:
        value = _shorten(str(col.dropna().iloc[0]))
        where = "every row" if n_missing == 0 else "every row that has a value"
        return "constant", f"the same value ('{value}') in {where}, so it cannot tell rows apart"
    if pd.api.types.is_bool_dtype(col):
        return "categorical", "yes/no values"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime", f"dates; {DATE_WORDS}"
    if pd.api.types.is_numeric_dtype(col):
        return _numeric_role(col, n_unique, n_missing, "numbers")
    if pd.api.types.is_timedelta64_dtype(col):
        return "numeric", "durations"
    return _text_role(col, sample, n_unique, n_missing)


def _numeric_role(col: pd.Series, n_unique: int, n_missing: int, what: str) -> tuple[str, str]:
    if _looks_like_index(col, n_unique, n_missing):
        if _id_like_name(str(col.name)):
            return "id", "a different whole number in every row, and named like an ID"
        return "id", "a different whole number in every row, counting like a row number"
    return "numeric", what


def _looks_like_index(col: pd.Series, n_unique: int, n_missing: int) -> bool:
    """Unique whole numbers that count like a row number, or are named like an ID.

    Unique measurements (incomes, prices) stay numbers: they neither fill a consecutive range
    nor count through the file in (nearly) even steps, and their names do not say ID.
    """
    n = len(col)
    if n_missing or n_unique != n or n < 2:
        return False
    values = col.to_numpy(dtype="float64")
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return False
    if _id_like_name(str(col.name)):
        return True
    if n < MIN_ROWS:
        return False
    span = values.max() - values.min() + 1
    counting = col.is_monotonic_increasing or col.is_monotonic_decreasing
    steps = np.diff(values)
    return bool(span == n or (counting and (span <= 1.5 * n or np.all(steps == steps[0]))))


def _id_like_name(name: str) -> bool:
    if _GENERATED_NAME.fullmatch(name.strip()):
        return True
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower().replace("#", " no ").split()
    words = [w for part in words for w in re.split(r"[^a-z0-9]+", part) if w]
    return bool(words) and (words[-1] in _ID_LAST_WORDS or words[0] in _ID_FIRST_WORDS)


def _text_role(col: pd.Series, sample: pd.Series, n_unique: int, n_missing: int) -> tuple[str, str]:
    values = sample.dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return "empty", "every value is empty"
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() >= 0.95:
        return _numeric_role(pd.to_numeric(col, errors="coerce"), n_unique, n_missing,
                             "numbers stored as text; cells that are not numbers count as missing")
    if _looks_like_dates(values):
        return "datetime", f"dates written as text; {DATE_WORDS}"
    n_filled = len(col) - n_missing
    if _looks_like_free_text(values, n_unique, n_filled):
        return "text", "long free text; the model looks at the words it contains"
    if n_unique == n_filled and (n_filled >= 20 or _id_like_name(str(col.name)) or values.str.fullmatch(_CODE).all()):
        return "id", "a different value in every row, like a name or an ID, so it cannot generalise"
    if n_filled >= 20 and n_unique >= 0.95 * n_filled:
        return "id", "almost every row has its own value, like a name or an ID, so it cannot generalise"
    return "categorical", "categories"


def _looks_like_dates(values: pd.Series) -> bool:
    """At least 90% of the sample is written like a date and parses as one."""
    if values.str.fullmatch(_DATE_LIKE).mean() < 0.9:
        return False
    return bool(parse_dates(values).notna().mean() >= 0.9)


def _looks_like_free_text(values: pd.Series, n_unique: int, n_filled: int) -> bool:
    """Long values with spaces, mostly different from each other: sentences, not categories."""
    lengths = values.str.len()
    spaced = values.str.contains(" ", regex=False).mean()
    varied = n_unique >= 0.5 * n_filled or n_unique > 1000
    return bool(lengths.mean() > 30 and spaced >= 0.5 and varied)


def _human_dtype(col: pd.Series, sample: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(col):
        return "yes/no"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "date"
    if pd.api.types.is_timedelta64_dtype(col):
        return "duration"
    if pd.api.types.is_numeric_dtype(col):
        return "number"
    if isinstance(col.dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(col.dtype, pd.StringDtype) or sample.dropna().map(type).eq(str).all():
        return "text"
    return "mixed"


# --- target and task ---------------------------------------------------------------------------

def guess_target(frame: pd.DataFrame) -> str:
    """A column named target/label/class/y/outcome (any case), else the last column."""
    if frame.shape[1] == 0:
        raise DataError("The table has no columns. Load a table with a header row first.")
    by_name = {str(name).strip().lower(): name for name in reversed(frame.columns)}
    return next((by_name[n] for n in TARGET_NAMES if n in by_name), frame.columns[-1])


def detect_task(y: pd.Series) -> Task:
    """Classes for text, yes/no and a few distinct whole numbers; regression for other numbers."""
    values = y.dropna()
    if pd.api.types.is_bool_dtype(values):
        return "binary"
    numbers = _as_numbers(values)
    if numbers is None:
        return "binary" if len({category_label(v) for v in pd.unique(values)}) <= 2 else "multiclass"
    n_distinct = numbers.nunique()
    whole = bool(np.all(numbers.to_numpy() == np.round(numbers.to_numpy())))
    if n_distinct <= 2:
        return "binary"
    if whole and n_distinct <= MAX_NUMERIC_CLASSES and n_distinct * 5 <= len(numbers):
        return "multiclass"
    return "regression"


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The values as floats when they are numbers (or ≥95% of them are numbers written as text)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(values) or values.empty:
        return None
    sample = values.sample(n=SAMPLE_ROWS, random_state=0) if len(values) > SAMPLE_ROWS else values
    if pd.to_numeric(sample.astype(str).str.strip(), errors="coerce").notna().mean() < 0.95:
        return None
    return pd.to_numeric(values.astype(str).str.strip(), errors="coerce").dropna().astype("float64")


def label_series(y: pd.Series) -> pd.Series:
    """Canonical string labels, so ``"1"``, ``1`` and ``1.0`` are one class; missing stays missing."""
    labels = {value: category_label(value) for value in pd.unique(y.dropna())}  # each distinct value once
    return y.map(labels).astype("str")


def natural_classes(labels: pd.Series) -> tuple[str, ...]:
    """Distinct labels, numerically sorted when all are numbers ("2" before "10"), else alphabetically."""
    distinct = [str(v) for v in pd.unique(labels.dropna())]
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct, key=lambda s: (s.casefold(), s)))


# --- the prepared table ------------------------------------------------------------------------

def prepare(data: TableData, target: str | None = None,
            roles: Mapping[str, str] | None = None) -> Prepared:
    """The table made ready for a model: target checked, task known, columns given roles.

    ``roles`` are the user's overrides (column → one of ``USER_ROLES``); "ignore" drops a column.
    Raises ``DataError`` with what to do when the table cannot be learned from as chosen.
    """
    frame = data.frame
    target = guess_target(frame) if target is None else target
    _check_target_exists(frame, target)
    y_raw = _blank_to_missing(frame[target])
    if y_raw.isna().all():
        raise DataError(f"The target column '{target}' is empty in every row. Pick a column that holds the "
                        "values you want to predict.")
    task = detect_task(y_raw)
    y = pd.to_numeric(y_raw, errors="coerce").astype("float64") if task == "regression" else label_series(y_raw)
    keep = y.notna().to_numpy()
    n_dropped = int((~keep).sum())
    messages = [_dropped_rows_message(n_dropped, len(frame), target, task)] if n_dropped else []
    if n_dropped:
        frame, y = frame.loc[keep].reset_index(drop=True), y.loc[keep].reset_index(drop=True)
    _check_rows(len(y), target)
    frame, y, sampled = _within_row_limit(frame, y, target, task)
    messages += sampled
    classes: tuple[str, ...] = ()
    if task != "regression":
        classes = natural_classes(y)
        _check_classes(y, classes, target)
    columns = _apply_overrides(infer_columns(frame, target), roles or {}, target)
    _check_columns(columns, target)
    messages += [f"Not used: '{c.name}' ({c.reason})." for c in columns if not c.used]
    used = [c.name for c in columns if c.used]
    return Prepared(X=frame[used], y=y.rename(target), task=task, target=target, classes=classes,
                    columns=columns, messages=tuple(messages), n_rows_dropped=n_dropped)


def _within_row_limit(frame: pd.DataFrame, y: pd.Series, target: str, task: Task
                      ) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """A table past the row limit (``core.sample_limit``) cut to a stratified sample, with its notice."""
    limit = row_limit(int(frame.memory_usage(deep=False).sum()), len(frame))
    if len(frame) <= limit.rows:
        return frame, y, []
    keep = sample_rows(y, task, limit.rows)
    notice = sample_notice(len(frame), len(keep), limit, target, task)
    return frame.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True), [notice]


def _check_target_exists(frame: pd.DataFrame, target: str) -> None:
    if target in frame.columns:
        return
    names = [str(c) for c in frame.columns]
    listed = ", ".join(f"'{n}'" for n in names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    raise DataError(f"There is no column named '{target}'. Pick the target from the table's columns: {listed}.")


def _blank_to_missing(col: pd.Series) -> pd.Series:
    """Text cells holding only spaces count as missing, like empty cells."""
    if not (pd.api.types.is_string_dtype(col) or pd.api.types.is_object_dtype(col)):
        return col
    is_text = col.map(type).eq(str) if pd.api.types.is_object_dtype(col) else col.notna()
    blank = is_text & col.where(is_text).str.strip().eq("").fillna(False).astype(bool)
    return col.mask(blank) if blank.any() else col


def _dropped_rows_message(n_dropped: int, n_rows: int, target: str, task: Task) -> str:
    what = "is empty or not a number" if task == "regression" else "is empty"
    return f"Left out {n_dropped:,} of {n_rows:,} rows where '{target}' {what}; a model cannot learn from them."


def _check_rows(n_rows: int, target: str) -> None:
    if n_rows < MIN_ROWS:
        raise DataError(f"Only {n_rows} row{'s' if n_rows != 1 else ''} have a value in '{target}'; Trainboard "
                        f"needs at least {MIN_ROWS} to learn from and to check what it learned. Add more rows.")


def _check_classes(y: pd.Series, classes: tuple[str, ...], target: str) -> None:
    if len(classes) < 2:
        raise DataError(f"The target column '{target}' has only one value ('{_shorten(classes[0])}'). Pick a "
                        "column with at least two classes.")
    counts = y.value_counts()
    rare = [c for c in classes if counts[c] < 2]
    if not rare:
        return
    shown = ", ".join(f"'{_shorten(c)}'" for c in rare[:5]) + (f" and {len(rare) - 5} more" if len(rare) > 5 else "")
    if len(rare) == 1:
        problem = f"The class {shown} of '{target}' has only {counts[rare[0]]} row"
    else:
        problem = f"{len(rare)} classes of '{target}' have only one row each ({shown})"
    raise DataError(f"{problem}; each class needs at least 2 rows to learn from and to check. Remove those "
                    "rows, add more examples, or pick another target.")


def _apply_overrides(columns: tuple[ColumnInfo, ...], roles: Mapping[str, str], target: str) -> tuple[ColumnInfo, ...]:
    known = {c.name for c in columns}
    for name, role in roles.items():
        if role not in USER_ROLES:
            raise ValueError(f"role {role!r} for column {name!r} is not one of {USER_ROLES}")
        if name not in known and name != target:
            raise DataError(f"There is no column named '{name}' to set a role for. Load the table again and "
                            "choose the roles from its columns.")
    return tuple(_override(c, roles[c.name]) if c.name in roles else c for c in columns)


def _override(column: ColumnInfo, role: str) -> ColumnInfo:
    reason = "ignored by you" if role == "ignore" else f"set to {role} by you"
    return ColumnInfo(name=column.name, role=role, reason=reason, dtype=column.dtype,
                      n_unique=column.n_unique, n_missing=column.n_missing)


def _check_columns(columns: tuple[ColumnInfo, ...], target: str) -> None:
    if not any(c.used for c in columns):
        why = "; ".join(f"'{c.name}': {c.reason}" for c in columns[:6]) or "the table has no other column"
        raise DataError(f"No column is left to learn '{target}' from ({why}). Pick another target, or set a "
                        "column's role by hand.")
    width = encoded_width(columns)
    if width > MAX_ENCODED_WIDTH:
        widest = sorted((c for c in columns if c.used), key=lambda c: -encoded_width([c]))[:3]
        names = ", ".join(f"'{c.name}'" for c in widest)
        raise DataError(f"These columns would become {width:,} model inputs, more than the {MAX_ENCODED_WIDTH:,} "
                        f"Trainboard can handle. Set some columns to 'ignore' (the widest: {names}).")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def label_index(labels, classes: tuple[str, ...]) -> np.ndarray:
    """Each label's position in ``classes``, labels compared as text (as the classes are).
    Vectorised: a Python loop over 800k training labels cost 90 MB of string objects."""
    text = pd.Series(labels, copy=False).astype(str)
    index = pd.Index(list(classes), dtype=object).get_indexer(text)
    if (index < 0).any():
        raise KeyError(f"label {text[index < 0].iloc[0]!r} is not one of the classes {classes}")
    return index.astype(np.int64)
