"""Data checks before training (DESIGN.md §13): what in the data would mislead a model or its
scores, found before planning, with the evidence and what Trainboard does about it.

Each check gives ``Finding``s: a stable id, a severity (blocker / warning / note), the evidence in
words and numbers with up to five example rows or images, and the action in plain words. Every
automatic action has an opt-out: a leaking column comes back when the user sets its role (the Data
page's "use it anyway", or ``keep_column:<name>`` in ``off``); rows that repeat a training row stay
in validation with ``KEEP_VALID_DUPLICATES`` in ``off``.

Checks are bounded: the column checks look at a random sample past ``SAMPLE_ROWS`` rows, the
single-column scores (leakage, row order) at ``SCORE_ROWS``, and the evidence says so; duplicates
hash every row (a quarter of a second for a million). ``apply_checks`` runs them and takes the
default actions on a prepared table; ``drop_validation_duplicates`` is the job's hook after the split.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.types import ColumnInfo, ImageData, Prepared

Severity = Literal["blocker", "warning", "note"]
SEVERITIES: tuple[Severity, ...] = ("blocker", "warning", "note")

# Stable ids (the manifest, the CLI's JSON and the tests name findings by them).
TARGET_LEAK, SORTED_INDEX = "target_leak", "sorted_index"
DUPLICATE_ROWS, SPLIT_DUPLICATES, CONFLICTING_DUPLICATES = "duplicate_rows", "split_duplicates", "conflicting_duplicates"
ID_LIKE, CONSTANT, MOSTLY_MISSING, MANY_CATEGORIES = "id_like", "constant", "mostly_missing", "many_categories"
NUMBERS_AS_TEXT, MIXED_TYPES, DATE_FORMATS = "numbers_as_text", "mixed_types", "date_formats"
TINY_CLASS, IMBALANCE, MANY_CLASSES, TARGET_ID_LIKE = "tiny_class", "imbalance", "many_classes", "target_id_like"
IMAGE_DUPLICATES, IMAGE_SIZES, UNREADABLE_FILES = "image_duplicates", "image_sizes", "unreadable_files"
CHECK_FAILED = "check_failed"

#: Opt-out keys: ``KEEP_COLUMN + name`` keeps a column the checks would leave out.
KEEP_COLUMN = "keep_column:"
KEEP_VALID_DUPLICATES = "keep_valid_duplicates"

#: Column checks past this many rows look at a random sample of them.
SAMPLE_ROWS = 200_000
#: The single-column scores (leakage, row order) use at most this many rows.
SCORE_ROWS = 20_000
#: Example rows or images a finding carries.
EXAMPLES = 5
#: A column "predicts the target almost perfectly" from this out-of-fold score up…
LEAK_AUC, LEAK_R2 = 0.99, 0.98
#: …while its error is at most a third of the best ordinary column's.
LEAK_ERROR_RATIO = 3.0
#: Classes change between neighbouring rows at most this share of what a shuffled file would give:
#: the file is grouped by class.
GROUPED_CHANGES = 0.2
#: |Spearman| of a number target with the row order from which the file counts as sorted by it.
SORTED_RHO = 0.95
#: |Spearman| of a column with the row order from which it counts along the rows (a counter, a timestamp).
TRACKS_ORDER = 0.99
#: Duplicates count as copies (not the nature of a table with few distinct values) when there are
#: more than this many times the pairs that independent columns would give by chance.
CHANCE_FACTOR = 20.0
#: Rows repeating a training row are dropped from validation unless that would drop more than this share.
MAX_DROP_SHARE = 0.5
MOSTLY_MISSING_SHARE = 0.5
NEAR_CONSTANT_SHARE = 0.99
MIN_VALID_PER_CLASS = 5
MANY_CLASSES_FROM = 100
HEAVY_IMBALANCE = 0.01
#: A share of validation rows (and at least this many rows) from which duplicates are a warning.
DUPLICATE_WARNING_SHARE, DUPLICATE_WARNING_ROWS = 0.01, 5

_ORDER = {s: i for i, s in enumerate(SEVERITIES)}
_FNV = np.uint64(1099511628211)
_MISSING_HASH = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True, eq=False)
class Finding:
    """One thing a check found.

    ``evidence`` says it in words; ``numbers`` holds the figures behind them; ``examples`` up to
    five example rows or images (plain JSON values); ``action`` what Trainboard does about it, in
    words; ``acted`` whether that changed anything (a column left out, rows dropped); ``opt_out``
    the key that turns the action off (None: nothing automatic to undo).
    """

    id: str
    severity: Severity
    title: str
    evidence: str
    action: str
    columns: tuple[str, ...] = ()
    numbers: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Mapping[str, Any], ...] = ()
    acted: bool = False
    opt_out: str | None = None

    def record(self) -> dict[str, Any]:
        """What the manifest and the CLI store: id, severity, columns, evidence, action."""
        return {"id": self.id, "severity": self.severity, "title": self.title, "columns": list(self.columns),
                "evidence": {"text": self.evidence, "numbers": _plain_dict(self.numbers),
                             "examples": [_plain_dict(e) for e in self.examples]},
                "action": self.action, "acted": self.acted, "opt_out": self.opt_out}


# --- running the checks, taking their actions ---------------------------------------------------

def check_table(prepared: Prepared, roles: Mapping[str, str] | None = None, off: Iterable[str] = ()
                ) -> tuple[Finding, ...]:
    """Every table check on ``prepared`` (its used columns and target), most severe first.

    ``roles`` are the user's own column roles (a column they set is never left out); ``off`` the
    opt-out keys the user chose. Pure: nothing is changed, the findings say what would be.
    """
    table = _Table(prepared, dict(roles or {}), frozenset(off))
    order = _guarded("row order", _sorted_index, table)
    tracked = {c for f in order for c in f.columns}
    findings = [*order, *_guarded("leakage", _leaks, table, tracked), *_guarded("duplicates", _duplicates, table),
                *_guarded("columns", _columns, table), *_guarded("target", _target, table)]
    return _ranked(findings)


def _guarded(name: str, check, *args) -> list[Finding]:
    """A check that fails (a bug, or data no check foresaw) becomes a note; it never stops training."""
    try:
        return check(*args)
    except Exception as err:  # noqa: BLE001 - any failure of one check must leave the others and the run
        return [Finding(id=CHECK_FAILED, severity="note", title=f"The {name} check could not run",
                        evidence=f"It stopped with {type(err).__name__}: {_short(err, 200)}.",
                        action="Nothing was changed for it; the other checks ran. Please report this.")]


def check_images(data: ImageData, off: Iterable[str] = ()) -> tuple[Finding, ...]:
    """Every image check: duplicates (perceptual hash), tiny classes, mixed sizes, unreadable files."""
    off = frozenset(off)
    counts, share = _class_counts(data), _valid_share(len(data.labels))
    findings = [*_guarded("duplicates", _image_duplicates, data, off),
                *_guarded("classes", _tiny_classes, counts, "the images", share),
                *_guarded("sizes", _image_sizes, data), *_guarded("files", _unreadable, data)]
    return _ranked(findings)


def apply_checks(data: Prepared | ImageData, roles: Mapping[str, str] | None = None, off: Iterable[str] = ()
                 ) -> Prepared | ImageData:
    """Run the checks and take their default actions: leaking columns are left out (unless the user
    set their role or opted out); the findings ride along in ``checks``. Validation duplicates are
    dropped later, once the rows are split (``drop_validation_duplicates``)."""
    if isinstance(data, ImageData):
        return replace(data, checks=check_images(data, off))
    findings = check_table(data, roles, off)
    leave = [f.columns[0] for f in findings if f.acted and f.id in (TARGET_LEAK, SORTED_INDEX)]
    if leave and len(leave) >= len(data.used_columns):  # never leave nothing to learn from
        findings = tuple(_kept_as_last(f) if f.acted and f.id in (TARGET_LEAK, SORTED_INDEX) else f
                         for f in findings)
        leave = []
    return _leave_out(data, leave, findings) if leave else replace(data, checks=findings)


def _kept_as_last(finding: Finding) -> Finding:
    return replace(finding, acted=False, action="Kept: it is the only column left to learn from. Check where its "
                                                "values come from before trusting the scores.")


def _leave_out(data: Prepared, names: Sequence[str], findings: tuple[Finding, ...]) -> Prepared:
    why = {f.columns[0]: f for f in findings if f.columns and f.columns[0] in names and f.acted}
    columns = tuple(replace(c, role="ignore", reason=_left_out_reason(why[c.name])) if c.name in why else c
                    for c in data.columns)
    messages = data.messages + tuple(f"Not used: '{n}' ({_left_out_reason(why[n])})." for n in names)
    return replace(data, X=data.X.drop(columns=list(names)), columns=columns, messages=messages, checks=findings)


def _left_out_reason(finding: Finding) -> str:
    if finding.id == SORTED_INDEX:
        return "it counts along the rows, and the rows are sorted by the target, so it gives the answer away"
    return (f"alone it predicts the target almost perfectly, {finding.numbers['metric']} "
            f"{finding.numbers['score']:.3f} out of fold: probably a leak")


def drop_validation_duplicates(parts: Any) -> Any:
    """The job's hook after the split: validation rows that repeat a training row exactly (inputs
    and target; identical pixels for images) are dropped, as the data's ``duplicate_rows`` /
    ``image_duplicates`` finding says (not when the user opted out, when repeats are the nature
    of the table, when a handful cannot move the scores, or when that would drop more than half
    of validation). ``parts`` is a
    ``core.training.Split``; the same split comes back, its ``data.checks`` saying what was done."""
    data = parts.data
    plan = next((f for f in data.checks if f.id in (DUPLICATE_ROWS, IMAGE_DUPLICATES)
                 and f.numbers.get("drop_from_validation")), None)
    if plan is None:
        return parts
    repeat = validation_duplicates(parts.X_train, parts.y_train, parts.X_valid, parts.y_valid)
    n_valid, n_repeat = len(repeat), int(repeat.sum())
    if n_repeat == 0:
        return parts
    unit = "images" if isinstance(data, ImageData) else "rows"
    finding = _split_finding(n_repeat, n_valid, unit, opted_out=False, natural=False, split_words="this run's split")
    checks = tuple(f for f in data.checks if f.id != SPLIT_DUPLICATES) + (finding,)
    if not finding.acted:
        return replace(parts, data=replace(data, checks=_ranked(checks)))
    keep = ~repeat
    return replace(parts, X_valid=_take(parts.X_valid, keep), y_valid=_take(parts.y_valid, keep),
                   valid_idx=np.asarray(parts.valid_idx)[keep], data=replace(data, checks=_ranked(checks)))


def validation_duplicates(X_train: Any, y_train: Any, X_valid: Any, y_valid: Any) -> np.ndarray:
    """A mask over the validation rows: True where a row (its inputs and its target) or an image
    (its pixels and class) is identical to one of the training rows."""
    train, valid = _hashes(X_train, y_train), _hashes(X_valid, y_valid)
    return pd.Series(valid).isin(pd.Series(train)).to_numpy()


def _hashes(X: Any, y: Any) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return _mix(_image_hashes(X), _column_hash(pd.Series(np.asarray(y))))
    return _mix(_row_hashes(X), _column_hash(pd.Series(np.asarray(y, dtype=object))))


def _take(values: Any, mask: np.ndarray) -> Any:
    return values.iloc[np.flatnonzero(mask)] if hasattr(values, "iloc") else values[mask]


def summary(findings: Sequence[Finding]) -> str:
    """"3 findings: 1 warning, 2 notes" (or "No findings")."""
    if not findings:
        return "No findings"
    counts = Counter(f.severity for f in findings)
    parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in SEVERITIES if counts[s]]
    return f"{len(findings)} finding{'s' if len(findings) != 1 else ''}: " + ", ".join(parts)


def describe(finding: Finding) -> str:
    """A finding in a few lines of words (the CLI's stderr)."""
    lines = [f"{finding.severity} [{finding.id}] {finding.title}", f"  {finding.evidence}"]
    for example in finding.examples:
        lines.append("    e.g. " + ", ".join(f"{k}={_short(v)}" for k, v in example.items()))
    lines.append(f"  → {finding.action}")
    return "\n".join(lines)


def _ranked(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: _ORDER[f.severity]))


