"""Apply a saved run to new data (the Predict page, ``python -m core predict``, predict jobs), and
write the answers as files people open in a spreadsheet.

The model is loaded once and applied in slices of rows, with ``StepEnded`` events as progress,
so a million-row table shows how far it is. One output row per input row, in the input's order:
the input columns as they were, then the prediction, its confidence, each class's probability
and, for a yes/no question, the run's threshold the prediction was decided at.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError
from core.evaluation import class_probabilities, decide
from core.events import Callback, StepEnded, StopFlag, ignore
from core.run_record import RunRecord, read_run
from core.runs import load_model, resolve_run
from core.types import TableData

CHUNK_ROWS = 100_000
#: Images an image prediction keeps for the Predict page's thumbnails.
PREVIEW_IMAGES = 60
CONFIDENCE = "confidence"
PROBABILITY = "probability of "
THRESHOLD = "threshold"
#: The most data rows an Excel sheet holds (1,048,576 rows less the header).
EXCEL_MAX_ROWS = 1_048_575
#: A text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def predict_table(run_dir: str | Path, data: TableData, runs_dir: str | Path,
                  on_event: Callback = ignore, stop: StopFlag | None = None) -> pd.DataFrame:
    """The table's own columns followed by the prediction columns (``predictions_for_table``)."""
    model, run = load_model(run_dir, runs_dir)
    frame = data.frame
    n_chunks = max(1, -(-len(frame) // CHUNK_ROWS))
    parts = []
    for i in range(n_chunks):
        if stop is not None and stop.is_set():
            raise DataError("Prediction was stopped before it finished; nothing was saved.")
        parts.append(predictions_for_table(model, run, frame.iloc[i * CHUNK_ROWS:(i + 1) * CHUNK_ROWS]))
        on_event(StepEnded(step=i + 1, epoch=1, train_loss=float("nan"), total_steps=n_chunks))
    return pd.concat(parts) if len(parts) > 1 else parts[0]


def prediction_column(run: RunRecord) -> str:
    """The name of the column that holds the run's answer."""
    return "predicted class" if run.kind == "images" else f"predicted {run.data.target}"


def answer_columns(run: RunRecord) -> list[str]:
    """The columns a prediction adds, in order (without clashes with the input's own names)."""
    if run.task == "regression":
        return [prediction_column(run)]
    names = [prediction_column(run), CONFIDENCE, *(PROBABILITY + str(c) for c in run.classes)]
    return names + ([THRESHOLD] if _threshold(run) is not None else [])


def input_columns(run: RunRecord, predictions: pd.DataFrame) -> list[str]:
    """The columns of a predictions frame that came from the input (all but the answers, last)."""
    columns = list(predictions.columns)
    return columns[:len(columns) - len(answer_columns(run))]


def check_columns(run: RunRecord, columns: Any) -> list[str]:
    """The input columns the model does not use (kept in the output as they are); a
    ``DataError`` naming every column the model needs that ``columns`` lacks."""
    if run.kind != "tabular":
        raise DataError("This run was trained on images: give it images, not a table.")
    needed = list(run.data.feature_columns)
    present = set(map(str, columns))
    missing = [c for c in needed if c not in present]
    if missing:
        shown = ", ".join(f"'{c}'" for c in missing[:8]) + (" …" if len(missing) > 8 else "")
        raise DataError(f"The new data lacks {len(missing)} column(s) the model needs: {shown}. Use a file with "
                        "the same columns as the training data (the target column may be missing).")
    return [str(c) for c in columns if str(c) not in set(needed)]


def predictions_for_table(model: Any, run: RunRecord, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the run's answers (``answer_columns``) appended as new columns."""
    check_columns(run, frame.columns)
    if frame.empty:
        raise DataError("The new data has no rows to predict.")
    X = frame[list(run.data.feature_columns)]
    if run.task == "regression":
        answers = {prediction_column(run): np.asarray(model.predict(X))}
    else:
        answers = _class_answers(class_probabilities(model, X, run.classes), run)
    return _append(frame, answers)


def _class_answers(proba: np.ndarray, run: RunRecord) -> dict[str, Any]:
    """The predicted class (a binary run's own threshold, else the most probable class), the
    probability of the class predicted, each class's probability, and the threshold used."""
    index = decide(proba, run.classes, _threshold(run))
    answers: dict[str, Any] = {prediction_column(run): np.asarray(run.classes, dtype=object)[index],
                               CONFIDENCE: proba[np.arange(len(proba)), index]}
    answers.update({PROBABILITY + str(c): proba[:, i] for i, c in enumerate(run.classes)})
    if (threshold := _threshold(run)) is not None:
        answers[THRESHOLD] = np.full(len(proba), threshold)
    return answers


def _append(frame: pd.DataFrame, answers: dict[str, Any]) -> pd.DataFrame:
    """The input's columns untouched, then the answers; an answer whose name the input already uses
    (a file of earlier predictions, say) gets " (new)" added rather than overwriting it."""
    taken = set(map(str, frame.columns))
    named = {}
    for name, values in answers.items():
        while name in taken:
            name += " (new)"
        taken.add(name)
        named[name] = values
    return pd.concat([frame, pd.DataFrame(named, index=frame.index)], axis=1)


def _threshold(run: RunRecord) -> float | None:
    """The threshold a binary run decides at (None for other runs)."""
    return run.threshold.value if run.threshold is not None and len(run.classes) == 2 else None


def predict_images(run_dir: str | Path, source: Any, name: str | None,
                   runs_dir: str | Path, preview_to: str | Path | None = None) -> pd.DataFrame:
    """One row per image: file name, predicted class, confidence and class probabilities. With
    ``preview_to``, the first ``PREVIEW_IMAGES`` images (at the model's size) are saved there for
    the Predict page's thumbnails."""
    from core.images import load_unlabelled_images

    model, run = load_model(run_dir, runs_dir)
    if run.kind != "images":
        raise DataError("This run was trained on a table: give it a table file, not images.")
    images, names = load_unlabelled_images(source, name=name, image_size=run.data.image_size,
                                           channels=run.data.channels)
    proba = class_probabilities(model, images, run.classes)
    if preview_to is not None:
        np.savez_compressed(Path(preview_to), images=images[:PREVIEW_IMAGES])
    return _append(pd.DataFrame({"file": list(names)}), _class_answers(proba, run))


def preview_path(predictions: str | Path) -> Path:
    """Where the images shown beside a predictions file are kept."""
    return Path(predictions).with_suffix(".images.npz")


def read_preview(predictions: str | Path) -> np.ndarray | None:
    """The first images of a predictions file, uint8 N×C×S×S in its row order (None: a table)."""
    path = preview_path(predictions)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        return saved["images"]


def predict_file(run_dir: str | Path, path: str | Path, runs_dir: str | Path,
                 name: str | None = None, on_event: Callback = ignore, stop: StopFlag | None = None,
                 preview_to: str | Path | None = None) -> pd.DataFrame:
    """Predictions for a table file, or an image folder / zip, at ``path`` (images: the first few
    saved to ``preview_to`` as well)."""
    from core.datasets import load_table

    path = Path(path)
    if not path.exists():
        raise DataError(f"There is no file or folder '{path}'. Check the path.")
    if read_run(resolve_run(run_dir, runs_dir), predictions=False).kind == "images":
        return predict_images(run_dir, path, name or path.name, runs_dir, preview_to)
    return predict_table(run_dir, load_table(path, name=name), runs_dir, on_event, stop)


def write_predictions(frame: pd.DataFrame, out: str | Path) -> Path:
    """Save predictions as CSV (for people, formula-safe) and Parquet beside it (the exact values,
    for the preview and the Excel download)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(frame, out.with_suffix(".csv"))
    _parquet_safe(frame).to_parquet(out.with_suffix(".parquet"), index=False)
    return out.with_suffix(".csv")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would run as a formula escaped: a cell that
    begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a single quote in front
    (OWASP's advice against CSV injection: the quote makes Excel, LibreOffice and Google Sheets show
    the text as it is, ``'=1+1``, instead of evaluating it). Only columns that hold text are
    touched: numbers (a real numeric dtype) stay numbers, so ``-3.5`` is left alone while the
    text ``"-3"`` in a column of words becomes ``'-3``. The one escape both writers use."""
    text = [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                             or pd.api.types.is_datetime64_any_dtype(frame[c]))]
    if not text:
        return frame
    out = frame.copy()
    for column in text:
        values = out[column]
        try:  # vectorised; cells that are not text (numbers in a mixed column, missing) give NaN: safe
            risky = values.str.startswith(FORMULA_STARTS)
        except AttributeError:  # not one string in the column (dates as objects, decimals, …)
            risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        risky = risky.fillna(False).astype(bool)
        if risky.any():
            values = values.astype(object)
            values[risky] = "'" + values[risky]
            out[column] = values
    return out


def write_csv(frame: pd.DataFrame, out: str | Path | io.BytesIO) -> None:
    """The predictions as CSV (UTF-8, no index), formula-safe. Lines end in CRLF (RFC 4180), which
    also makes the writer quote a cell holding a lone carriage return instead of splitting the row."""
    spreadsheet_safe(frame).to_csv(out, index=False, lineterminator="\r\n")


def excel_bytes(frame: pd.DataFrame) -> bytes:
    """The predictions as an Excel workbook (one sheet, formula-safe); a ``DataError`` past the
    rows a sheet can hold (the CSV has no such limit)."""
    if len(frame) > EXCEL_MAX_ROWS:
        raise DataError(f"{len(frame):,} rows do not fit in one Excel sheet (at most {EXCEL_MAX_ROWS:,}). "
                        "Download the CSV instead.")
    buffer = io.BytesIO()
    # openpyxl writes a string cell as text; escaped, "=…" can never become a formula when opened.
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        _excel_ready(spreadsheet_safe(frame)).to_excel(writer, index=False, sheet_name="predictions")
    return buffer.getvalue()


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """What an Excel sheet can hold: zoned dates as their UTC clock time (Excel has no time zones),
    text without the control characters its format forbids (openpyxl refuses them)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    out = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[column] = values.dt.tz_convert("UTC").dt.tz_localize(None)
        elif not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_datetime64_any_dtype(values):
            out[column] = values.map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v)
    if not out:
        return frame
    frame = frame.copy()
    for column, values in out.items():
        frame[column] = values
    return frame


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types (as uploads have) become text, which Parquet can store."""
    mixed = [c for c in frame.columns if frame[c].dtype == object]
    return frame.astype({c: str for c in mixed}) if mixed else frame
