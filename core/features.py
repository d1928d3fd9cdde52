"""Turning raw table columns into model inputs, always inside the model's own Pipeline.

Every transformer here is fitted on the training split only (it sits in the Pipeline that is
fitted), and the saved pipeline takes the raw columns a user uploads. Two flavours:

* ``dense_preprocessor``: imputed + scaled numbers, one-hot categories, date features (parts,
  elapsed days, days between dates), word and character n-gram TF-IDF of text (kept sparse) —
  for linear models and the MLP.
* ``tree_preprocessor``: numbers as they are (trees handle NaN), ordinal-coded categories the
  booster treats natively, target-encoded high-cardinality categories, the same date features,
  and text *stacked*: a linear model on the text's TF-IDF whose scores become a few features,
  out-of-fold on the training rows (``TextStack``), so they never leak the target.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from core.types import ColumnInfo, Task

#: One-hot keeps at most this many columns per categorical column (rarer values share one).
ONE_HOT_MAX = 30
#: TF-IDF vocabulary per text column: this many words and word pairs, and as many character pieces.
TEXT_MAX_FEATURES = 1000
TEXT_CHAR_FEATURES = 1000
#: The dense models' inputs stay a sparse matrix when text makes them less than this share non-zero.
DENSE_SPARSE_THRESHOLD = 0.3
#: Character pieces of this many letters, within words (a word's start and end count as letters).
#: 2–5 scored the same on the review benchmark; in a vocabulary of 1,000 the frequent 2-letter
#: pieces would crowd out longer, more telling ones.
TEXT_CHAR_NGRAMS = (3, 5)
#: The text vocabulary is counted on at most this many rows (a seeded sample): counting every
#: distinct word pair and character piece of a huge table before pruning would cost gigabytes.
TEXT_VOCAB_ROWS = 50_000
#: Trees get a text column as the scores of a linear model fitted on its TF-IDF; on the training
#: rows each score comes from the model of the fold that did not see that row...
TEXT_STACK_FOLDS = 5
#: ...beside this many TF-IDF components, learnt without the target (a summary of what the text is
#: about, for interactions the linear score cannot carry): +0.005 AUC on the review benchmark.
TEXT_STACK_COMPONENTS = 8
#: Each stacked linear model learns from at most this many rows (a seeded sample of its fold):
#: more barely changes a 2,000-term model and would make a million-row fit minutes longer.
TEXT_STACK_ROWS = 100_000
#: The regularisation is chosen on at most this many rows, then used on all of them.
TEXT_STACK_TUNE_ROWS = 20_000
#: The stacked model's regularisation is chosen on the same folds, from the strongest on: the
#: logistic regression's C (inverse strength), then ridge's alpha. It matters: on a noisy review
#: table the boosted model's AUC went 0.86 → 0.81 from C = 0.3 to C = 10.
TEXT_STACK_CS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TEXT_STACK_ALPHAS = (100.0, 30.0, 10.0, 3.0, 1.0, 0.3)
#: The stacked logistic regression's solver and iterations (an unconverged fit still scores well).
#: Newton-CG, warm-started along the strengths, took a third to a sixth of L-BFGS's time here.
TEXT_STACK_SOLVER = "newton-cg"
TEXT_STACK_MAX_ITER = 300
#: TF-IDF components per text column in ``TextComponents`` (pipelines saved before stacking).
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
            width += TEXT_MAX_FEATURES + TEXT_CHAR_FEATURES
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
        return parse_dates(col)
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
    return parse_dates(col)


def parse_dates(values: pd.Series) -> pd.Series:
    """Values written as dates → datetimes, anything unreadable missing. Dates with different UTC
    offsets (or some with and some without one) are put on UTC: pandas refuses to mix them."""
    try:
        return pd.to_datetime(values, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return pd.to_datetime(values, errors="coerce", format="mixed", utc=True)


def _days_since_1970(dates: pd.Series) -> np.ndarray:
    """Fractional days since 1970-01-01 (UTC for dates with a time zone); NaN where missing."""
    epoch = _EPOCH.tz_localize("UTC") if getattr(dates.dt, "tz", None) is not None else _EPOCH
    return ((dates - epoch) / pd.Timedelta(days=1)).to_numpy(dtype="float64", na_value=np.nan)


def _documents(X) -> np.ndarray:
    """One text column (a Series, a one-column frame or array) as an array of strings."""
    values = np.asarray(X, dtype=object)
    if values.ndim == 2:
        values = values[:, 0]
    return pd.Series(values, dtype=object).fillna("").astype(str).to_numpy(dtype=object)


def _text_name(X) -> str:
    if isinstance(X, pd.DataFrame) and X.shape[1]:
        return str(X.columns[0])
    return str(getattr(X, "name", None) or "text")


def _fit_tfidf(make, docs: np.ndarray) -> tuple[object, sp.csr_matrix] | None:
    """A TF-IDF vocabulary (``make(min_df)``) of terms in at least two rows, else of every term,
    and the rows' vectors (one pass); None when the rows hold no term at all (empty strings)."""
    for min_df in (2, 1):
        vectorizer = make(min_df)
        try:
            return vectorizer, vectorizer.fit_transform(docs)
        except ValueError:  # "empty vocabulary", "no terms remain", or one row against min_df=2
            continue
    return None


