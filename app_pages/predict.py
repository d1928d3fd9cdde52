"""Predict: apply a trained model to new rows or images and download the answers."""

import streamlit as st

from core.datasets import MAX_TABLE_MB, TABLE_UPLOAD_TYPES
from core.errors import TrainboardError
from core.images import IMAGE_UPLOAD_TYPES, MAX_IMAGES_MB
from core.pipeline import JobSpec
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
    archive = left.file_uploader("A zip of images", type=["zip"], max_upload_size=MAX_IMAGES_MB, key=state.PREDICT_ZIP)
    folder = right.file_uploader("Or a folder of images", accept_multiple_files="directory", key=state.PREDICT_FOLDER,
                                 type=IMAGE_UPLOAD_TYPES)
    files = [archive] if archive is not None else list(folder or [])
else:
    needed = data.feature_columns
    st.markdown(f"This model predicts **{data.target}** from {len(needed)} columns: "
                + ", ".join(f"`{c}`" for c in needed) + ". The new table needs those columns (same names); "
                f"other columns are kept, and `{data.target}` may be missing.")
    upload = st.file_uploader("A table of new rows: CSV, TSV, TXT, Excel (.xlsx) or Parquet", type=TABLE_UPLOAD_TYPES,
                              max_upload_size=MAX_TABLE_MB, key=state.PREDICT_TABLE)
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
st.dataframe(result.head(1000), hide_index=True,
             column_config={"confidence": st.column_config.NumberColumn(format="percent")})
if run.task == "regression":
    st.caption("The first column is the model's prediction, the input columns follow. Expect errors about as "
               "large as the mean absolute error shown on Evaluate.")
else:
    decided = "" if threshold is None else (
        f" It answers “{run.classes[-1]}” when that class's probability is at least {threshold:.2f} (the run's "
        "threshold, which you can move and save on the Evaluate page).")
    st.caption("**confidence** is the probability the model gives its answer; the probability columns show how it "
               "split its belief. A confident model can still be wrong." + decided
               + (" Showing the first 1,000 rows; the download has all." if len(result) > 1000 else ""))
st.download_button("Download the predictions (CSV)", csv, file_name=f"predictions-{run.run_id}.csv",
                   mime="text/csv", type="primary", icon=":material/download:", on_click="ignore")
closer_view.explain_prediction(run, result)  # why one row got its prediction