# --- the table, sampled once ---------------------------------------------------------------------

class _Table:
    """What every table check reads: the used columns, the target as codes, the samples."""

    def __init__(self, prepared: Prepared, roles: dict[str, str], off: frozenset[str]) -> None:
        self.prepared, self.roles, self.off = prepared, roles, off
        self.X, self.y, self.task, self.target = prepared.X, prepared.y, prepared.task, prepared.target
        self.n = len(self.X)
        # One shuffle gives both samples (the scored rows are among the sampled ones), in file order.
        order = np.random.default_rng(0).permutation(self.n) if self.n > SCORE_ROWS else None
        self.sample = np.sort(order[:SAMPLE_ROWS]) if self.n > SAMPLE_ROWS else None
        self.scored = np.sort(order[:SCORE_ROWS]) if order is not None else None
        self.classes = prepared.classes
        if self.task == "regression":
            self.codes = None
        else:  # each distinct label looked up once (a million string look-ups cost 0.2 s)
            codes, uniques = pd.factorize(self.y)
            self.codes = pd.Index(list(self.classes), dtype=object).get_indexer(
                np.asarray(uniques, dtype=object).astype(str))[codes]

    @property
    def classification(self) -> bool:
        return self.task != "regression"

    def rows(self, positions: np.ndarray | None) -> np.ndarray:
        return np.arange(self.n) if positions is None else positions

    def sampled(self, col: str) -> pd.Series:
        series = self.X[col]
        return series if self.sample is None else series.iloc[self.sample]

    def parsed(self, col: str) -> pd.Series:
        """The smaller sample the text-parsing checks read (numbers or dates written as text)."""
        series = self.X[col]
        return series if self.scored is None else series.iloc[self.scored]

    def sample_words(self, rows: int = SAMPLE_ROWS) -> str:
        return "" if self.n <= rows else f" (looked at a random {rows:,} of the {self.n:,} rows)"

    def score_words(self) -> str:
        return "" if self.scored is None else f" Scored on a random {SCORE_ROWS:,} of the {self.n:,} rows."

    def kept_by_user(self, name: str) -> bool:
        return name in self.roles or f"{KEEP_COLUMN}{name}" in self.off

    def used(self, *roles: str) -> list[ColumnInfo]:
        return [c for c in self.prepared.used_columns if not roles or c.role in roles]


