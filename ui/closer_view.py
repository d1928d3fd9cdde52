"""The Evaluate and Predict pages' "look closer" sections: the rows behind a confusion-matrix cell
(a click on the matrix, or the picker beside it), how the prediction moves with one column
(partial dependence with ICE lines), and one prediction explained column by column.

The computations are ``core.explain``'s, on bounded samples the run folder keeps (a few thousand
rows at most), so they run here, cached, rather than in a job. The model loads only from the app's
own runs folder (``core.runs.load_model``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import explain, plots
from core.errors import TrainboardError
from core.evaluation import Confusion, OperatingPoint
from core.run_record import MANIFEST_FILE, RunRecord
from core.runs import load_model
from ui import state
from ui.chart_notes import notes

SHOWN_ROWS = 1000  # a cell's table shows at most this many rows
SHOWN_IMAGES = 16  # …and at most this many thumbnails
MAX_ROW_CHOICES = 1000  # rows offered to explain (the worst errors first)


def _stamp(run_dir: str | Path) -> float:
    return (Path(run_dir) / MANIFEST_FILE).stat().st_mtime


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _model(run_dir: str, stamp: float) -> Any:
    return load_model(run_dir, state.runs_dir())[0]


@st.cache_data(max_entries=8, show_spinner=False)
def _inputs(run_dir: str, stamp: float) -> pd.DataFrame | None:
    return explain.read_inputs(run_dir)


@st.cache_data(max_entries=4, show_spinner=False)
def _thumbnails(run_dir: str, stamp: float) -> explain.Thumbnails | None:
    return explain.read_thumbnails(run_dir)


def inputs(run: RunRecord) -> pd.DataFrame | None:
    """The validation inputs the run kept (``row`` first), or None (runs saved before they were)."""
    return _inputs(str(run.path), _stamp(run.path)) if run.kind == "tabular" else None


# ---------------------------------------------------------------- the rows behind a cell


def _current_cell(run: RunRecord, matrix: Confusion) -> str:
    """The picked cell's key: the session's, else the largest mistake (else the largest cell)."""
    key = state.cell_key(run.run_id)
    valid = {c.key for c in explain.cells(matrix)}
    if st.session_state.get(key) not in valid:
        st.session_state[key] = explain.cells(matrix)[0].key
    return st.session_state[key]


def clicked_cell(selection: Any) -> str | None:
    """The cell key a click on the matrix chose (the chart's selection state), or None."""
    try:
        points = selection["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or ():
        data = point.get("customdata")
        if data is not None and len(data) == 2:
            return explain.cell_key(str(data[0]), str(data[1]))
        if "x" in point and "y" in point:
            return explain.cell_key(str(point["y"]), str(point["x"]))
    return None


def confusion_chart(run: RunRecord, matrix: Confusion, fig: Any) -> None:
    """Draw the confusion matrix so that a click on a cell picks it for ``cell_section`` (the
    picked cell is outlined)."""
    cell_key = state.cell_key(run.run_id)
    chart_key = f"{state.EVALUATE_CELL_CLICK}:{run.run_id}"

    def _clicked() -> None:
        picked = clicked_cell(st.session_state.get(chart_key))
        if picked is not None:
            st.session_state[cell_key] = picked

    true, predicted = explain.split_cell_key(_current_cell(run, matrix))
    st.plotly_chart(plots.clickable_cells(fig, matrix, (true, predicted)), key=chart_key, on_select=_clicked,
                    selection_mode="points")


def cell_section(run: RunRecord, point: OperatingPoint | None) -> None:
    """Pick a cell (true class → predicted class) and see its validation rows, or thumbnails of
    its images, with each one's true class, prediction and confidence."""
    matrix = point.confusion if point is not None else run.confusion
    if not run.classification or matrix is None or run.predictions is None:
        return
    st.subheader("Look closer: the rows behind a cell")
    by_key = {c.key: c for c in explain.cells(matrix)}
    _current_cell(run, matrix)

    def label(key: str) -> str:
        cell = by_key[key]
        kind = "right" if cell.correct else "mistakes"
        return f"true {cell.true} → predicted {cell.predicted} · {cell.count:,} ({kind})"

    chosen = st.selectbox("Cell of the confusion matrix (true class → predicted class)", list(by_key),
                          format_func=label, key=state.cell_key(run.run_id),
                          help="Or click a cell of the confusion matrix above.")
    cell = by_key[chosen]
    threshold = point.threshold if point is not None else None
    rows = explain.cell_rows(run.predictions, run.classes, cell.true, cell.predicted, threshold)
    if rows.empty:
        st.info(f"No validation row of class “{cell.true}” was predicted “{cell.predicted}”.")
        return
    what = "images" if run.kind == "images" else "rows"
    confidence = "the share above each image" if run.kind == "images" else "confidence"
    said = (f"The {len(rows):,} validation {what} of class “{cell.true}” the model called “{cell.predicted}”, "
            f"most confident first; {confidence} is the probability it gave “{cell.predicted}”.")
    if run.kind == "images":
        _cell_images(run, rows, said)
    else:
        _cell_table(run, rows, said)


def _cell_table(run: RunRecord, rows: pd.DataFrame, said: str) -> None:
    kept = inputs(run)
    if kept is None:  # a run saved before validation inputs were kept: the worst errors still have theirs
        kept = _worst_inputs(run)
        note = " This run kept no inputs of its validation rows (it predates that); train it again to see them."
    else:
        covered = int(rows["row"].isin(kept["row"]).sum())
        note = "" if covered == len(rows) else (f" The run keeps the inputs of a sample of its validation rows: "
                                                f"{covered:,} of these {len(rows):,} have them.")
    shown = explain.with_inputs(rows.head(SHOWN_ROWS), kept)
    st.dataframe(shown, hide_index=True, column_config={
        "row": st.column_config.NumberColumn("row in file", format="%d"),
        "confidence": st.column_config.NumberColumn(format="percent")})
    more = f" Showing the first {SHOWN_ROWS:,}." if len(rows) > SHOWN_ROWS else ""
    st.caption(said + more + note + " Look for what they share: a value, a missing column, a class that needs "
               "more examples.")  # a table, not a chart: no "How to read this" beside it


def _worst_inputs(run: RunRecord) -> pd.DataFrame | None:
    worst = run.worst
    if worst is None or worst.empty or "row" not in worst:
        return None
    columns = [c for c in worst.columns if c.startswith("input: ")]
    return worst[["row", *columns]].rename(columns=lambda c: c.removeprefix("input: ")) if columns else None


def _cell_images(run: RunRecord, rows: pd.DataFrame, said: str) -> None:
    thumbs = _thumbnails(str(run.path), _stamp(run.path))
    if thumbs is None:
        st.info("This run kept no thumbnails of its validation images (it predates that); train it again to see "
                "the images behind each cell.")
        return
    where = {int(r): i for i, r in enumerate(thumbs.rows)}
    picked = rows[rows["row"].isin(where)].head(SHOWN_IMAGES)
    if picked.empty:
        st.info(f"{said} None of them is among the thumbnails the run kept.")
        return
    index = [where[int(r)] for r in picked["row"]]
    # Every picture here has the same true class and prediction (the caption says which): each title
    # is its confidence and file name.
    titles = [f"{c:.0%}" + (f"<br>{thumbs.files[i]}" if thumbs.files[i] else "")
              for c, i in zip(picked["confidence"], index, strict=True)]
    st.plotly_chart(plots.thumbnail_grid(thumbs.images[index], titles))
    shown = "" if len(picked) == len(rows) else f" Showing {len(picked)} (the run keeps a few thumbnails per cell)."
    notes(said + shown, "Each picture is one validation image of this cell. Look for what they share: a background, "
          "a colour, a pose, or labels that look wrong.", "confusion-matrix")


# ---------------------------------------------------------------- how the prediction moves with a column


@st.cache_data(max_entries=32, show_spinner="Sweeping the column…")
def _dependence(run_dir: str, stamp: float, column: str, kind: str, of_class: str | None) -> explain.Dependence:
    from core.run_record import read_run

    run = read_run(run_dir, predictions=False)
    kept = explain.read_inputs(run_dir)
    output = explain.output_for(run.task, run.classes, run.data.target, of_class)
    features = kept[list(run.data.feature_columns)]
    return explain.partial_dependence(_model(run_dir, stamp), features, column, output, kind,
                                      seed=run.split.seed, rows=kept["row"].to_numpy())


def dependence_section(run: RunRecord) -> None:
    """Partial dependence of a column (the most important first) with ICE lines, and its reading."""
    if run.kind != "tabular":
        return
    st.subheader("Look closer: how the prediction moves with a column")
    roles = [(c.name, c.role) for c in run.data.columns if c.used]
    columns = explain.sweepable(roles, [(i.feature, i.importance) for i in run.importances])
    if inputs(run) is None:
        st.info("This run kept no inputs of its validation rows (it predates that): train it again to see how its "
                "predictions move with each column.")
        return
    if not columns:
        st.info("None of this model's columns is a number or a category, so there is nothing to sweep.")
        return
    left, right = st.columns(2) if run.task == "multiclass" else (st.container(), None)
    column = left.selectbox("Column (most important first)", columns, key=state.EVALUATE_DEPENDENCE)
    of_class = None
    if right is not None:
        of_class = right.selectbox("Chance of the class", list(run.classes), key=state.EVALUATE_DEPENDENCE_CLASS)
    kind = dict(roles)[column]
    try:
        dep = _dependence(str(run.path), _stamp(run.path), column, kind, of_class)
    except (TrainboardError, ValueError) as err:
        st.error(str(err))
        return
    st.plotly_chart(plots.partial_dependence(dep))
    if dep.kind == "categorical":
        how = (f"Each bar: the model's average answer over {dep.n_rows:,} validation rows when {column} alone is set "
               "to that value, everything else in each row kept; each dot is one row.")
    else:
        how = (f"The thick line: the model's average answer over {dep.n_rows:,} validation rows when {column} alone "
               "is set to each value on the axis, everything else in each row kept; each thin line is one row.")
    # The glossary has no "partial dependence" yet: the columns' order links to the word it comes from.
    notes(explain.dependence_reading(dep), how + " This shows what the model learnt, not what causes what in the "
          "world. The columns are offered in the order of their permutation importance.", "partial-dependence")


# ---------------------------------------------------------------- one prediction, column by column


@st.cache_data(max_entries=64, show_spinner="Explaining the prediction…")
def _explanation(run_dir: str, stamp: float, row: pd.DataFrame, background: pd.DataFrame | None,
                 of_class: str | None, name: str) -> explain.RowExplanation:
    from core.run_record import read_run

    run = read_run(run_dir, predictions=False)
    if background is None:
        background = explain.read_inputs(run_dir)
    features = list(run.data.feature_columns)
    output = explain.output_for(run.task, run.classes, run.data.target, of_class)
    return explain.explain_row(_model(run_dir, stamp), row[features], background[features], output, name=name,
                               seed=run.split.seed)


def _show_explanation(expl: explain.RowExplanation) -> None:
    st.plotly_chart(plots.row_pushes(expl))
    notes(explain.row_reading(expl),
          f"Each bar: how much the prediction changes when that column alone takes the values of {expl.n_background} "
          "typical validation rows instead of this row's own (red: this row's value raises the prediction, blue: "
          "lowers it). Columns can work together, so the bars need not add up exactly to the gap from a typical row.",
          "row-explanation")


def row_section(run: RunRecord) -> None:
    """Pick a validation row (the worst errors first) and see why it got its prediction."""
    if run.kind != "tabular" or run.predictions is None:
        return
    st.subheader("Look closer: one prediction, column by column")
    kept = inputs(run)
    if kept is None:
        st.info("This run kept no inputs of its validation rows (it predates that): train it again to explain "
                "single predictions.")
        return
    predictions = run.predictions.set_index("row")
    labels = _row_labels(run, kept)
    more = f" The first {MAX_ROW_CHOICES:,} of the {len(kept):,} kept rows are offered." \
        if len(kept) > MAX_ROW_CHOICES else ""
    row = st.selectbox("Validation row (the worst errors first)", list(labels), format_func=labels.__getitem__,
                       key=state.EVALUATE_EXPLAIN_ROW, help="Type a row number to find it." + more)
    of_class = None
    if run.task == "multiclass":
        of_class = str(predictions.loc[row, "predicted"])
    picked = kept[kept["row"] == row].drop(columns="row")
    try:
        expl = _explanation(str(run.path), _stamp(run.path), picked, None, of_class, f"row {row:,}")
    except (TrainboardError, ValueError) as err:
        st.error(str(err))
        return
    _show_explanation(expl)


def _row_labels(run: RunRecord, kept: pd.DataFrame) -> dict[int, str]:
    """``{row: "row 17: true yes, predicted no"}`` for the kept validation rows, the worst errors
    first, at most ``MAX_ROW_CHOICES`` (built at once: one lookup per row cost ~0.5 s at 5,000)."""
    worst = run.worst["row"].tolist() if run.worst is not None and "row" in run.worst else []
    order = pd.Index(worst).intersection(kept["row"], sort=False).append(pd.Index(kept["row"])).unique()
    order = order[:MAX_ROW_CHOICES]
    said = run.predictions.set_index("row").loc[order]
    if run.classification:
        words = "true " + said["true"].astype(str) + ", predicted " + said["predicted"].astype(str)
    else:
        words = ("true " + said["true"].map("{:.4g}".format) + ", predicted "
                 + said["predicted"].map("{:.4g}".format))
    return {int(r): f"row {int(r):,}: {w}" for r, w in zip(order, words, strict=True)}


def explain_prediction(run: RunRecord, result: pd.DataFrame) -> None:
    """Predict: pick one of the new rows and see why it got its prediction."""
    if run.kind != "tabular" or result.empty:
        return
    needed = list(run.data.feature_columns)
    if not set(needed) <= set(result.columns):
        return
    st.subheader("Why this prediction?")
    n = len(result)
    row = int(st.number_input(f"Row of your file (1 to {n:,})", min_value=1, max_value=n, value=1, step=1,
                              key=state.PREDICT_EXPLAIN_ROW))
    kept = inputs(run)
    background = None if kept is not None else result[needed].head(explain.MAX_INPUT_ROWS)
    of_class = None
    label = f"predicted {run.data.target}"
    if run.task == "multiclass" and label in result:
        of_class = str(result[label].iloc[row - 1])
    try:
        expl = _explanation(str(run.path), _stamp(run.path), result[needed].iloc[[row - 1]], background, of_class,
                            f"row {row:,}")
    except (TrainboardError, ValueError) as err:
        st.error(str(err))
        return
    _show_explanation(expl)
    if kept is None:
        st.caption("This run kept no validation rows, so “typical” here means typical of your file.")
