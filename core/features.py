"""Turning raw table columns into model inputs, always inside the model's own Pipeline.

Every transformer here is fitted on the training split only (it sits in the Pipeline that is
fitted), and the saved pipeline takes the raw columns a user uploads. Two flavours:

* ``dense_preprocessor``: imputed + scaled numbers, one-hot categories, date features (parts,
  elapsed days, days between dates), TF-IDF text — for linear models and the MLP.
* ``tree_preprocessor``: numbers as they are (trees handle NaN), ordinal-coded categories the
  booster treats natively, target-encoded high-cardinality categories, the same date features, and text
  reduced to a few dense TF-IDF components.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from core.types import ColumnInfo, Task

#: One-hot keeps at most this many columns per categorical column (rarer values share one).
ONE_HOT_MAX = 30
#: TF-IDF vocabulary per text column for dense models.
TEXT_MAX_FEATURES = 1000
#: Dense TF-IDF components per text column for trees.
TEXT_TREE_COMPONENTS = 32
#: Parts a datetime column becomes, besides its days since 1970 (``elapsed_days``).
DATE_PARTS = ("year", "month", "day", "day_of_week", "day_of_year")
#: Days between each pair of dates, among the first this many date columns (45 pairs at most).
DATE_PAIR_COLUMNS = 10
_EPOCH = pd.Timestamp("1970-01-01")
#: HistGradientBoosting's native categorical support refuses more categories than this.
NATIVE_CATEGORY_LIMIT = 255
#: Above this many model inputs after encoding, we refuse the table (memory and time explode).
MAX_ENCODED_WIDTH = 20_000


def encoded_width(columns: Sequence[ColumnInfo]) -> int:
    """How many model inputs the dense encoding makes of these columns (an upper bound)."""
    width = 0
    for col in columns:
        if col.role == "numeric":
            width += 2  # value + missing indicator
        elif col.role == "categorical":
            width += min(col.n_unique + 1, ONE_HOT_MAX + 1)
        elif col.role == "datetime":
            width += len(DATE_PARTS) + 1  # + elapsed days
        elif col.role == "text":
            width += TEXT_MAX_FEATURES
    return width + date_pairs(sum(1 for c in columns if c.role == "datetime"))


def date_pairs(n_dates: int) -> int:
    """How many day differences a table with ``n_dates`` date columns gets."""
    k = min(n_dates, DATE_PAIR_COLUMNS)
    return k * (k - 1) // 2


class ColumnCaster(BaseEstimator, TransformerMixin):
    """Casts each column to the type its role needs, the same way at fit and predict time.

    Uploaded files are messy: numbers stored as text, labels mixing ``1`` and ``"1"``, dates in
    strings. Doing the cast inside the pipeline means new data at prediction time gets it too.
    """

    def __init__(self, roles: dict[str, str] | None = None) -> None:
        self.roles = roles

    def fit(self, X: pd.DataFrame, y=None) -> ColumnCaster:
        self.feature_names_in_ = np.asarray(list(self.roles or {}), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for name, role in (self.roles or {}).items():
            col = X[name] if name in X.columns else pd.Series(np.nan, index=X.index)
            out[name] = cast_column(col, role)
        return pd.DataFrame(out, index=X.index, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(list(self.roles or {}), dtype=object)


def cast_column(col: pd.Series, role: str) -> pd.Series:
    """One column cast for its role: numbers to float, categories to strings, dates to datetimes."""
    if role == "numeric":
        if col.dtype == np.float64:
            return col  # no copy: a million-row table's numbers are most of its memory
        if pd.api.types.is_bool_dtype(col):
            return col.astype("float64")
        return pd.to_numeric(col, errors="coerce").astype("float64")
    if role == "datetime":
        if pd.api.types.is_datetime64_any_dtype(col):
            return col
        return pd.to_datetime(col, errors="coerce", format="mixed")
    if role == "categorical":
        # Label each distinct value once and index by code: a Python call per cell cost 0.9 s and
        # 400 MB at 900k rows (a million rows rarely hold more than a few thousand values).
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        labels = np.array([category_label(v) for v in uniques] + [np.nan], dtype=object)
        return pd.Series(labels[codes], index=col.index, name=col.name)
    if role == "text":
        return col.fillna("").astype(str)
    raise ValueError(f"no cast for role {role!r}")


def category_label(value) -> str:
    """A category's canonical text: ``1``, ``1.0`` and ``"1"`` all become ``"1"``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    if len(text) > 1 and text[0] == "0" and text[1].isdigit():
        return text  # a code such as "007": its zeros matter
    try:
        number = float(text)
    except ValueError:
        return text
    if np.isfinite(number) and number.is_integer() and text.lstrip("+-").replace(".", "", 1).isdigit():
        return str(int(number))
    return text


