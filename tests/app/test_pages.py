"""The Data, Evaluate, Predict and Runs pages through Streamlit's AppTest: from an empty session,
with data, and with runs trained beforehand (inline, into a temporary runs folder)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.datasets import SAMPLE_DIR
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import load_manifest
from tests.core.helpers import churn_like
from ui.state import threshold_key

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def tiny_shapes(folder: Path, per_class: int = 8) -> Path:
    """A zip of a few images per class from the bundled shapes set (trains in a second)."""
    path = folder / "tiny-shapes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for png in sorted((SAMPLE_DIR / "shapes").rglob("*.png")):
            if int(png.stem) < per_class:
                archive.write(png, f"{png.parent.name}/{png.name}")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A classification (iris), a regression (diabetes) and an image (shapes) run, trained once."""
    folder = tmp_path_factory.mktemp("runs")
    sources = {"iris": SAMPLE_DIR / "iris.csv", "diabetes": SAMPLE_DIR / "diabetes.csv",
               "shapes": tiny_shapes(tmp_path_factory.mktemp("images"))}
    # One model each (the Evaluate page is under test here, not the contest): boosting has a
    # linear baseline beside it.
    return {name: run_job(JobSpec(source=str(source), runs_dir=str(folder),
                                  overrides=Overrides(max_epochs=1 if name == "shapes" else 20,
                                                      model="auto" if name == "shapes" else "hgb")))
            for name, source in sources.items()}


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    """A yes/no run (churn-like table, linear model: seconds to train), in its own runs folder."""
    folder = tmp_path_factory.mktemp("binary")
    churn_like(n=300).to_csv(folder / "churn.csv", index=False)
    return run_job(JobSpec(source=str(folder / "churn.csv"), target="churned", runs_dir=str(folder / "runs"),
                           overrides=Overrides(model="linear")))