# --- leakage and row order -----------------------------------------------------------------------

def _leaks(table: _Table, tracked: set[str]) -> list[Finding]:
    """Columns that alone predict the target almost perfectly out of fold, far better than the rest."""
    columns = [c for c in table.used() if c.name not in tracked]
    if not columns:
        return []
    rows = table.rows(table.scored)
    target = _score_target(table, rows)
    bins = int(np.clip(len(rows) // 25, 8, 256))
    scores = {c.name: _single_score(_codes(table.X[c.name].iloc[rows], c.role, bins), target, table) for c in columns}
    threshold, floor = (LEAK_AUC, 0.5) if table.classification else (LEAK_R2, 0.0)
    candidates = {n for n, s in scores.items() if s >= threshold}
    best_other = max((s for n, s in scores.items() if n not in candidates), default=floor)
    leaks = [n for n in candidates if (1 - scores[n]) * LEAK_ERROR_RATIO <= 1 - best_other]
    metric = "ROC AUC" if table.classification else "R²"
    findings = []
    for name in sorted(leaks, key=lambda n: -scores[n]):
        kept = table.kept_by_user(name)
        findings.append(Finding(
            id=TARGET_LEAK, severity="warning", columns=(name,),
            title=f"'{name}' alone predicts '{table.target}' almost perfectly",
            evidence=(f"On its own, out of fold, '{name}' scores {metric} {scores[name]:.3f}; the best ordinary column "
                      f"scores {best_other:.3f}. A column that knows the answer this well is usually a copy or a "
                      "recoding of the target, or filled in after the outcome: a model leaning on it looks perfect "
                      f"here and fails on new rows.{table.score_words()}"),
            numbers={"score": round(scores[name], 4), "metric": metric, "best_other": round(best_other, 4),
                     "rows_scored": len(rows)},
            examples=_pair_examples(table, name), acted=not kept, opt_out=f"{KEEP_COLUMN}{name}",
            action=_column_action(table, name, "Left out of training. If its value is known before the outcome for "
                                               "new rows too, use it anyway on the Data page (or set its role).")))
    return findings


def _sorted_index(table: _Table) -> list[Finding]:
    """The file sorted (or grouped) by the target: harmless to a shuffled split by itself, but a
    column that counts along the rows (a counter, a timestamp) then gives the answer away."""
    rows = table.rows(table.scored)
    if table.classification:
        codes = table.codes
        changes = int(np.count_nonzero(codes[1:] != codes[:-1]))
        shares = np.bincount(codes) / len(codes)
        expected = (len(codes) - 1) * (1 - float(np.sum(shares**2)))
        ratio = changes / expected if expected else 1.0
        if ratio > GROUPED_CHANGES:
            return []
        how = (f"its class changes only {changes:,} times from one row to the next, where a shuffled file would "
               f"change about {expected:,.0f} times")
        numbers: dict[str, Any] = {"class_changes": changes, "expected_if_shuffled": round(expected, 1)}
    else:
        rho = _spearman(table.y.to_numpy()[rows], rows)
        if abs(rho) < SORTED_RHO:
            return []
        how = f"its values rise and fall with the row number (Spearman {rho:+.2f})"
        numbers = {"spearman_with_row": round(rho, 4)}
    tracks = []
    for column in table.used("numeric", "datetime"):
        values = _as_numbers(table.X[column.name].iloc[rows], column.role)
        ok = np.isfinite(values)
        if ok.mean() >= 0.9 and len(np.unique(values[ok])) > 2:
            rho = _spearman(values[ok], rows[ok])
            if abs(rho) >= TRACKS_ORDER:
                tracks.append((column.name, rho))
    counters = [c.name for c in table.prepared.columns if c.role == "id" and "row number" in c.reason]
    sorted_words = f"The rows are sorted or grouped by '{table.target}': {how}."
    if not tracks:
        extra = f" The row counter {_names(counters)} is already left out." if counters else ""
        return [Finding(
            id=SORTED_INDEX, severity="note", title=f"The file is sorted by '{table.target}'",
            evidence=sorted_words + extra,
            numbers=numbers, acted=False,
            action="Nothing to do: Trainboard shuffles the rows before it splits them, so the order cannot leak. "
                   "A column that counted along the rows would, and would be left out.")]
    findings = []
    for name, rho in tracks:
        findings.append(Finding(
            id=SORTED_INDEX, severity="warning", columns=(name,),
            title=f"'{name}' counts along the rows, and the rows are sorted by '{table.target}'",
            evidence=(f"{sorted_words} '{name}' follows the row order almost exactly (Spearman {rho:+.3f}): a counter "
                      "or a timestamp (or a copy of the target itself) that tells the model where in the file a row "
                      f"sits, and with it the answer.{table.score_words()}"),
            numbers={**numbers, "column_spearman_with_row": round(rho, 4)}, examples=_pair_examples(table, name),
            acted=not table.kept_by_user(name), opt_out=f"{KEEP_COLUMN}{name}",
            action=_column_action(table, name, "Left out of training. If the order is real (new rows come later in "
                                               "time), use it anyway on the Data page.")))
    return findings


def _column_action(table: _Table, name: str, default: str) -> str:
    if name in table.roles:
        return f"Kept, because you set its role to {table.roles[name]}. Its scores may read too high."
    if f"{KEEP_COLUMN}{name}" in table.off:
        return "Kept, because you chose to use it. Its scores may read too high."
    return default


def _score_target(table: _Table, rows: np.ndarray) -> np.ndarray:
    if table.classification:
        return table.codes[rows]
    y = pd.Series(table.y.to_numpy()[rows])
    return y.rank(pct=True).to_numpy()  # ranks: a heavy tail cannot hide a copy of the target


def _single_score(codes: np.ndarray, target: np.ndarray, table: _Table) -> float:
    """Out-of-fold score of one column's codes alone: each code's target share (or mean), learnt
    on the other four folds and smoothed towards the overall share for rare codes."""
    n = len(codes)
    fold = np.random.default_rng(1).integers(0, 5, n)
    n_codes = int(codes.max()) + 1 if n else 1
    if table.classification:
        k = len(table.classes)
        total = np.bincount(codes * k + target, minlength=n_codes * k).reshape(n_codes, k).astype(float)
        prior = np.bincount(target, minlength=k) / n
        out = np.empty((n, k))
        for f in range(5):
            part = fold == f
            other = total - np.bincount(codes[part] * k + target[part], minlength=n_codes * k).reshape(n_codes, k)
            out[part] = ((other + prior) / (other.sum(1, keepdims=True) + 1.0))[codes[part]]
        present = np.unique(target)
        if len(present) < 2:
            return 0.5
        if k == 2:
            return _auc(target == 1, out[:, 1])
        return float(np.mean([_auc(target == c, out[:, c]) for c in present]))  # one-vs-rest, macro
    sums, counts = np.bincount(codes, weights=target, minlength=n_codes), np.bincount(codes, minlength=n_codes)
    prior, out = float(target.mean()), np.empty(n)
    for f in range(5):
        part = fold == f
        s = sums - np.bincount(codes[part], weights=target[part], minlength=n_codes)
        c = counts - np.bincount(codes[part], minlength=n_codes)
        out[part] = ((s + prior) / (c + 1.0))[codes[part]]
    spread = float(np.sum((target - target.mean()) ** 2))
    return 1.0 - float(np.sum((target - out) ** 2)) / spread if spread else 0.0


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney; ties count half), as scikit-learn's, without its checks:
    20 columns' worth cost a third of a second there."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = pd.Series(score).rank().to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _codes(col: pd.Series, role: str, bins: int) -> np.ndarray:
    """A column as small integer codes: numbers and dates in quantile bins, categories and text as
    they are; missing values get a code of their own."""
    if role in ("numeric", "datetime"):
        values = _as_numbers(col, role)
        ok = np.isfinite(values)
        distinct = np.unique(values[ok])
        if len(distinct) <= bins:
            codes = np.searchsorted(distinct, values)
        else:
            edges = np.unique(np.quantile(values[ok], np.linspace(0, 1, bins + 1)[1:-1]))
            codes = np.searchsorted(edges, values, side="right")
        top = int(codes[ok].max()) + 1 if ok.any() else 0
        return np.where(ok, codes, top).astype(np.int64)
    codes, _ = pd.factorize(col.astype(object), use_na_sentinel=True)
    return np.where(codes < 0, codes.max() + 1, codes).astype(np.int64)


def _as_numbers(col: pd.Series, role: str) -> np.ndarray:
    from core.features import cast_column

    cast = cast_column(col, role)
    if role == "datetime":
        stamps = pd.to_datetime(cast, errors="coerce")
        numbers = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
        return np.where(stamps.isna().to_numpy(), np.nan, numbers)
    return np.asarray(cast, dtype="float64")


def _spearman(values: np.ndarray, order: np.ndarray) -> float:
    ranks = pd.Series(values).rank().to_numpy()
    if np.std(ranks) == 0 or np.std(order) == 0:
        return 0.0
    return float(np.corrcoef(ranks, pd.Series(order).rank().to_numpy())[0, 1])


def _pair_examples(table: _Table, name: str) -> tuple[dict[str, Any], ...]:
    """A few rows showing the column beside the target, one per target value where possible."""
    positions = table.rows(table.scored)[:2000]
    head = pd.DataFrame({name: table.X[name].iloc[positions].to_numpy(),
                         table.target: table.y.iloc[positions].to_numpy()}, index=positions)
    picked = head.drop_duplicates(subset=[table.target]).head(EXAMPLES)
    if len(picked) < EXAMPLES:
        picked = pd.concat([picked, head.drop(picked.index).head(EXAMPLES - len(picked))])
    return tuple({"row": int(i) + 1, **{k: _plain(v) for k, v in r.items()}} for i, r in picked.iterrows())


# --- duplicates ----------------------------------------------------------------------------------

def _duplicates(table: _Table) -> list[Finding]:
    """Rows repeated exactly; rows that would sit on both sides of the split; same inputs, other target."""
    if table.X.shape[1] == 0:
        return []
    distinct = {c.name: c.n_unique for c in table.prepared.columns}
    names = sorted(table.X.columns, key=lambda name: -distinct.get(name, 0))
    hashes = {name: _column_hash(table.X[name]) for name in names[:3]}
    # When the most varied columns already tell every row apart, no two rows can agree in all of
    # them (nor share all their inputs): the other columns need no hashing (half the cost at 1M rows).
    if not pd.Series(_combine(list(hashes.values()))).duplicated().any():
        return []
    column_hashes = [hashes.get(name) if name in hashes else _column_hash(table.X[name]) for name in names]
    inputs = _combine(column_hashes)
    target = _column_hash(table.y)
    rows = _mix(inputs, target)
    in_groups = pd.Series(rows).duplicated(keep=False).to_numpy()
    findings = []
    if in_groups.any():
        findings += _duplicate_findings(table, rows, in_groups, _chance_pairs(table, [*column_hashes, target]))
    same_inputs = pd.Series(inputs).duplicated(keep=False).to_numpy()
    if same_inputs.any():
        findings += _conflicts(table, inputs, target, same_inputs, _chance_pairs(table, column_hashes))
    return findings


def _duplicate_findings(table: _Table, rows: np.ndarray, in_groups: np.ndarray, chance: float) -> list[Finding]:
    sizes = pd.Series(rows[in_groups]).value_counts().to_numpy().astype(float)
    n_repeated = int(sizes.sum() - len(sizes))  # every row of a group but its first
    pairs = float(np.sum(sizes * (sizes - 1) / 2))
    natural = pairs <= CHANCE_FACTOR * chance
    opted_out = KEEP_VALID_DUPLICATES in table.off
    share = n_repeated / table.n
    severity: Severity = "warning" if not natural and share >= 0.1 else "note"
    nature = (f" With so few distinct values per column, about {chance:,.0f} such pairs are expected by chance: "
              "repeats are the nature of this table, not copies." if natural else "")
    found = [Finding(
        id=DUPLICATE_ROWS, severity=severity, title=f"{_count(n_repeated, 'row')} {_verb(n_repeated, 'repeats', 'repeat')} an earlier row exactly",
        evidence=(f"{n_repeated:,} of {table.n:,} rows ({share:.1%}) {_verb(n_repeated, 'is', 'are')} identical to an earlier row in every column the "
                  f"model uses and in '{table.target}'.{nature}"),
        numbers={"repeated_rows": n_repeated, "rows": table.n, "share": round(share, 4), "copies": not natural,
                 "chance_pairs": round(chance, 2), "drop_from_validation": not natural and not opted_out},
        examples=_group_examples(table, rows, in_groups), acted=False,
        opt_out=KEEP_VALID_DUPLICATES if not natural else None,
        action="Kept for training (a repeated row only counts more). Copies that would also sit in validation are "
               + ("dropped from it when there are enough to inflate the scores, unless you keep them." if not natural
                  else "dropped from it, but here they are not copies, so they stay."))]
    valid_repeats, n_valid, split_words = _default_split_repeats(table, rows, sizes)
    if valid_repeats:
        found.append(_split_finding(valid_repeats, n_valid, "rows", opted_out=opted_out, natural=natural,
                                    split_words=split_words, approx=table.n > SAMPLE_ROWS))
    return found


def _split_finding(n_repeat: int, n_valid: int, unit: str, *, opted_out: bool, natural: bool, split_words: str,
                   approx: bool = False) -> Finding:
    """Validation rows repeating a training row: dropped when they are copies, enough to move the
    scores (a warning's worth), at most half of validation, and the user has not opted out."""
    share = n_repeat / n_valid if n_valid else 0.0
    enough = n_repeat >= DUPLICATE_WARNING_ROWS and share >= DUPLICATE_WARNING_SHARE
    severity: Severity = "warning" if not natural and enough else "note"
    too_many = n_repeat > MAX_DROP_SHARE * n_valid
    acted = not natural and enough and not opted_out and not too_many
    if acted:
        action = (f"Dropped from validation: a model scores too well on {unit} it has already seen. To keep them, "
                  "tick 'keep duplicates in validation' on the Data page.")
    elif opted_out:
        action = "Kept in validation, as you chose: the scores may read too high."
    elif natural:
        action = "Kept: such repeats are expected in a table with so few distinct values, not copies."
    elif too_many:
        action = f"Kept: dropping them would remove more than half of the validation {unit}."
    else:
        action = (f"Kept: so few cannot move the scores much (from {DUPLICATE_WARNING_ROWS} {unit} and "
                  f"{DUPLICATE_WARNING_SHARE:.0%} of validation they are dropped from it).")
    return Finding(
        id=SPLIT_DUPLICATES, severity=severity, title=f"{_count(n_repeat, 'validation ' + unit[:-1])} {_verb(n_repeat, 'repeats', 'repeat')} a training {unit[:-1]}",
        evidence=(f"With {split_words}, {'about ' if approx else ''}{n_repeat:,} of the {n_valid:,} validation {unit} "
                  f"({share:.1%}) "
                  f"{_verb(n_repeat, 'is', 'are')} identical "
                  f"to a training {unit[:-1]}, so the model would be judged on answers it has memorised."),
        numbers={"valid_repeats": n_repeat, "valid": n_valid, "share": round(share, 4)},
        acted=acted, opt_out=KEEP_VALID_DUPLICATES, action=action)


def _default_split_repeats(table: _Table, rows: np.ndarray, sizes: np.ndarray) -> tuple[int, int, str]:
    """Validation rows identical to a training row: counted under the automatic split (seed 0), or
    past ``SAMPLE_ROWS`` rows expected from the group sizes (the split itself cost a second at 1M)."""
    share = _valid_share(table.n)
    n_valid = int(round(table.n * share))
    if table.n > SAMPLE_ROWS:
        # A row of a group of g lands in validation with probability f; it repeats a training row
        # unless all g − 1 others land in validation too.
        expected = float(np.sum(sizes * share * (1 - share ** (sizes - 1))))
        return int(round(expected)), n_valid, f"a random {share:.0%} of the rows held out for validation"
    from core.splits import split_rows

    train, valid = split_rows(table.y.to_numpy(), table.task, share, 0)
    repeats = pd.Series(rows[valid]).isin(pd.Series(rows[train])).to_numpy()
    return int(repeats.sum()), len(valid), "the automatic split"


def _conflicts(table: _Table, inputs: np.ndarray, target: np.ndarray, same_inputs: np.ndarray,
               chance: float) -> list[Finding]:
    groups = pd.DataFrame({"inputs": inputs[same_inputs], "target": target[same_inputs]})
    targets_per_group = groups.groupby("inputs", sort=False)["target"].nunique()
    conflicting = targets_per_group.index[targets_per_group.to_numpy() > 1]
    if len(conflicting) == 0:
        return []
    in_conflict = pd.Series(inputs).isin(conflicting).to_numpy()
    n_rows = int(in_conflict.sum())
    natural = _pairs(inputs[same_inputs]) <= CHANCE_FACTOR * chance
    share = n_rows / table.n
    severity: Severity = ("warning" if not natural and n_rows >= DUPLICATE_WARNING_ROWS and share >= 0.01 else "note")
    nature = (" With so few distinct values per column, rows sharing every input are expected here." if natural else "")
    return [Finding(
        id=CONFLICTING_DUPLICATES, severity=severity,
        title=f"{n_rows:,} rows share all their inputs with a row of another '{table.target}'",
        evidence=(f"{len(conflicting):,} groups of rows ({n_rows:,} rows, {share:.1%}) have identical values in every "
                  f"column the model uses but different values of '{table.target}': no model can tell them apart, "
                  f"so some of them are always predicted wrong.{nature}"),
        numbers={"rows": n_rows, "groups": int(len(conflicting)), "share": round(share, 4), "copies": not natural},
        examples=_group_examples(table, inputs, in_conflict, with_targets=True), acted=False,
        action="Kept as they are. If the target was recorded twice differently, fix the file.")]


def _group_examples(table: _Table, keys: np.ndarray, mask: np.ndarray, with_targets: bool = False
                    ) -> tuple[dict[str, Any], ...]:
    """The first few groups: one row of each, which rows hold it, and (conflicts) the targets seen."""
    first_keys = pd.unique(keys[mask])[:EXAMPLES]
    groups = {int(key): np.flatnonzero(keys == key).tolist() for key in first_keys}
    out = []
    columns = list(table.X.columns)[:8]
    for members in groups.values():
        first = members[0]
        row = {c: _plain(table.X[c].iloc[first]) for c in columns}
        row[table.target] = (sorted({str(table.y.iloc[m]) for m in members}) if with_targets
                             else _plain(table.y.iloc[first]))
        out.append({"rows": [m + 1 for m in members[:5]], **row})
    return tuple(out)


def _column_hash(col: pd.Series) -> np.ndarray:
    """A 64-bit hash of each cell, the same for the same value whichever rows are hashed together."""
    if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_datetime64_any_dtype(col.dtype):
        return pd.util.hash_pandas_object(col, index=False).to_numpy()
    # Text: hash each distinct value once (a million Arrow-backed strings hashed one by one cost
    # 0.09 s a column; factorised, 0.07 s, most of it shared with nothing else).
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object)
    try:
        hashed = pd.util.hash_array(values) if len(values) else np.empty(0, dtype=np.uint64)
    except TypeError:  # oddly mixed objects
        hashed = pd.util.hash_array(values.astype(str))
    return np.where(codes < 0, _MISSING_HASH, np.append(hashed, _MISSING_HASH)[codes])