class DateParts(BaseEstimator, TransformerMixin):
    """Datetime columns → numbers a model can use: each date's parts (year, month, day, weekday,
    day of year: seasons), its days since 1970 (``elapsed_days``: trends over time), and the days
    between each pair of dates (``shipped_minus_ordered_days``: durations). Missing dates give NaN.
    """

    def fit(self, X, y=None) -> DateParts:
        self.columns_ = list(pd.DataFrame(X).columns)
        self.pairs_ = list(combinations(range(min(len(self.columns_), DATE_PAIR_COLUMNS)), 2))
        return self

    def transform(self, X) -> np.ndarray:
        frame = pd.DataFrame(X)
        legacy = not hasattr(self, "pairs_")  # fitted before elapsed days existed: its model expects parts only
        parts, days = [], []
        for name in frame.columns:
            dates = _as_dates(frame[name])
            for part in DATE_PARTS:
                parts.append(getattr(dates.dt, part).astype("float64").to_numpy())
            if not legacy:
                days.append(_days_since_1970(dates))
                parts.append(days[-1])
        for i, j in [] if legacy else self.pairs_:
            parts.append(days[j] - days[i])
        return np.column_stack(parts) if parts else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        parts = (*DATE_PARTS, "elapsed_days") if hasattr(self, "pairs_") else DATE_PARTS
        names = [f"{c}_{p}" for c in self.columns_ for p in parts]
        names += [f"{self.columns_[j]}_minus_{self.columns_[i]}_days" for i, j in getattr(self, "pairs_", [])]
        return np.asarray(names, dtype=object)


