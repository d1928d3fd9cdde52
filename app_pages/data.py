"""Data: upload a table or images, or pick a bundled sample; see what was detected; choose the
target and the column roles."""

import streamlit as st

from core import limits, plots
from core.datasets import TABLE_UPLOAD_TYPES, load_table
from core.errors import TrainboardError
from core.images import IMAGE_UPLOAD_TYPES, class_counts, load_images_cached
from core.schema import guess_target
from ui import data_views as dv
from ui import pages, state, views

st.title("Data")
st.caption("Start here: give Trainboard a table (one row per example, one column to predict) or a set of "
           "images (one folder per class). Nothing leaves this server.")

table_tab, images_tab, sample_tab = st.tabs(["Upload a table", "Upload images", "Try a sample"])
with table_tab:
    upload = st.file_uploader("A table: CSV, TSV, TXT, Excel (.xlsx) or Parquet, with a header row",
                              type=TABLE_UPLOAD_TYPES, max_upload_size=limits.TABLE_MB.value(), key=state.DATA_TABLE_UPLOAD)
    if upload is not None:
        fp = f"table:{upload.file_id}"
        dv.use_upload(fp, upload.name, lambda: (path := state.save_upload(upload.name, upload.getvalue()),
                                                load_table(path, name=upload.name)))
        dv.upload_error(fp)
with images_tab:
    st.caption("Put each class's images in a folder named after the class (cats/, dogs/), then upload a zip "
               "of those folders, or the folder itself.")
    left, right = st.columns(2)
    archive = left.file_uploader("A zip of class folders", type=["zip"], max_upload_size=limits.IMAGES_MB.value(),
                                 key=state.DATA_ZIP_UPLOAD)
    folder = right.file_uploader("Or a folder of class folders", accept_multiple_files="directory",
                                 type=IMAGE_UPLOAD_TYPES, key=state.DATA_FOLDER_UPLOAD)
    if archive is not None:
        fp = f"zip:{archive.file_id}"
        dv.use_upload(fp, archive.name, lambda: (path := state.save_upload(archive.name, archive.getvalue()),
                                                 load_images_cached(path, name=archive.name)))
        dv.upload_error(fp)
    if folder:
        fp, top = "folder:" + ",".join(f.file_id for f in folder), dv.folder_name(folder)
        dv.use_upload(fp, f"{top} (folder)", lambda: (
            path := state.save_upload(f"{top}.zip", dv.zip_folder_upload(folder)),
            load_images_cached(path, name=f"{top} (folder)")))
        dv.upload_error(fp)
with sample_tab:
    st.caption("Small data sets bundled with Trainboard: one click loads one.")
    for sample in dv.samples():
        button, note = st.columns([1, 4], vertical_alignment="center")
        if button.button(sample.name, key=f"sample-{sample.name}", width="stretch",
                         icon=":material/table:" if sample.kind == "tabular" else ":material/image:"):
            try:
                data = dv.load_sample(str(sample.path), sample.kind)
            except TrainboardError as err:
                st.error(str(err))
            else:
                dv.switch_to(state.LoadedData(name=sample.name, path=str(sample.path), data=data, sample=True,
                                              fingerprint=f"sample:{sample.name}"))
        note.markdown(sample.note)

loaded = state.loaded()
if loaded is None:
    st.info("Nothing loaded yet: upload a file above, or open **Try a sample** to start in one click.")
    st.stop()

st.divider()
st.header(f"Loaded: {loaded.name}")
report = loaded.data.load
for warning in report.warnings:
    st.warning(warning)