def _combine(hashes: Sequence[np.ndarray]) -> np.ndarray:
    out = np.full(len(hashes[0]), 14695981039346656037, dtype=np.uint64)
    for h in hashes:
        out = (out ^ h) * _FNV
    return out


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _combine([a, b])


def _row_hashes(X: pd.DataFrame) -> np.ndarray:
    if X.shape[1] == 0:
        return np.zeros(len(X), dtype=np.uint64)
    return _combine([_column_hash(X[c]) for c in X.columns])


def _pairs(keys: np.ndarray) -> float:
    counts = pd.Series(keys).value_counts().to_numpy().astype(float)
    return float(np.sum(counts * (counts - 1) / 2))


def _chance_pairs(table: _Table, hashes: Sequence[np.ndarray]) -> float:
    """Pairs of identical rows expected by chance if the columns were independent: the number of
    row pairs times each column's chance that two rows agree (from its value counts)."""
    n = table.n
    if n < 2:
        return 0.0
    log_pairs = np.log(n) + np.log(n - 1) - np.log(2)
    for h in hashes:
        values = h if table.scored is None else h[table.scored]
        counts = pd.Series(values).value_counts().to_numpy().astype(float)
        m = counts.sum()
        agree = float(np.sum(counts * (counts - 1)) / (m * (m - 1))) if m > 1 else 0.0
        if agree == 0.0:
            return 0.0
        log_pairs += np.log(agree)
        if log_pairs < -30:  # already far below one pair: the other columns cannot raise it
            return 0.0
    return float(np.exp(min(log_pairs, 700.0)))


