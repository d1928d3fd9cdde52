"""Predict: apply a trained model to new rows or images and download the answers."""

import streamlit as st

from core import limits, plots
from core.datasets import TABLE_UPLOAD_TYPES
from core.errors import TrainboardError
from core.images import IMAGE_UPLOAD_TYPES
from core.pipeline import JobSpec
from core.predict import (
    CONFIDENCE,
    EXCEL_MAX_ROWS,
    check_columns,
    input_columns,
    prediction_column,
    read_preview,
)
from ui import closer_view, state, views
from ui.data_views import folder_name, zip_folder_upload

st.title("Predict")
st.caption("Use a trained model on new data it has never seen, and download its answers.")
run = views.pick_run(state.PREDICT_RUN, label="Model to use (a trained run)")
if run is None:
    st.stop()
data = run.data

if run.kind == "images":
    st.markdown(f"This model sorts images into **{len(data.classes)} classes**: "
                + ", ".join(f"`{c}`" for c in data.classes[:20]) + ". Upload the images to sort: any folder "
                "layout works, no class folders needed.")
    left, right = st.columns(2)
    archive = left.file_uploader("A zip of images", type=["zip"], max_upload_size=limits.IMAGES_MB.value(), key=state.PREDICT_ZIP)
    folder = right.file_uploader("Or a folder of images", accept_multiple_files="directory", key=state.PREDICT_FOLDER,
                                 type=IMAGE_UPLOAD_TYPES)
    files = [archive] if archive is not None else list(folder or [])
else:
    needed = data.feature_columns
    st.markdown(f"This model predicts **{data.target}** from {len(needed)} columns: "
                + ", ".join(f"`{c}`" for c in needed) + ". The new table needs those columns (same names); "
                f"other columns are kept, and `{data.target}` may be missing.")
    upload = st.file_uploader("A table of new rows: CSV, TSV, TXT, Excel (.xlsx) or Parquet", type=TABLE_UPLOAD_TYPES,
                              max_upload_size=limits.TABLE_MB.value(), key=state.PREDICT_TABLE)
    files = [upload] if upload is not None else []

if not files:
    st.info("Upload the new data above to see the model's predictions.")
    st.stop()

# The prediction runs as a background job (a worker process), once per run, threshold and upload.
threshold = run.threshold.value if run.threshold is not None else None
key = f"{run.path}|{threshold}|{'|'.join(f.file_id for f in files)}"
job_id = st.session_state.get(state.PREDICT_JOB, {}).get(key)
if job_id is None:
    try:
        if run.kind == "images" and archive is None:
            name = f"{folder_name(files)} (folder)"
            path = state.save_upload(f"{folder_name(files)}.zip", zip_folder_upload(files))
        else:
            name, path = files[0].name, state.save_upload(files[0].name, files[0].getvalue())
    except TrainboardError as err:
        st.error(str(err))
        st.stop()
    out = state.session().upload_dir / "predictions" / f"{run.run_id}-{abs(hash(key)):x}.csv"
    spec = JobSpec(source=str(path), name=name, mode="predict", run_dir=str(run.path), out=str(out),
                   runs_dir=str(state.runs_dir()))
    job_id = state.job_manager().submit(spec, owner=state.session().owner)
    st.session_state[state.PREDICT_JOB] = {key: job_id}

job = state.job_manager().get(job_id)
if job is None or not job.done:
    views.job_progress(job_id, "Predicting…")
    st.stop()
if job.state != "done" or not job.run_dir:
    st.error(job.error or "The prediction did not finish.")
    st.stop()

result, csv = views.load_predictions(job.run_dir)
st.success(f"{len(result):,} predictions with {run.model.name} ({data.source}).")
answers = [c for c in result.columns if c not in input_columns(run, result)]
if run.kind == "images":
    thumbnails = read_preview(job.run_dir)
    if thumbnails is not None and len(thumbnails):
        shown = result.head(len(thumbnails))
        titles = [f"{p} · {c:.0%}" for p, c in zip(shown[prediction_column(run)], shown[CONFIDENCE], strict=True)]
        st.plotly_chart(plots.thumbnail_grid(thumbnails, titles))
        st.caption(f"The first {len(thumbnails)} images (file names in order, as in the table below), each with the "
                   "class the model gives it and its confidence.")
else:
    unused = check_columns(run, input_columns(run, result))
    if unused:
        st.info(f"Kept as they are, not used by the model: {', '.join(f'`{c}`' for c in unused[:30])}"
                + (f" and {len(unused) - 30} more" if len(unused) > 30 else "") + ".")
# Tables: the answers shown first (a wide file would hide them); the downloads keep the file's layout.
order = None if run.kind == "images" else answers + input_columns(run, result)
st.dataframe(result.head(1000), hide_index=True, column_order=order,
             column_config={CONFIDENCE: st.column_config.NumberColumn(format="percent")})
if run.task == "regression":
    st.caption("Shown with the prediction first; the downloads keep your columns first, in your file's order, then "
               "the prediction. Expect errors about as large as the mean absolute error shown on Evaluate.")
else:
    decided = "" if threshold is None else (
        f" It answers “{run.classes[-1]}” when that class's probability is at least {threshold:.2f} (the run's "
        "threshold, which you can move and save on the Evaluate page; the downloads have it in a column).")
    st.caption("**confidence** is the probability the model gives its answer; the probability columns show how it "
               "split its belief. A confident model can still be wrong." + decided
               + ("" if run.kind == "images" else " The downloads keep your columns first, in your file's order, "
                  "then the answers.")
               + (" Showing the first 1,000 rows; the downloads have all." if len(result) > 1000 else ""))
csv_col, excel_col = st.columns(2)
csv_col.download_button("Download the predictions (CSV)", csv, file_name=f"predictions-{run.run_id}.csv",
                        mime="text/csv", type="primary", icon=":material/download:", on_click="ignore", width="stretch")
too_many = len(result) > EXCEL_MAX_ROWS
excel_col.download_button("Download the predictions (Excel)", views.predictions_excel(job.run_dir),
                          disabled=too_many,
                          file_name=f"predictions-{run.run_id}.xlsx", icon=":material/table_view:", on_click="ignore",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", width="stretch",
                          help=f"More rows than an Excel sheet holds ({EXCEL_MAX_ROWS:,}): use the CSV." if too_many
                          else "Text that a spreadsheet would run as a formula (starting with =, +, -, @) is kept "
                               "as text, behind a ' — in the CSV too.")
closer_view.explain_prediction(run, result)  # why one row got its prediction