if loaded.kind == "images":
    images = loaded.data
    colour = "colour" if images.channels == 3 else "greyscale"
    words, chart = st.columns(2)
    words.markdown(f"**{len(images.labels):,} images** in **{len(images.class_names)} classes**, resized to "
                   f"{images.image_size}×{images.image_size} pixels, {colour}. The class of each image is the "
                   "name of its folder.")
    if images.skipped:
        with words.expander(f"{len(images.skipped):,} files were skipped — why"):
            st.dataframe([{"file": name, "why": why} for name, why in images.skipped], hide_index=True)
    chart.plotly_chart(plots.class_balance(class_counts(images)).update_layout(height=300))
    chart.caption("Bars show how many images each class has. A class with far fewer images is learnt worse; "
                  "accuracy then hides it, so read the per-class results on Evaluate.")
    st.subheader("A few images per class")
    for name, tiles in dv.image_tiles(images):
        label, row = st.columns([1, 6], vertical_alignment="center")
        label.markdown(f"**{name}**")
        row.image(tiles, width=64)
    st.caption("As the model sees them: resized, with the colours it will train on.")
    dv.checks_panel(state.prepared().checks, loaded.fingerprint, None, (), images=images)
    pages.link(pages.TRAIN, "Next: Train a model", icon=":material/arrow_forward:")
    st.stop()

frame = loaded.data.frame
details = [f"{report.format.upper()} file", f"{report.n_rows:,} rows × {report.n_columns} columns"]
if report.encoding:
    separator = "tab" if report.delimiter == "\t" else report.delimiter
    details += [f"encoding {report.encoding}", f"values separated by “{separator}”", f"decimal mark “{report.decimal}”"]
st.markdown("**Detected:** " + " · ".join(details))
st.dataframe(frame.head(200), height=250, hide_index=True)
st.caption(f"The first {min(200, len(frame)):,} of {len(frame):,} rows, exactly as read. Empty cells are missing values.")

st.subheader("What should the model predict?")
columns = list(frame.columns)
if st.session_state.get(state.TARGET) not in columns:
    st.session_state[state.TARGET] = guess_target(frame)
st.session_state[state.DATA_TARGET] = st.session_state[state.TARGET]
target = st.selectbox("Target column", columns, key=state.DATA_TARGET,
                      help="The column whose value the model learns to predict from all the other columns.",
                      on_change=lambda: st.session_state.update({state.TARGET: st.session_state[state.DATA_TARGET]}))
roles = {k: v for k, v in (st.session_state.get(state.ROLES) or {}).items() if k != target}
st.session_state[state.ROLES] = roles
try:
    prepared = state.prepared()
except TrainboardError as err:
    prepared = None
    st.error(str(err))

if prepared is not None:
    words, chart = st.columns(2)
    words.markdown(f"Trainboard will learn **{views.task_words(prepared.task, len(prepared.classes))}**.")
    if prepared.task == "regression":
        y = prepared.y
        words.caption(f"'{target}' ranges from {y.min():,.4g} to {y.max():,.4g} (median {y.median():,.4g}).")
    else:
        counts = prepared.y.value_counts().reindex(list(prepared.classes), fill_value=0)
        chart.plotly_chart(plots.class_balance(counts.to_dict()).update_layout(height=300))
        chart.caption("Bars show how many rows each class has. When one class is much rarer, accuracy misleads "
                      "(always guessing the common class scores high): Trainboard then weights the classes and "
                      "leads with the precision-recall curve.")

findings = prepared.checks if prepared is not None else ()
if prepared is not None:
    dv.checks_panel(findings, loaded.fingerprint, target, dv.detected_columns(loaded.fingerprint, target, frame))

st.subheader("How each column is used")
st.caption("Trainboard decided a role for every column; change **use as** if it guessed wrong, or set "
           "**ignore** to leave a column out. Columns marked ignore never reach the model.")
chosen = dv.roles_editor(loaded.fingerprint, frame, target, roles, dv.left_out_by_checks(findings))
if chosen != roles:
    st.session_state[state.ROLES] = chosen
    st.rerun()

if prepared is not None:
    if prepared.messages:
        st.markdown("\n".join(f"- {m}" for m in prepared.messages))
    st.success(f"Ready: {len(prepared.used_columns)} columns will be used to predict '{target}'.")
    pages.link(pages.TRAIN, "Next: Train a model", icon=":material/arrow_forward:")