@pytest.fixture
def runs_dir(runs, monkeypatch) -> Path:
    folder = next(iter(runs.values())).parent
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _inline_jobs(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(tmp_path / "no-runs"))


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def figures(at) -> list[dict]:
    """The plotly figures the page drew, as the JSON the browser receives."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def gallery_traces(at) -> tuple[int, int]:
    """(pictures, saliency overlays) in the image gallery: the one figure made of image traces titled
    "true … → said …" (the confusion cell's thumbnails are titled by confidence only)."""
    galleries = [f["data"] for f in figures(at) if any(t["type"] == "image" for t in f["data"])
                 and any("→ said" in a.get("text", "") for a in f["layout"].get("annotations", ()))]
    assert len(galleries) == 1, f"expected one image gallery, found {len(galleries)}"
    kinds = [t["type"] for t in galleries[0]]
    return kinds.count("image"), kinds.count("heatmap")


def plotly_array(value) -> np.ndarray:
    """A trace's array from the figure JSON: a plain list, or plotly's base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
    return np.asarray(value)


def pr_point(at) -> dict:
    """The marked threshold point of the precision-recall figure the page drew."""
    shown = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "") == "Precision-recall"]
    assert len(shown) == 1, f"expected one precision-recall figure, found {len(shown)}"
    return shown[0]["data"][-1]


def confusion_shown(at) -> tuple[str, np.ndarray]:
    """The title and the cell values of the confusion matrix the page drew."""
    shown = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith("Confusion matrix")]
    assert len(shown) == 1, f"expected one confusion matrix, found {len(shown)}"
    return shown[0]["layout"]["title"]["text"], plotly_array(shown[0]["data"][0]["z"])


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def open_evaluate(run_dir: Path, timeout: float = 60) -> AppTest:
    """The Evaluate page on ``run_dir``, as the Train page leaves it after a run."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["run_dir"] = str(run_dir)
    at.run().switch_page("app_pages/evaluate.py").run()
    assert not at.exception, at.exception
    return at


# ---------------------------------------------------------------- empty session


def test_data_page_from_empty_session_says_what_to_do():
    at = app()
    assert at.title[0].value == "Data"
    assert "Nothing loaded yet" in texts(at.info)
    assert {b.key for b in at.button} >= {"sample-iris.csv", "sample-churn.csv", "sample-digits.zip"}


@pytest.mark.parametrize("page", ["app_pages/evaluate.py", "app_pages/predict.py", "app_pages/runs.py"])
def test_run_pages_without_runs_say_so_and_link_to_train(page):
    at = app(page)
    assert "No trained runs yet" in texts(at.info)
    assert any(link.proto.page.endswith("train.py") or "Train" in link.proto.label for link in at.get("page_link"))


# ---------------------------------------------------------------- Data


def test_sample_table_shows_detection_target_task_and_roles():
    at = app()
    at.button(key="sample-iris.csv").click().run()
    assert not at.exception
    assert at.header[0].value == "Loaded: iris.csv"
    assert "150 rows × 5 columns" in texts(at.markdown)
    assert at.selectbox(key="data_target").value == "species"
    assert "a choice between 3 classes" in texts(at.markdown)
    assert "Ready: 4 columns will be used to predict 'species'." in texts(at.success)
    assert len(at.data_editor) == 1 and len(at.get("plotly_chart")) == 1
    assert "Bars show how many rows each class has" in texts(at.caption)
    assert at.session_state["target"] == "species"  # set at load time, so the sidebar shows it at once


def test_uploaded_csv_is_loaded_once_and_target_can_change():
    frame = pd.read_csv(SAMPLE_DIR / "iris.csv")
    at = app()
    at.file_uploader(key="data_table_upload").set_value(("flowers.csv", csv_bytes(frame), "text/csv")).run()
    assert not at.exception
    assert at.header[0].value == "Loaded: flowers.csv"
    loaded = at.session_state["dataset"]
    assert Path(loaded.path).read_bytes() == csv_bytes(frame)  # written once for the training worker
    at.selectbox(key="data_target").set_value("petal_width").run()
    assert at.session_state["target"] == "petal_width"
    assert "a number (regression)" in texts(at.markdown)
    assert at.session_state["dataset"] is loaded  # a rerun does not load the file again


def test_unreadable_upload_shows_the_reason_not_a_traceback():
    at = app()
    at.file_uploader(key="data_table_upload").set_value(("notes.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "text/csv")).run()
    assert not at.exception
    assert "notes.csv" in texts(at.error)
    assert "Nothing loaded yet" in texts(at.info)


def test_role_changes_reach_the_prepared_table():
    at = app()
    at.button(key="sample-iris.csv").click().run()
    at.session_state["roles"] = {"petal_width": "ignore"}
    at.run()
    assert not at.exception
    assert "Ready: 3 columns will be used to predict 'species'." in texts(at.success)
    assert "Not used: 'petal_width' (ignored by you)." in texts(at.markdown)


def test_a_target_with_one_row_per_class_shows_the_fix():
    frame = pd.DataFrame({"x": range(12), "label": [f"c{i}" for i in range(12)]})
    at = app()
    at.file_uploader(key="data_table_upload").set_value(("tiny.csv", csv_bytes(frame), "text/csv")).run()
    assert not at.exception
    assert "at least 2 rows" in texts(at.error)


def test_sample_images_show_counts_and_tiles():
    at = app()
    at.button(key="sample-shapes.zip").click().run()
    assert not at.exception
    assert "720 images" in texts(at.markdown) and "3 classes" in texts(at.markdown)
    assert len(at.image) == 3  # one row of tiles per class
    assert "Bars show how many images each class has" in texts(at.caption)


def test_folder_upload_becomes_one_zip_and_refuses_unsafe_names():
    pngs = sorted((SAMPLE_DIR / "shapes").rglob("*.png"))
    files = [(f"shapes/{p.parent.name}/{p.name}", p.read_bytes(), "image/png")
             for p in pngs if int(p.stem) < 4]
    at = app()
    at.file_uploader(key="data_folder_upload").set_value(files).run()
    assert not at.exception
    assert at.header[0].value == "Loaded: shapes (folder)"
    assert at.session_state["dataset"].path.endswith("shapes.zip")
    assert "12 images" in texts(at.markdown)

    at.file_uploader(key="data_folder_upload").set_value(files + [("../evil/x.png", b"x", "image/png")]).run()
    assert not at.exception
    assert "unsafe file name" in texts(at.error)


# ---------------------------------------------------------------- Evaluate


def test_evaluate_classification_run(runs, runs_dir):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["iris"])  # as the Train page leaves it
    at.run().switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert at.selectbox(key="evaluate_run").value == str(runs["iris"])
    labels = [m.label for m in at.metric]
    assert labels == ["Macro F1", "Balanced accuracy", "Accuracy", "Log loss"]
    assert len(at.get("plotly_chart")) >= 5  # scores, confusion, two curves, loss, importances
    captions = texts(at.caption)
    for phrase in ("Rows are the true class", "Each point is one decision threshold", "The higher the curve",
                   "Loss on the training rows", "shuffled"):
        assert phrase in captions
    assert "linear baseline" in texts(at.success) + texts(at.warning)
    assert at.toggle(key="evaluate_normalised").value is False  # iris is balanced: counts first
    title, counts = confusion_shown(at)
    assert title == "Confusion matrix (counts)" and counts.sum() == load_manifest(runs["iris"])["split"]["n_valid"]
    at.toggle(key="evaluate_normalised").set_value(True).run()
    assert not at.exception
    title, shares = confusion_shown(at)
    assert title == "Confusion matrix (share of each true class)"
    np.testing.assert_allclose(shares, counts / counts.sum(axis=1, keepdims=True))
    assert not at.slider  # three classes: no threshold to move
    bundle = [b for b in at.get("download_button") if b.proto.label == "Download the model (zip)"]
    assert len(bundle) == 1 and not bundle[0].proto.disabled


def test_evaluate_shows_how_an_automatic_run_chose(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    run_dir = run_job(JobSpec(source=str(SAMPLE_DIR / "iris.csv"), runs_dir=str(folder),
                              overrides=Overrides(time_budget=30)))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(run_dir)
    at.run().switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert any(e.label.startswith("How the model was chosen") for e in at.expander)
    board = next(d.value for d in at.dataframe if "folds done" in d.value.columns)
    assert board["model"].str.contains("← delivered").sum() == 1
    assert {"Linear model", "Histogram gradient boosting"} <= {m.split(" ←")[0] for m in board["model"]}
    assert "Tried on" in texts(at.markdown) and "took no part in the choice" in texts(at.caption)


def test_evaluate_regression_run(runs, runs_dir):
    at = app("app_pages/evaluate.py")
    at.selectbox(key="evaluate_run").set_value(str(runs["diabetes"])).run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["R²", "Mean absolute error", "Root mean squared error"]
    assert "Each dot is a validation row" in texts(at.caption)
    assert not at.slider
    assert "The worst errors" in texts(at.subheader)
    assert at.session_state["run_dir"] == str(runs["diabetes"])  # Predict opens the same run


def test_evaluate_image_run_shows_the_confident_mistakes(runs, runs_dir):
    at = app("app_pages/evaluate.py")
    at.selectbox(key="evaluate_run").set_value(str(runs["shapes"])).run()
    assert not at.exception
    assert "The most confident mistakes" in texts(at.subheader)
    assert "Red marks the pixels" in texts(at.caption)
    assert "Which columns matter" not in texts(at.subheader)  # images have saliency, not importances
    assert at.toggle(key="evaluate_saliency").value is True
    pictures, overlays = gallery_traces(at)
    assert pictures > 0 and overlays == pictures  # one red saliency layer over every picture
    at.toggle(key="evaluate_saliency").set_value(False).run()
    assert not at.exception
    assert gallery_traces(at) == (pictures, 0)  # the same pictures, no overlay


def test_evaluate_binary_threshold_moves_the_matrix_and_saves_for_predict(binary_run, tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    run = Path(shutil.copytree(binary_run, folder / binary_run.name))
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    new = churn_like(n=60, seed=3).drop(columns="churned")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(run)
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("new.csv", csv_bytes(new), "text/csv")).run()
    assert not at.exception
    before = at.dataframe[0].value
    assert "at least 0.50" in texts(at.caption)

    at.switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    slider = at.slider(key=threshold_key(run.name))
    assert slider.value == pytest.approx(0.5)
    title, counts = confusion_shown(at)
    assert title == "Confusion matrix (counts, threshold 0.50)"
    assert counts.tolist() == load_manifest(run)["confusion_matrix"]["matrix"]  # 0.5: what training saved
    assert pr_point(at)["name"] == "threshold 0.50"
    assert "The red dot is the threshold" in texts(at.caption)
    save = next(b for b in at.button if b.label.startswith("Save threshold"))
    assert save.disabled  # nothing to save yet

    slider.set_value(0.2).run()
    assert not at.exception
    title, lowered = confusion_shown(at)
    assert title == "Confusion matrix (counts, threshold 0.20)"
    assert lowered.sum() == counts.sum() and lowered[:, 1].sum() > counts[:, 1].sum()  # more called "yes"
    assert lowered.sum(axis=1).tolist() == counts.sum(axis=1).tolist()  # the truth does not move
    point = pr_point(at)
    assert point["name"] == "threshold 0.20"
    assert plotly_array(point["x"])[0] == pytest.approx(lowered[1, 1] / lowered[1].sum())  # recall
    next(b for b in at.button if b.label == "Save threshold 0.20 with this run").click().run()
    assert not at.exception
    assert "threshold 0.20" in texts(at.success)
    assert load_manifest(run)["threshold"] == {"value": pytest.approx(0.2), "metric": None, "chosen_by": "you"}
    assert "0.20 (chosen by you)" in texts(at.caption)
    assert next(b for b in at.button if b.label.startswith("Save threshold")).disabled

    at.switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("new.csv", csv_bytes(new), "text/csv")).run()
    assert not at.exception
    after = at.dataframe[0].value
    p_yes = after["probability of yes"].to_numpy()
    assert (after["predicted churned"] == np.where(p_yes >= 0.2, "yes", "no")).all()
    assert (after["predicted churned"] == "yes").sum() > (before["predicted churned"] == "yes").sum()
    assert "at least 0.20" in texts(at.caption)


# ---------------------------------------------------------------- Predict


def test_predict_on_a_table_without_the_target(runs, runs_dir):
    frame = pd.read_csv(SAMPLE_DIR / "iris.csv").drop(columns="species").head(25)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["iris"])
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("new.csv", csv_bytes(frame), "text/csv")).run()
    assert not at.exception
    assert "25 predictions" in texts(at.success)
    shown = at.dataframe[0].value
    answers = ["predicted species", "confidence", "probability of setosa", "probability of versicolor",
               "probability of virginica"]
    assert list(shown.columns) == list(frame.columns) + answers  # the file's layout: its columns first
    assert len(shown) == 25 and set(shown["predicted species"]) <= {"setosa", "versicolor", "virginica"}
    assert [b.proto.label for b in at.get("download_button")] == ["Download the predictions (CSV)",
                                                                  "Download the predictions (Excel)"]
    assert not at.info  # no extra column to list