class CharPieces(BaseEstimator):
    """TF-IDF of character pieces within words: exactly ``TfidfVectorizer(analyzer="char_wb",
    sublinear_tf=True)`` (``tests/core/test_features_text.py`` compares them), 4–6× faster.
    Pieces never cross words, so a row's counts are the sum of its words' counts: each distinct
    word is cut into pieces once (most words repeat across rows) and a sparse product adds them
    up, where scikit-learn cuts every word of every row in Python (~0.1 ms a row)."""

    def __init__(self, ngram_range: tuple[int, int] = TEXT_CHAR_NGRAMS, max_features: int = TEXT_CHAR_FEATURES,
                 min_df: int = 2) -> None:
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df

    def fit_transform(self, docs, y=None) -> sp.csr_matrix:
        counts, pieces = self._counts(docs, None)
        in_rows = np.bincount(counts.indices, minlength=counts.shape[1])
        total = np.asarray(counts.sum(axis=0)).ravel()
        keep = np.flatnonzero(in_rows >= self.min_df)
        if not keep.size:
            raise ValueError("no terms remain")
        top = keep[np.argsort(-total[keep], kind="stable")[:self.max_features]]  # the most frequent
        top = top[np.argsort(pieces[top])]  # in alphabetical order, as scikit-learn's
        self.vocabulary_ = {str(p): i for i, p in enumerate(pieces[top])}
        self.tfidf_ = TfidfTransformer(sublinear_tf=True)
        return self.tfidf_.fit_transform(counts[:, top])

    def fit(self, docs, y=None) -> CharPieces:
        self.fit_transform(docs)
        return self

    def transform(self, docs) -> sp.csr_matrix:
        return self.tfidf_.transform(self._counts(docs, self.vocabulary_)[0])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(list(self.vocabulary_), dtype=object)

    def _counts(self, docs, vocabulary: dict | None) -> tuple[sp.csr_matrix, np.ndarray]:
        """Each row's piece counts, and the pieces (all of them when ``vocabulary`` is None)."""
        words = CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=True)
        try:
            per_word = words.fit_transform(docs)
        except ValueError:  # not one word in these rows
            if vocabulary is None:
                raise
            return sp.csr_matrix((len(docs), len(vocabulary)), dtype=np.int64), np.asarray(list(vocabulary))
        chars = CountVectorizer(analyzer="char_wb", ngram_range=tuple(self.ngram_range), lowercase=False,
                                vocabulary=vocabulary)
        pieces = chars.fit_transform(words.get_feature_names_out())
        return (per_word @ pieces).tocsr(), chars.get_feature_names_out()