def _as_dates(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    return pd.to_datetime(col, errors="coerce", format="mixed")


def _days_since_1970(dates: pd.Series) -> np.ndarray:
    """Fractional days since 1970-01-01 (UTC for dates with a time zone); NaN where missing."""
    epoch = _EPOCH.tz_localize("UTC") if getattr(dates.dt, "tz", None) is not None else _EPOCH
    return ((dates - epoch) / pd.Timedelta(days=1)).to_numpy(dtype="float64", na_value=np.nan)


class TextComponents(BaseEstimator, TransformerMixin):
    """Free text → TF-IDF → a few dense components (trees can't use a sparse vocabulary well).
    A small vocabulary is passed through dense as it is."""

    def __init__(self, components: int = TEXT_TREE_COMPONENTS, seed: int = 0) -> None:
        self.components = components
        self.seed = seed

    def fit(self, X, y=None) -> TextComponents:
        self.column_ = str(getattr(X, "name", None) or "text")
        self.tfidf_ = TfidfVectorizer(max_features=TEXT_MAX_FEATURES, sublinear_tf=True, min_df=2)
        try:
            words = self.tfidf_.fit_transform(X)
        except ValueError:  # no word appears twice: fall back to every word
            self.tfidf_ = TfidfVectorizer(max_features=TEXT_MAX_FEATURES, sublinear_tf=True)
            words = self.tfidf_.fit_transform(X)
        self.svd_ = None
        if words.shape[1] > self.components:
            self.svd_ = TruncatedSVD(n_components=self.components, random_state=self.seed).fit(words)
        return self

    def transform(self, X) -> np.ndarray:
        words = self.tfidf_.transform(X)
        return self.svd_.transform(words) if self.svd_ is not None else words.toarray()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        name = getattr(self, "column_", "text")
        width = self.svd_.n_components if self.svd_ is not None else len(self.tfidf_.vocabulary_)
        return np.asarray([f"{name}_{i}" for i in range(width)], dtype=object)


def _by_role(columns: Sequence[ColumnInfo], role: str) -> list[str]:
    return [c.name for c in columns if c.used and c.role == role]


def _caster(columns: Sequence[ColumnInfo]) -> ColumnCaster:
    return ColumnCaster({c.name: c.role for c in columns if c.used})


def dense_preprocessor(columns: Sequence[ColumnInfo]) -> Pipeline:
    """Raw columns → a dense float matrix: impute + scale numbers, one-hot categories,
    date parts, TF-IDF text. For linear models and the MLP."""
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                            StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)", keep_empty_features=True),
        OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=ONE_HOT_MAX,
                      sparse_output=False, dtype=np.float32),
    )
    dates = make_pipeline(DateParts(), SimpleImputer(strategy="median", keep_empty_features=True),
                          StandardScaler())
    parts: list[tuple] = []
    if names := _by_role(columns, "numeric"):
        parts.append(("numeric", numeric, names))
    if names := _by_role(columns, "categorical"):
        parts.append(("categorical", categorical, names))
    if names := _by_role(columns, "datetime"):
        parts.append(("datetime", dates, names))
    for name in _by_role(columns, "text"):
        # A scalar column name hands the vectorizer a 1-D column of strings, as it expects.
        parts.append((f"text_{name}", TextComponents(components=TEXT_MAX_FEATURES), name))
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("cast", _caster(columns)), ("encode", transformer)])


def tree_preprocessor(columns: Sequence[ColumnInfo], task: Task, seed: int = 0) -> tuple[Pipeline, list[int]]:
    """Raw columns → a float matrix for histogram gradient boosting and forests.

    Returns the pipeline and the output indexes the booster should treat as categorical.
    Categories with at most 255 distinct values are ordinal-coded (native support); more than
    that (names, job titles, raw codes) are target-encoded with internal cross-fitting.
    """
    numeric = _by_role(columns, "numeric")
    low, high = [], []
    for c in columns:
        if c.used and c.role == "categorical":
            (low if c.n_unique <= NATIVE_CATEGORY_LIMIT - 1 else high).append(c.name)
    parts: list[tuple] = []
    if numeric:
        parts.append(("numeric", "passthrough", numeric))
    if low:
        # No max_categories: these columns were chosen for having fewer values than the limit, and
        # its counting cost 1.5 s on 900k rows.
        parts.append(("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                                    encoded_missing_value=np.nan, dtype=np.float64), low))
    if high:
        target_type = "continuous" if task == "regression" else ("binary" if task == "binary" else "multiclass")
        parts.append(("high_cardinality", make_pipeline(
            SimpleImputer(strategy="constant", fill_value="(missing)"),
            TargetEncoder(target_type=target_type)), high))
    if names := _by_role(columns, "datetime"):
        parts.append(("datetime", DateParts(), names))
    for name in _by_role(columns, "text"):
        parts.append((f"text_{name}", TextComponents(seed=seed), name))
    categorical_idx = list(range(len(numeric), len(numeric) + len(low)))
    # A frame out, not an array: the numbers pass through as the input's own columns and the model
    # makes its one float matrix from them. An array out copied them twice more (selection, then
    # stacking): 256 MB transient on a million rows × 20.
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    transformer.set_output(transform="pandas")
    return Pipeline([("cast", _caster(columns)), ("encode", transformer)]), categorical_idx