def test_predict_lists_the_columns_it_keeps_but_does_not_use(runs, runs_dir):
    frame = pd.read_csv(SAMPLE_DIR / "iris.csv").head(10).assign(comment="=HYPERLINK(1)")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["iris"])
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("new.csv", csv_bytes(frame), "text/csv")).run()
    assert not at.exception
    assert "Kept as they are, not used by the model: `species`, `comment`." in texts(at.info)
    assert at.dataframe[0].value["comment"].tolist() == ["=HYPERLINK(1)"] * 10  # shown as it is, escaped in files


def test_predict_names_the_missing_columns(runs, runs_dir):
    frame = pd.read_csv(SAMPLE_DIR / "iris.csv")[["sepal_length", "species"]]
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["iris"])
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_table").set_value(("partial.csv", csv_bytes(frame), "text/csv")).run()
    assert not at.exception
    assert "lacks 3 column(s)" in texts(at.error) and "'petal_length'" in texts(at.error)


def test_predict_sorts_uploaded_images(runs, runs_dir, tmp_path):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["shapes"])
    at.run().switch_page("app_pages/predict.py").run()
    zipped = tiny_shapes(tmp_path, per_class=2).read_bytes()
    at.file_uploader(key="predict_zip").set_value(("new-shapes.zip", zipped, "application/zip")).run()
    assert not at.exception
    assert "6 predictions" in texts(at.success)
    shown = at.dataframe[0].value
    assert list(shown.columns[:3]) == ["file", "predicted class", "confidence"]
    assert len(shown) == 6 and set(shown["predicted class"]) <= {"circle", "square", "triangle"}