# --- columns -------------------------------------------------------------------------------------

def _columns(table: _Table) -> list[Finding]:
    return [f for f in (_id_like(table), _constant(table), _mostly_missing(table), _many_categories(table),
                        _numbers_as_text(table), _mixed_types(table), _date_formats(table)) if f is not None]


def _id_like(table: _Table) -> Finding | None:
    ids = [c for c in table.prepared.columns if c.role == "id"]
    if not ids:
        return None
    return Finding(
        id=ID_LIKE, severity="note", columns=tuple(c.name for c in ids),
        title=f"{_subject([c.name for c in ids])} {_verb(len(ids), 'looks', 'look')} like an ID",
        evidence="; ".join(f"'{c.name}': {c.reason} ({c.n_unique:,} distinct values)" for c in ids[:EXAMPLES]) + ".",
        numbers={c.name: {"distinct": c.n_unique} for c in ids},
        acted=True, action="Left out: an ID names a row, it says nothing a model could use on new rows. Set its role "
                           "on the Data page to use it anyway.")


def _constant(table: _Table) -> Finding | None:
    constant = [c for c in table.prepared.columns if c.role == "constant"]
    nearly: list[tuple[str, float, str]] = []
    for column in table.used():
        # Nearly one value leaves room for at most 1% of other values: a column with more distinct
        # values than that cannot be nearly constant (no need to count them).
        if column.role == "text" or column.n_unique > (1 - NEAR_CONSTANT_SHARE) * (table.n - column.n_missing) + 1:
            continue
        values = table.sampled(column.name).dropna()
        if len(values) < 20:
            continue
        top = values.value_counts()
        share = float(top.iloc[0]) / len(values)
        if share >= NEAR_CONSTANT_SHARE:
            nearly.append((column.name, share, _short(top.index[0])))
    if not constant and not nearly:
        return None
    parts = [f"'{c.name}' holds one value only" for c in constant]
    parts += [f"'{n}' is '{v}' in {s:.1%} of the rows that have a value" for n, s, v in nearly]
    action = []
    if constant:
        action.append(f"Left out: {_names([c.name for c in constant])} (one value cannot tell rows apart).")
    if nearly:
        action.append(f"Kept: {_names([n for n, _, _ in nearly])} (the few other values may still matter).")
    return Finding(
        id=CONSTANT, severity="note", columns=tuple([c.name for c in constant] + [n for n, _, _ in nearly]),
        title=f"{_subject([c.name for c in constant] + [n for n, _, _ in nearly])} hardly "
              f"{_verb(len(constant) + len(nearly), 'varies', 'vary')}",
        evidence="; ".join(parts[:EXAMPLES]) + (f"; and {len(parts) - EXAMPLES} more" if len(parts) > EXAMPLES else "")
        + f"{table.sample_words()}.",
        numbers={n: {"top_share": round(s, 4)} for n, s, _ in nearly},
        acted=bool(constant), action=" ".join(action))