def sample_positions(n: int, limit: int, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded sample of ``limit`` of ``n`` rows; None when all fit."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


class TextVectors(BaseEstimator, TransformerMixin):
    """Free text → TF-IDF of words and word pairs (``word_features`` of them) beside TF-IDF of
    character pieces of ``char_ngrams`` letters within words (``char_features``), one sparse
    matrix: the pieces let "refunded", "refunds" and "refnud" share most of their features. The
    vocabulary is counted on at most ``vocab_rows`` rows (seeded sample), so memory stays bounded
    on a huge table."""

    def __init__(self, word_features: int = TEXT_MAX_FEATURES, char_features: int = TEXT_CHAR_FEATURES,
                 char_ngrams: tuple[int, int] = TEXT_CHAR_NGRAMS, vocab_rows: int = TEXT_VOCAB_ROWS,
                 seed: int = 0) -> None:
        self.word_features = word_features
        self.char_features = char_features
        self.char_ngrams = char_ngrams
        self.vocab_rows = vocab_rows
        self.seed = seed

    def fit(self, X, y=None) -> TextVectors:
        self._fit(_documents(X), X)
        return self

    def fit_transform(self, X, y=None, **fit_params) -> sp.csr_matrix:
        # The rows that made the vocabulary are vectorised once (the vectorisers are most of the cost).
        docs = _documents(X)
        pick, vectors = self._fit(docs, X)
        if pick is None:
            return self._stack(vectors, len(docs))
        rest = np.setdiff1d(np.arange(len(docs)), pick, assume_unique=True)
        both = sp.vstack([self._stack(vectors, len(pick)), self._transform(docs[rest])], format="csr")
        where = np.empty(len(docs), dtype=np.intp)
        where[np.r_[pick, rest]] = np.arange(len(docs))
        return both[where]

    def transform(self, X) -> sp.csr_matrix:
        return self._transform(_documents(X))

    def _fit(self, docs: np.ndarray, X) -> tuple[np.ndarray | None, list[sp.csr_matrix]]:
        """Learn the vocabularies on (a sample of) the rows: the sample's positions (None: every
        row) and its vectors."""
        self.column_ = _text_name(X)
        pick = sample_positions(len(docs), self.vocab_rows, self.seed)
        sample = docs if pick is None else docs[pick]
        self.vectorizers_, vectors = [], []
        makers = (
            ("word", self.word_features, lambda min_df: TfidfVectorizer(
                sublinear_tf=True, min_df=min_df, max_features=self.word_features, ngram_range=(1, 2))),
            ("char", self.char_features, lambda min_df: CharPieces(
                tuple(self.char_ngrams), self.char_features, min_df)),
        )
        for kind, size, make in makers:
            if size > 0 and (fitted := _fit_tfidf(make, sample)) is not None:
                self.vectorizers_.append((kind, fitted[0]))
                vectors.append(fitted[1])
        return pick, vectors

    def _transform(self, docs: np.ndarray) -> sp.csr_matrix:
        return self._stack([v.transform(docs) for _, v in self.vectorizers_], len(docs))

    @staticmethod
    def _stack(vectors: list[sp.csr_matrix], n_rows: int) -> sp.csr_matrix:
        return sp.hstack(vectors, format="csr") if vectors else sp.csr_matrix((n_rows, 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"{self.column_}_{kind}_{term}" for kind, v in self.vectorizers_
                           for term in v.get_feature_names_out()], dtype=object)


class _Prior:
    """What a text model that learnt nothing scores (no words, one class, too few rows to
    cross-fit): the training rows' class shares, or their mean."""

    def __init__(self, y: np.ndarray, task: Task) -> None:
        if task == "regression":
            self.mean_ = float(np.mean(y)) if len(y) else 0.0
        else:
            self.classes_, counts = np.unique(y, return_counts=True)
            self.shares_ = counts / max(counts.sum(), 1)

    def predict(self, X) -> np.ndarray:
        return np.full(X.shape[0], self.mean_)

    def predict_proba(self, X) -> np.ndarray:
        return np.tile(self.shares_, (X.shape[0], 1))


class TextStack(BaseEstimator, TransformerMixin):
    """Free text for trees, by stacking: a linear model (logistic regression for classes, ridge
    for numbers) learns the target from the text's word and character TF-IDF (``TextVectors``),
    and its scores are the features — one column for a yes/no or numeric target (the second
    class's probability, or the predicted value), one per class otherwise — beside ``components``
    TF-IDF components (a summary of the text, learnt without the target). Each linear model learns
    from at most ``TEXT_STACK_ROWS`` rows, so a huge table costs predictions, not bigger fits.

    No leakage, the pattern of scikit-learn's ``TargetEncoder``: ``fit_transform(X, y)`` on the
    training rows returns *out-of-fold* scores (each row scored by the model of the
    ``folds``-fold split, stratified for classes, that did not see it), and fits the final model
    on all the rows, which ``transform`` uses for new rows. ``fit(X, y).transform(X)`` is therefore
    *not* ``fit_transform(X, y)``: in-sample scores would flatter the text and the trees would
    trust it too much. The linear model's regularisation (``regularisation``: one value, or
    "auto" for the first of ``TEXT_STACK_CS`` / ``TEXT_STACK_ALPHAS`` after which the out-of-fold
    loss gets worse) is chosen on the same folds. ``y`` is on the model's own scale (log for a
    log target).
    """

    def __init__(self, task: Task = "binary", folds: int = TEXT_STACK_FOLDS, components: int = TEXT_STACK_COMPONENTS,
                 regularisation: float | str = "auto", word_features: int = TEXT_MAX_FEATURES,
                 char_features: int = TEXT_CHAR_FEATURES, char_ngrams: tuple[int, int] = TEXT_CHAR_NGRAMS,
                 vocab_rows: int = TEXT_VOCAB_ROWS, max_rows: int = TEXT_STACK_ROWS,
                 tune_rows: int = TEXT_STACK_TUNE_ROWS, seed: int = 0) -> None:
        self.task = task
        self.folds = folds
        self.components = components
        self.regularisation = regularisation
        self.word_features = word_features
        self.char_features = char_features
        self.char_ngrams = char_ngrams
        self.vocab_rows = vocab_rows
        self.max_rows = max_rows
        self.tune_rows = tune_rows
        self.seed = seed

    def fit(self, X, y=None) -> TextStack:
        self.fit_transform(X, y)  # the regularisation is chosen on out-of-fold scores either way
        return self

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        if y is None:
            raise ValueError("TextStack learns from the target: fit it with y.")
        y = np.asarray(y, dtype=float) if self.task == "regression" else np.asarray(y)
        self.column_ = _text_name(X)
        self.vectors_ = TextVectors(self.word_features, self.char_features, self.char_ngrams, self.vocab_rows,
                                    self.seed)
        words = self.vectors_.fit_transform(X)
        self.classes_ = None if self.task == "regression" else np.unique(y)
        self.svd_ = None
        if 0 < self.components < min(words.shape):  # a handful of rows has no summary worth the name
            self.svd_ = TruncatedSVD(n_components=self.components, random_state=self.seed).fit(words)
        scores, self.regularisation_ = self._out_of_fold(words, y)
        self.model_ = self._linear(words, y, np.arange(len(y)), self.regularisation_)
        return self._output(scores, words)

    def transform(self, X) -> np.ndarray:
        words = self.vectors_.transform(X)
        return self._output(self._scores(self.model_, words), words)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        name = self.column_
        if self.classes_ is None or len(self.classes_) <= 2:
            names = [f"{name}_text_score"]
        else:
            names = [f"{name}_text_score_{c}" for c in self.classes_]
        return np.asarray(names + [f"{name}_text_{i}" for i in range(self._n_components())], dtype=object)

    def _n_components(self) -> int:
        return self.svd_.n_components if self.svd_ is not None else 0

    def _grid(self) -> tuple[float, ...]:
        if self.regularisation != "auto":
            return (float(self.regularisation),)
        return TEXT_STACK_ALPHAS if self.task == "regression" else TEXT_STACK_CS

    def _linear(self, words: sp.csr_matrix, y: np.ndarray, rows: np.ndarray, strength: float, warm=None):
        """The linear model on these rows (at most ``max_rows`` of them, a seeded sample); ``warm``:
        the same fold's model at the previous strength, refitted from its weights (logistic
        regression)."""
        if (pick := sample_positions(len(rows), self.max_rows, self.seed)) is not None:
            rows = rows[pick]
        words, y = words[rows], y[rows]
        if words.shape[1] == 0 or (self.task != "regression" and len(np.unique(y)) < 2):
            return _Prior(y, self.task)
        if self.task == "regression":
            return Ridge(alpha=strength).fit(words, y)
        model = warm if isinstance(warm, LogisticRegression) else LogisticRegression(
            solver=TEXT_STACK_SOLVER, max_iter=TEXT_STACK_MAX_ITER, warm_start=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # an unconverged model still scores well
            return model.set_params(C=strength).fit(words, y)

    def _splitter(self, y: np.ndarray):
        """The folds for out-of-fold scores, or None when there are too few rows to hold any out."""
        if self.task == "regression":
            k = min(self.folds, len(y))
            return KFold(k, shuffle=True, random_state=self.seed) if k >= 2 else None
        counts = np.unique(y, return_counts=True)[1]
        k = min(self.folds, int(counts.max(initial=0)))
        if k < 2 or len(counts) < 2:
            return None
        return StratifiedKFold(k, shuffle=True, random_state=self.seed)

    def _out_of_fold(self, words: sp.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Each training row's score from the fold model that did not see it, at the chosen
        strength, and that strength (chosen on at most ``tune_rows`` rows)."""
        grid = self._grid()
        tune = sample_positions(len(y), self.tune_rows, self.seed)
        if tune is not None and len(grid) > 1:
            _, strength = self._search(words[tune], y[tune], grid)
            grid = (strength,)
        return self._search(words, y, grid)

    def _search(self, words: sp.csr_matrix, y: np.ndarray, grid: tuple[float, ...]) -> tuple[np.ndarray, float]:
        """Out-of-fold scores at each strength of ``grid`` in turn, until one does worse than the
        one before: the best scores and their strength."""
        splitter = self._splitter(y)
        if splitter is None:
            return self._scores(_Prior(y, self.task), words), grid[len(grid) // 2]  # too few rows to choose
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "the least populated class has only n members"
            folds = list(splitter.split(np.zeros((len(y), 1)), y))
        models: list = [None] * len(folds)
        best: tuple[float, float, np.ndarray] | None = None
        for strength in grid:
            full = None
            for f, (train, held_out) in enumerate(folds):
                models[f] = self._linear(words, y, train, strength, warm=models[f])
                part = self._full_scores(models[f], words[held_out])
                full = np.empty((len(y), part.shape[1])) if full is None else full
                full[held_out] = part
            loss = self._loss(full, y)
            if best is not None and loss >= best[0]:
                break  # past the best: weaker regularisation only overfits more
            best = (loss, strength, full)
        return self._from_full(best[2]), best[1]

    def _loss(self, full: np.ndarray, y: np.ndarray) -> float:
        if self.task == "regression":
            return float(np.mean((full[:, 0] - y) ** 2))
        picked = full[np.arange(len(y)), np.searchsorted(self.classes_, y)]
        return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))

    def _full_scores(self, model, words: sp.csr_matrix) -> np.ndarray:
        """Predicted value (one column), or every class's probability in ``classes_`` order."""
        if self.task == "regression":
            return np.asarray(model.predict(words), dtype=float).reshape(-1, 1)
        proba = np.zeros((words.shape[0], len(self.classes_)))
        # A fold may lack a rare class: its probability there is 0.
        proba[:, np.searchsorted(self.classes_, model.classes_)] = model.predict_proba(words)
        return proba

    def _from_full(self, full: np.ndarray) -> np.ndarray:
        # Two classes: the second one's probability says it all.
        return full[:, -1:] if self.task != "regression" and len(self.classes_) <= 2 else full

    def _scores(self, model, words: sp.csr_matrix) -> np.ndarray:
        return self._from_full(self._full_scores(model, words))

    def _output(self, scores: np.ndarray, words: sp.csr_matrix) -> np.ndarray:
        if self.svd_ is None:
            return scores
        return np.hstack([scores, self.svd_.transform(words)])


class TextComponents(BaseEstimator, TransformerMixin):
    """Legacy (pipelines saved before ``TextStack`` and ``TextVectors`` unpickle through it):
    free text → TF-IDF → a few dense components. A small vocabulary is passed through dense."""

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
    """Raw columns → a float matrix: impute + scale numbers, one-hot categories, date features,
    word and character TF-IDF of text. For linear models and the MLP. A dense array, or a sparse
    matrix when text makes it mostly zeros (``DENSE_SPARSE_THRESHOLD``)."""
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
        parts.append((f"text_{name}", TextVectors(TEXT_MAX_FEATURES, TEXT_CHAR_FEATURES, TEXT_CHAR_NGRAMS,
                                                  TEXT_VOCAB_ROWS), name))
    # Sparse out when there is text (its vectors are ~95% zeros): 100k reviews took 190 MB where
    # the old dense 1,000 word columns took 1.2 GB. Linear models fit sparse rows as they are, the
    # MLP makes its float32 batches from them, importance goes through the whole pipeline. Without
    # text no part is sparse and the output is a dense array as before.
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=DENSE_SPARSE_THRESHOLD)
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
        # Its cross-fitting folds seeded: unseeded, two fits of the same plan encoded differently.
        folds = (KFold if task == "regression" else StratifiedKFold)(5, shuffle=True, random_state=seed)
        parts.append(("high_cardinality", make_pipeline(
            SimpleImputer(strategy="constant", fill_value="(missing)"),
            TargetEncoder(target_type=target_type, cv=folds)), high))
    if names := _by_role(columns, "datetime"):
        parts.append(("datetime", DateParts(), names))
    for name in _by_role(columns, "text"):
        # ColumnTransformer fits each part with fit_transform(X, y): the stacked scores of the
        # training rows are out-of-fold (TextStack).
        parts.append((f"text_{name}", TextStack(
            task, TEXT_STACK_FOLDS, TEXT_STACK_COMPONENTS, word_features=TEXT_MAX_FEATURES,
            char_features=TEXT_CHAR_FEATURES, char_ngrams=TEXT_CHAR_NGRAMS, vocab_rows=TEXT_VOCAB_ROWS,
            max_rows=TEXT_STACK_ROWS, tune_rows=TEXT_STACK_TUNE_ROWS, seed=seed), name))
    categorical_idx = list(range(len(numeric), len(numeric) + len(low)))
    # A frame out, not an array: the numbers pass through as the input's own columns and the model
    # makes its one float matrix from them. An array out copied them twice more (selection, then
    # stacking): 256 MB transient on a million rows × 20.
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    transformer.set_output(transform="pandas")
    return Pipeline([("cast", _caster(columns)), ("encode", transformer)]), categorical_idx