def test_predict_on_a_zip_without_class_folders_shows_thumbnails(runs, runs_dir, tmp_path):
    flat = io.BytesIO()
    with zipfile.ZipFile(flat, "w") as archive:
        for i, png in enumerate(sorted((SAMPLE_DIR / "shapes").rglob("*.png"))[::97][:5]):
            archive.write(png, f"photo-{i}.png")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(runs["shapes"])
    at.run().switch_page("app_pages/predict.py").run()
    at.file_uploader(key="predict_zip").set_value(("unsorted.zip", flat.getvalue(), "application/zip")).run()
    assert not at.exception
    assert "5 predictions" in texts(at.success)
    shown = at.dataframe[0].value
    assert shown["file"].tolist() == [f"photo-{i}.png" for i in range(5)]
    grid = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in grid["layout"]["annotations"] if a["text"]]
    assert titles == [f"{p} · {c:.0%}" for p, c in zip(shown["predicted class"], shown["confidence"], strict=True)]
    assert len(at.get("download_button")) == 2


# ---------------------------------------------------------------- Runs


def test_runs_lists_compares_and_opens(runs, runs_dir):
    at = app("app_pages/runs.py")
    table = at.dataframe[0].value
    assert len(table) == 3 and set(table["data"]) == {"iris.csv", "diabetes.csv", "tiny-shapes.zip"}
    at.multiselect(key="runs_picked").set_value([str(p) for p in runs.values()]).run()
    assert not at.exception
    assert "trained on different data" in texts(at.warning)  # three data: nothing to compare
    assert not at.get("plotly_chart")
    assert not [b for b in at.get("download_button") if b.proto.label == "Download the model (zip)"]
    at.multiselect(key="runs_picked").set_value([str(runs["diabetes"])]).run()
    bundle = [b for b in at.get("download_button") if b.proto.label == "Download the model (zip)"]
    assert len(bundle) == 1 and not bundle[0].proto.disabled  # one run picked: its bundle
    next(b for b in at.button if b.label == "Open in Evaluate").click().run()
    assert not at.exception
    assert at.title[0].value == "Evaluate"
    assert at.selectbox(key="evaluate_run").value == str(runs["diabetes"])