def _mostly_missing(table: _Table) -> Finding | None:
    n = max(table.n, 1)
    empty = [c for c in table.prepared.columns if c.role == "empty"]
    sparse = [(c, c.n_missing / n) for c in table.used() if c.n_missing / n >= MOSTLY_MISSING_SHARE]
    if not empty and not sparse:
        return None
    parts = [f"'{c.name}' is empty in every row" for c in empty]
    parts += [f"'{c.name}' is missing in {share:.0%} of the rows ({c.n_missing:,} of {n:,})" for c, share in sparse]
    action = []
    if empty:
        action.append(f"Left out: {_names([c.name for c in empty])}.")
    if sparse:
        action.append(f"Kept: {_names([c.name for c, _ in sparse])}; the models see whether a value is missing, "
                      "which can itself carry information.")
    return Finding(
        id=MOSTLY_MISSING, severity="note", columns=tuple([c.name for c in empty] + [c.name for c, _ in sparse]),
        title=f"{_subject([c.name for c in empty] + [c.name for c, _ in sparse])} "
              f"{_verb(len(empty) + len(sparse), 'is', 'are')} mostly missing",
        evidence="; ".join(parts) + ".", numbers={c.name: {"missing_share": round(s, 4)} for c, s in sparse},
        acted=bool(empty), action=" ".join(action))


def _many_categories(table: _Table) -> Finding | None:
    from core.features import NATIVE_CATEGORY_LIMIT

    many = [c for c in table.used("categorical") if c.n_unique >= NATIVE_CATEGORY_LIMIT]
    if not many:
        return None
    return Finding(
        id=MANY_CATEGORIES, severity="note", columns=tuple(c.name for c in many),
        title=f"{_subject([c.name for c in many])} {_verb(len(many), 'has', 'have')} very many categories",
        evidence="; ".join(f"'{c.name}' has {c.n_unique:,} distinct values" for c in many) + ".",
        numbers={c.name: {"distinct": c.n_unique} for c in many}, acted=False,
        action="Kept: trees replace each category by its average target, learnt without peeking at the row itself; "
               "linear models keep the most common categories and pool the rare ones.")


def _text_values(col: pd.Series) -> pd.Series:
    values = col.dropna()
    values = values[values.map(lambda v: isinstance(v, str))] if values.dtype == object else values.astype(str)
    values = values.str.strip()
    return values[values != ""]


def _numbers_as_text(table: _Table) -> Finding | None:
    hits = []
    for column in table.used("numeric"):
        raw = table.X[column.name]
        if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
            continue
        values = _text_values(table.parsed(column.name))
        bad = values[pd.to_numeric(values, errors="coerce").isna()]
        hits.append((column.name, len(bad), len(values), list(dict.fromkeys(bad.tolist()))[:EXAMPLES]))
    if not hits:
        return None
    parts = [f"'{n}': {b:,} of {t:,} filled cells are not numbers" + (f" (e.g. {', '.join(repr(_short(v)) for v in ex)})"
                                                                       if ex else "") for n, b, t, ex in hits]
    return Finding(
        id=NUMBERS_AS_TEXT, severity="note", columns=tuple(n for n, *_ in hits),
        title=f"{_subject([n for n, *_ in hits])} {_verb(len(hits), 'holds', 'hold')} numbers stored as text",
        evidence="; ".join(parts) + f"{table.sample_words(SCORE_ROWS)}.",
        numbers={n: {"not_numbers": b, "filled": t} for n, b, t, _ in hits},
        examples=tuple({"column": n, "value": v} for n, _, _, ex in hits for v in ex)[:EXAMPLES], acted=False,
        action="Read as numbers; the cells that are not numbers count as missing. Fix them in the file if they mean "
               "something (a unit, a decimal comma, a note).")


def _mixed_types(table: _Table) -> Finding | None:
    hits = []
    for column in table.used("categorical"):
        raw = table.X[column.name]
        if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
            continue
        values = table.parsed(column.name).dropna()
        if len(values) < 20:
            continue
        text = values.astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce").notna()
        share = float(numbers.mean())
        if 0.2 <= share < 0.95 and text[~numbers].nunique() >= 1:
            examples = list(dict.fromkeys(text[numbers].head(50).tolist()))[:2] + \
                list(dict.fromkeys(text[~numbers].head(50).tolist()))[:3]
            hits.append((column.name, share, examples))
    if not hits:
        return None
    return Finding(
        id=MIXED_TYPES, severity="note", columns=tuple(n for n, _, _ in hits),
        title=f"{_subject([n for n, _, _ in hits])} {_verb(len(hits), 'mixes', 'mix')} numbers and words",
        evidence="; ".join(f"'{n}' holds numbers in {s:.0%} of its filled cells and words in the rest (e.g. "
                           f"{', '.join(repr(_short(v)) for v in ex)})" for n, s, ex in hits) + f"{table.sample_words(SCORE_ROWS)}.",
        numbers={n: {"number_share": round(s, 4)} for n, s, _ in hits},
        examples=tuple({"column": n, "value": v} for n, _, ex in hits for v in ex)[:EXAMPLES], acted=False,
        action="Read as categories, so the numbers lose their order. If the words mean 'missing' or a unit, fix them "
               "in the file, or set the column to numeric on the Data page (words then count as missing).")


