"""Predict: apply a trained model to new rows or images and download the answers."""

import streamlit as st

from core.datasets import load_table
from core.errors import TrainboardError
from core.images import IMAGE_SUFFIXES
from core.predict import predict_images
from ui import state, views

TABLE_TYPES = ["csv", "tsv", "txt", "xlsx", "xlsm", "parquet", "pq"]

st.title("Predict")
st.caption("Use a trained model on new data it has never seen, and download its answers.")
run = views.pick_run("predict_run", label="Model to use (a trained run)")
if run is None:
    st.stop()
try:
    manifest = views.cached_report(run.path).manifest
except TrainboardError as err:
    st.error(str(err))
    st.stop()
data = manifest["data"]

if run.kind == "images":
    st.markdown(f"This model sorts images into **{len(data['classes'])} classes**: "
                + ", ".join(f"`{c}`" for c in data["classes"][:20]) + ". Upload the images to sort: any folder "
                "layout works, no class folders needed.")
    left, right = st.columns(2)
    archive = left.file_uploader("A zip of images", type=["zip"], max_upload_size=1000, key="predict_zip")
    folder = right.file_uploader("Or a folder of images", accept_multiple_files="directory", key="predict_folder",
                                 type=sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
    files = [archive] if archive is not None else list(folder or [])
else:
    needed = [c["name"] for c in data["columns"] if c["role"] in ("numeric", "categorical", "text", "datetime")]
    st.markdown(f"This model predicts **{data['target']}** from {len(needed)} columns: "
                + ", ".join(f"`{c}`" for c in needed) + ". The new table needs those columns (same names); "
                f"other columns are kept, and `{data['target']}` may be missing.")
    upload = st.file_uploader("A table of new rows: CSV, TSV, TXT, Excel (.xlsx) or Parquet", type=TABLE_TYPES,
                              max_upload_size=500, key="predict_table")
    files = [upload] if upload is not None else []

if not files:
    st.info("Upload the new data above to see the model's predictions.")
    st.stop()

key = (str(run.path), tuple(f.file_id for f in files))
memo = st.session_state.get("_predict_result")
if memo is None or memo[0] != key:
    try:
        if run.kind == "images":
            with st.spinner("Reading and sorting the images…"):
                source = archive if archive is not None else [(f.name, f.getvalue()) for f in files]
                result = predict_images(run.path, source, files[0].name if archive is not None else "folder",
                                        runs_dir=state.runs_dir())
        else:
            with st.spinner("Reading the table…"):
                table = load_table(files[0], name=files[0].name)
            bar = st.progress(0.0, text=f"Predicting {table.load.n_rows:,} rows…")
            result = views.predict_table_in_chunks(run.path, table, lambda done: bar.progress(done))
            bar.empty()
            answers = [c for c in result.columns if c not in table.frame.columns]
            result = result[answers + list(table.frame.columns)]  # the answers first, then the input
    except TrainboardError as err:
        st.error(str(err))
        st.stop()
    memo = (key, result, result.to_csv(index=False).encode("utf-8"))
    st.session_state["_predict_result"] = memo
_, result, csv = memo

st.success(f"{len(result):,} predictions with {run.model} ({run.source}).")
st.dataframe(result.head(1000), hide_index=True,
             column_config={"confidence": st.column_config.NumberColumn(format="percent")})
if run.task == "regression":
    st.caption("The first column is the model's prediction, the input columns follow. Expect errors about as "
               "large as the mean absolute error shown on Evaluate.")
else:
    st.caption("**confidence** is the probability the model gives its answer; the probability columns show how it "
               "split its belief. A confident model can still be wrong."
               + (" Showing the first 1,000 rows; the download has all." if len(result) > 1000 else ""))
st.download_button("Download the predictions (CSV)", csv, file_name=f"predictions-{run.run_id}.csv",
                   mime="text/csv", type="primary", icon=":material/download:", on_click="ignore")