def test_runs_delete_asks_first(runs, tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    copy = Path(shutil.copytree(runs["iris"], folder / runs["iris"].name))
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    at = app("app_pages/runs.py")
    at.multiselect(key="runs_picked").set_value([str(copy)]).run()
    next(b for b in at.button if b.label == "Delete…").click().run()
    assert "for good" in texts(at.warning) and copy.exists()
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert not at.warning and copy.exists()
    next(b for b in at.button if b.label == "Delete…").click().run()
    next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert not at.exception
    assert not copy.exists()
    assert "No trained runs yet" in texts(at.info)


def test_runs_and_train_say_which_jobs_a_stopped_server_lost(runs, tmp_path, monkeypatch):
    import subprocess

    from core.jobs import journal
    from ui import state

    folder = tmp_path / "runs"
    shutil.copytree(runs["iris"], folder / runs["iris"].name)
    gone = subprocess.Popen(["true"])  # the earlier server: its process has ended
    gone.wait()
    (folder / journal.FOLDER).mkdir()
    (folder / journal.FOLDER / f"{gone.pid}-job-7.json").write_text(json.dumps(
        {"name": "sales.csv", "mode": "train", "started": 1.0, "pid": gone.pid, "pid_start": "1"}))
    (folder / journal.FOLDER / f"{gone.pid}-job-8.json").write_text(json.dumps(  # a classmate's
        {"name": "theirs.csv", "mode": "train", "started": 2.0, "pid": gone.pid, "pid_start": "1",
         "workspace": "0123456789abcdef"}))
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    state.lost_jobs.clear()  # read once per server: this test is a new server
    try:
        at = app("app_pages/runs.py")
        assert "1 job that was running when the server stopped was lost (sales.csv)" in texts(at.warning)
        assert len(at.dataframe[0].value) == 1  # the finished run is listed as before
        at.switch_page("app_pages/train.py").run()
        assert at.title[0].value == "Train" and "was lost (sales.csv)" in texts(at.warning)
    finally:
        state.lost_jobs.clear()