_DATE_FAMILIES = (
    ("year first (2021-03-05)", re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T].*)?")),
    ("day or month first (05/03/2021)", re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}([ T].*)?")),
    ("year and month (2021-03)", re.compile(r"\d{4}[-/.]\d{1,2}")),
    ("with a month name (5 March 2021)", re.compile(r".*[A-Za-z]{3,}.*")),
)


def _date_formats(table: _Table) -> Finding | None:
    hits = []
    for column in table.used("datetime"):
        raw = table.X[column.name]
        if pd.api.types.is_datetime64_any_dtype(raw):
            continue
        values = _text_values(table.parsed(column.name))
        if values.empty:
            continue
        families = Counter()
        examples: dict[str, str] = {}
        for family, value in zip(_date_family(values), values, strict=True):
            families[family] += 1
            examples.setdefault(family, value)
        common = [(f, k) for f, k in families.most_common() if k >= max(5, 0.01 * len(values)) and f != "other"]
        if len(common) >= 2:
            hits.append((column.name, common, examples, len(values)))
    if not hits:
        return None
    parts = [f"'{n}' mixes " + ", ".join(f"{k:,} written {f} such as '{ex[f]}'" for f, k in common)
             for n, common, ex, _ in hits]
    return Finding(
        id=DATE_FORMATS, severity="warning", columns=tuple(n for n, *_ in hits),
        title=f"{_subject([n for n, *_ in hits], 'date column')} {_verb(len(hits), 'is', 'are')} written in several formats",
        evidence="; ".join(parts) + f"{table.sample_words(SCORE_ROWS)}. Mixed formats are where a day and a month get swapped "
                                    "(is 03/05 the 3rd of May or the 5th of March?).",
        numbers={n: dict(common) for n, common, _, _ in hits},
        examples=tuple({"column": n, "format": f, "value": ex[f]} for n, common, ex, _ in hits for f, _ in common)[:EXAMPLES],
        acted=False, action="Each value is read as a date as best it can be. Write every date one way (2021-03-05 is "
                            "never ambiguous) and load the file again.")


def _date_family(values: pd.Series) -> list[str]:
    out = []
    for value in values:
        out.append(next((name for name, pattern in _DATE_FAMILIES if pattern.fullmatch(value)), "other"))
    return out


# --- the target ----------------------------------------------------------------------------------

def _target(table: _Table) -> list[Finding]:
    if not table.classification:
        return [f for f in (_target_id_like(table),) if f is not None]
    counts = table.y.value_counts().reindex(list(table.classes), fill_value=0)
    findings = _tiny_classes({str(k): int(v) for k, v in counts.items()}, f"'{table.target}'", _valid_share(table.n))
    findings += _imbalance(table, counts)
    if len(table.classes) >= MANY_CLASSES_FROM:
        findings.append(Finding(
            id=MANY_CLASSES, severity="warning", columns=(table.target,),
            title=f"'{table.target}' has {len(table.classes):,} classes",
            evidence=(f"'{table.target}' has {len(table.classes):,} distinct values, {table.n / len(table.classes):,.1f} "
                      "rows per class on average: most classes have too few rows to learn from or to judge."),
            numbers={"classes": len(table.classes)}, acted=False,
            action="Trained as asked. If it is really a number (a price, a count), set it up as one; otherwise group "
                   "rare classes together in the file."))
    return findings


def _tiny_classes(counts: Mapping[str, int], what: str, valid_share: float) -> list[Finding]:
    tiny = {c: n for c, n in counts.items() if round(n * valid_share) < MIN_VALID_PER_CLASS}
    if not tiny:
        return []
    listed = ", ".join(f"'{_short(c)}' ({n:,})" for c, n in list(tiny.items())[:EXAMPLES])
    more = f" and {len(tiny) - EXAMPLES} more" if len(tiny) > EXAMPLES else ""
    return [Finding(
        id=TINY_CLASS, severity="warning", columns=(),
        title=f"{_count(len(tiny), 'class', 'classes')} of {what} too small to validate",
        evidence=(f"With {valid_share:.0%} held out for validation, these classes get fewer than "
                  f"{MIN_VALID_PER_CLASS} validation examples each: {listed}{more}. Their scores rest on a handful of "
                  "examples and can swing wildly."),
        numbers={"classes": dict(tiny), "valid_share": valid_share},
        examples=tuple({"class": c, "count": n} for c, n in list(tiny.items())[:EXAMPLES]), acted=False,
        action="Trained as they are; read their per-class results with care, or add examples of them.")]


def _imbalance(table: _Table, counts: pd.Series) -> list[Finding]:
    from core.planner import is_imbalanced, minority_share

    classes = tuple(range(len(table.classes)))  # the planner's rule, on the label codes (no string compares)
    if not is_imbalanced(table.codes, classes):
        return []
    share = minority_share(table.codes, classes)
    rarest = str(counts.idxmin())
    severity: Severity = "warning" if share < HEAVY_IMBALANCE else "note"
    return [Finding(
        id=IMBALANCE, severity=severity, columns=(table.target,),
        title=f"'{table.target}' is imbalanced: the rarest class is {share:.1%} of the rows",
        evidence=(f"'{_short(rarest)}' has {int(counts.min()):,} of {table.n:,} rows ({share:.1%}); the most common "
                  f"class has {int(counts.max()):,}. Always answering the common class would score "
                  f"{counts.max() / table.n:.0%} accuracy."),
        numbers={"minority_share": round(share, 4), "counts": {str(k): int(v) for k, v in counts.items()}}, acted=True,
        action="Classes are weighted to count equally, a yes/no decision threshold is chosen out of fold, and "
               "Evaluate leads with balanced accuracy and the precision-recall curve.")]


def _target_id_like(table: _Table) -> Finding | None:
    from core.schema import _id_like_name

    y = table.y.to_numpy(dtype="float64")
    whole = bool(np.all(y == np.round(y)))
    if not whole:
        return None
    unique = len(np.unique(y)) == len(y)
    named = _id_like_name(table.target)
    if not (named or (unique and len(y) >= 20)):
        return None
    why = (f"'{table.target}' is named like an ID or a code" if named else
           f"'{table.target}' holds a different whole number in every row")
    return Finding(
        id=TARGET_ID_LIKE, severity="warning", columns=(table.target,),
        title=f"'{table.target}' looks like an ID or a code, not a quantity",
        evidence=(f"{why}; Trainboard would predict it as an amount, where 1,001 is close to 1,000. For an ID that "
                  "makes no sense; for a code (a postcode, a product number) the model should pick a class."),
        numbers={"distinct": int(len(np.unique(y))), "rows": len(y), "named_like_id": named}, acted=False,
        action="Trained as asked. Pick the column you really want to predict, or change the codes to words so they "
               "are read as classes.")


def _valid_share(n: int) -> float:
    from core.models.base import LARGE_TABLE

    return 0.1 if n >= LARGE_TABLE else 0.2


# --- images --------------------------------------------------------------------------------------

def _class_counts(data: ImageData) -> dict[str, int]:
    counts = np.bincount(data.labels, minlength=len(data.class_names))
    return {name: int(n) for name, n in zip(data.class_names, counts, strict=True)}


def _image_hashes(images: np.ndarray) -> np.ndarray:
    """One 64-bit hash of each image's exact pixels."""
    return np.array([int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=8).digest(), "little")
                     for image in images], dtype=np.uint64)


def perceptual_hashes(images: np.ndarray, grid: int = 8) -> list[bytes]:
    """A difference hash of each image: grey levels averaged over a ``grid``×``grid`` of blocks, one
    bit per neighbouring pair (brighter or not), across and down. Re-saving, slight resizing or a
    brightness change keep the hash; a different picture changes it."""
    n, _, size, _ = images.shape
    size -= size % grid
    grey = images[:, :, :size, :size].astype(np.float32).mean(axis=1)
    blocks = grey.reshape(n, grid, size // grid, grid, size // grid).mean(axis=(2, 4))
    bits = np.concatenate([(blocks[:, :, 1:] > blocks[:, :, :-1]).reshape(n, -1),
                           (blocks[:, 1:, :] > blocks[:, :-1, :]).reshape(n, -1)], axis=1)
    return [row.tobytes() for row in np.packbits(bits, axis=1)]


def _image_duplicates(data: ImageData, off: frozenset[str]) -> list[Finding]:
    n = len(data.labels)
    if n < 2:
        return []
    keys = perceptual_hashes(data.images)
    exact = _image_hashes(data.images)
    groups: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    multi = [g for g in groups.values() if len(g) > 1]
    if not multi:
        return []
    across = [g for g in multi if len(set(data.labels[g].tolist())) > 1]
    n_images = sum(len(g) for g in multi)
    identical = int(pd.Series(_mix(exact, data.labels.astype(np.uint64))).duplicated().sum())
    from core.splits import split_rows

    task = "binary" if len(data.class_names) == 2 else "multiclass"
    train, valid = split_rows(data.labels, task, _valid_share(n), 0)
    group_of = {i: k for k, g in enumerate(multi) for i in g}
    train_groups = {group_of[i] for i in train if i in group_of}
    in_both = sum(1 for i in valid if i in group_of and group_of[i] in train_groups)
    share = in_both / max(len(valid), 1)
    opted_out = KEEP_VALID_DUPLICATES in off
    warn = bool(across) or (in_both >= DUPLICATE_WARNING_ROWS and share >= DUPLICATE_WARNING_SHARE)
    shown = sorted(multi, key=lambda g: (len(set(data.labels[g].tolist())) == 1, g[0]))[:EXAMPLES]
    examples = tuple({"files": [data.paths[i] for i in g[:4]], "classes": [data.class_names[data.labels[i]] for i in g[:4]],
                      "index": [int(i) for i in g[:4]]} for g in shown)
    across_words = (f" {len(across):,} of these groups mix classes: the same picture labelled twice differently."
                    if across else "")
    return [Finding(
        id=IMAGE_DUPLICATES, severity="warning" if warn else "note",
        title=f"{n_images:,} images are identical or nearly identical to another one",
        evidence=(f"{_count(len(multi), 'group')} of look-alike images ({n_images:,} images; {identical:,} exact copies of "
                  f"another in the same class).{across_words} With the automatic split, {in_both:,} of the "
                  f"{len(valid):,} validation images ({share:.1%}) {_verb(in_both, 'has', 'have')} a look-alike among the training images."),
        numbers={"groups": len(multi), "images": n_images, "exact_copies": identical, "groups_across_classes": len(across),
                 "valid_lookalikes": in_both, "valid": len(valid), "drop_from_validation": bool(identical) and not opted_out},
        examples=examples, acted=False, opt_out=KEEP_VALID_DUPLICATES if identical else None,
        action=(("Exact copies that would sit in validation and training are dropped from validation"
                 + (" — you chose to keep them. " if opted_out else "; keep them with 'keep duplicates in validation'. ")
                 if identical else "Nothing is dropped: none is an exact copy. ")
                + "Look-alikes are shown for you to check: remove copies, fix labels that disagree."))]


def _image_sizes(data: ImageData) -> list[Finding]:
    if not data.sizes:
        return []
    sizes = Counter(data.sizes)
    modes = Counter(data.modes)
    colour = {m for m in modes if m not in ("1", "L", "LA", "I", "I;16", "F", "P")}
    grey = set(modes) - colour
    mixed_modes = bool(colour) and bool(grey)
    if len(sizes) <= 1 and not mixed_modes:
        return []
    parts = []
    if len(sizes) > 1:
        widths, heights = [w for w, _ in data.sizes], [h for _, h in data.sizes]
        common = ", ".join(f"{w}×{h} ({k:,})" for (w, h), k in sizes.most_common(3))
        parts.append(f"{len(sizes):,} different sizes, from {min(widths)}×{min(heights)} to {max(widths)}×{max(heights)} "
                     f"pixels; the most common: {common}")
    if mixed_modes:
        parts.append("colour and greyscale images mixed (" + ", ".join(f"{k:,} {m}" for m, k in modes.most_common())
                     + ")")
    colour_words = "colour" if data.channels == 3 else "greyscale"
    return [Finding(
        id=IMAGE_SIZES, severity="note", title="The images differ in size or colour",
        evidence="; ".join(parts) + ".",
        numbers={"sizes": len(sizes), "modes": dict(modes)}, acted=True,
        action=(f"Every image is centre-cropped to a square and resized to {data.image_size}×{data.image_size} "
                f"pixels, in {colour_words}, so the model sees them alike."))]


def _unreadable(data: ImageData) -> list[Finding]:
    if not data.skipped:
        return []
    reasons = Counter(why for _, why in data.skipped)
    total = len(data.skipped) + len(data.labels)
    share = len(data.skipped) / total
    return [Finding(
        id=UNREADABLE_FILES, severity="warning" if share >= 0.05 else "note",
        title=f"{_count(len(data.skipped), 'file')} {_verb(len(data.skipped), 'was', 'were')} skipped",
        evidence=(f"{len(data.skipped):,} of {total:,} files ({share:.1%}) could not be used: "
                  + ", ".join(f"{k:,} {why}" for why, k in reasons.most_common()) + "."),
        numbers={"skipped": len(data.skipped), "files": total, "reasons": dict(reasons)},
        examples=tuple({"file": name, "why": why} for name, why in data.skipped[:EXAMPLES]), acted=True,
        action="Left out of training. Replace damaged files, or move stray files out of the class folders.")]


# --- small helpers -------------------------------------------------------------------------------

def _count(n: int, singular: str, plural: str | None = None) -> str:
    """"1 row", "2 rows", "1,024 classes"."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _subject(names: Sequence[str], what: str = "column") -> str:
    """A title's subject: "'notes'", "'a', 'b' and 'c'", or "7 columns" past three."""
    if len(names) > 3:
        return _count(len(names), what)
    quoted = [f"'{_short(n)}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:EXAMPLES])
    return shown + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    """A cell as a plain JSON value."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return _plain_dict(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, str):
        return _short(value, 200)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return _short(value, 200)


def _plain_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in values.items()}
