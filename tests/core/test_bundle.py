"""The model bundle (``core.export.bundle``): unpacked into a fresh folder, its README's snippet (or
its predict.py) runs in a clean Python without Trainboard and answers as the app does."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.errors import RunError
from core.export.bundle import build_bundle, write_bundle
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.predict import predict_images, predict_table
from core.run_record import read_run
from core.runs import save_threshold
from tests.core.helpers import churn_like, table, with_free_text

ROOT = Path(__file__).resolve().parents[2]
CHECK_ISOLATED = """
import sys
from pathlib import Path
here = Path.cwd().resolve()
for name in ("core", "predict"):
    module = sys.modules.get(name)
    assert module is None or here in Path(module.__file__).resolve().parents, (name, module.__file__)
assert not any(p and Path(p).resolve() == Path({root!r}) for p in sys.path), sys.path
"""


def _train(folder: Path, data: Path, target: str, **overrides) -> Path:
    return run_job(JobSpec(source=str(data), target=target, runs_dir=str(folder / "runs"),
                           overrides=Overrides(**overrides)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A contest run (binary, with a date and a text column, its threshold moved), an MLP run."""
    folder = tmp_path_factory.mktemp("bundle")
    data = folder / "churn.csv"
    with_free_text(churn_like(n=200), 0).to_csv(data, index=False)
    contest = _train(folder, data, "churned", model="auto", time_budget=20)
    mlp = _train(folder, data, "churned", model="mlp", max_epochs=3)
    return folder, contest, mlp


def _unpack(data: bytes, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(into)
    return into


def _python_snippet(readme: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README shows one Python snippet"
    return blocks[0]


def _run_snippet(folder: Path) -> None:
    """The README's Python snippet, run from the bundle's folder by a clean interpreter: no
    PYTHON* variables, no user site, no Trainboard on the path."""
    code = _python_snippet((folder / "README.md").read_text()) + CHECK_ISOLATED.format(root=str(ROOT))
    (folder / "snippet.py").write_text(code)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-E", "-s", "snippet.py"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _assert_same_answers(ours: pd.DataFrame, theirs: pd.DataFrame, label: str, classes) -> None:
    assert len(ours) == len(theirs)
    assert ours[label].astype(str).tolist() == theirs[label].astype(str).tolist()
    for c in classes:
        np.testing.assert_allclose(theirs[f"probability of {c}"], ours[f"probability of {c}"], atol=1e-6, rtol=0)


def test_scikit_learn_bundle_predicts_as_the_app_at_the_runs_threshold(runs, tmp_path):
    folder, run_dir, _ = runs
    new = with_free_text(churn_like(n=150, seed=3), 4).drop(columns=["churned"])
    p_yes = predict_table(run_dir, table(new), folder / "runs")["probability of yes"]
    threshold = float(np.median(p_yes))  # away from 0.5: answers at 0.5 would differ
    assert abs(threshold - 0.5) > 0.01
    run = save_threshold(run_dir, threshold, folder / "runs")
    ours = predict_table(run_dir, table(new), folder / "runs")

    bundle = _unpack(build_bundle(run_dir, folder / "runs"), tmp_path / "bundle")
    assert {"README.md", "manifest.json", "requirements.txt", "model.joblib"} <= {p.name for p in bundle.iterdir()}
    assert json.loads((bundle / "manifest.json").read_text())["threshold"]["value"] == pytest.approx(threshold)
    readme = (bundle / "README.md").read_text()
    assert f"{threshold:.4g}" in readme and "pip install -r requirements.txt" in readme
    requirements = (bundle / "requirements.txt").read_text()
    assert f"scikit-learn=={run.versions['scikit-learn']}" in requirements and "pandas==" in requirements
    assert "torch" not in requirements and "streamlit" not in requirements
    # Only the pieces of Trainboard's code the pickle names: no registry, no training code.
    features = (bundle / "core" / "features.py").read_text()
    assert "class ColumnCaster" in features and "def dense_preprocessor" not in features

    new.to_csv(bundle / "new_rows.csv", index=False)
    _run_snippet(bundle)
    theirs = pd.read_csv(bundle / "predictions.csv")
    _assert_same_answers(ours, theirs, "predicted churned", run.classes)
    assert (ours["predicted churned"] == np.where(p_yes >= threshold, "yes", "no")).all()


def test_the_bundle_is_the_same_bytes_each_time_in_a_fixed_order(runs):
    folder, run_dir, _ = runs
    first, second = build_bundle(run_dir, folder / "runs"), build_bundle(run_dir, folder / "runs")
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names[:4] == ["README.md", "manifest.json", "requirements.txt", "model.joblib"]
    assert names[4:] == sorted(names[4:]) and all(n.startswith("core/") for n in names[4:])


def test_mlp_bundle_predict_py_rebuilds_the_network(runs, tmp_path):
    folder, _, run_dir = runs
    run = read_run(run_dir, predictions=False)
    new = with_free_text(churn_like(n=80, seed=8), 9).drop(columns=["churned"])
    ours = predict_table(run_dir, table(new), folder / "runs")

    bundle = _unpack(build_bundle(run_dir, folder / "runs"), tmp_path / "bundle")
    assert {"model.pt", "model.json", "predict.py", "preprocess.joblib"} <= {p.name for p in bundle.iterdir()}
    script = (bundle / "predict.py").read_text()
    assert "def build_module(" in script and "weights_only=True" in script and "from core" not in script
    assert "torch==" in (bundle / "requirements.txt").read_text()
    new.to_csv(bundle / "new_rows.csv", index=False)
    _run_snippet(bundle)
    theirs = pd.read_csv(bundle / "predictions.csv")
    _assert_same_answers(ours, theirs, "predicted churned", run.classes)
    assert theirs["customer_id"].tolist() == new["customer_id"].tolist()  # the input's columns kept, in order


def _draw(kind: str, seed: int, size: int = 24) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    a, b = sorted(rng.integers(3, size - 3, 2))
    if kind == "bar":
        image[:, a:b + 3] = (200, 30, 30)
    else:
        image[a:b + 3, :] = (30, 30, 200)
    return Image.fromarray(image)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn-bundle")
    for kind in ("bar", "band"):
        (folder / "train" / kind).mkdir(parents=True)
        for i in range(16):
            _draw(kind, i).save(folder / "train" / kind / f"{i:02d}.png")
    return folder, _train(folder, folder / "train", None, model="cnn", max_epochs=2)


def test_cnn_bundle_predicts_a_folder_of_images_as_the_app(cnn_run, tmp_path):
    folder, run_dir = cnn_run
    unlabelled = tmp_path / "new_images"
    (unlabelled / "more").mkdir(parents=True)
    for i in range(5):
        _draw("bar" if i % 2 else "band", 100 + i, size=30).save(unlabelled / f"img{i}.png")
    _draw("bar", 200).convert("L").save(unlabelled / "more" / "grey.jpg")  # other size, mode and format
    (unlabelled / "notes.txt").write_text("not an image")
    ours = predict_images(run_dir, unlabelled, "new_images", folder / "runs")

    bundle = _unpack(build_bundle(run_dir, folder / "runs"), tmp_path / "bundle")
    assert not (bundle / "core").exists()  # nothing pickled: predict.py is all it needs
    shutil.copytree(unlabelled, bundle / "new_images")
    _run_snippet(bundle)
    theirs = pd.read_csv(bundle / "predictions.csv")
    assert theirs["file"].tolist() == ours["file"].tolist() == [f"img{i}.png" for i in range(5)] + ["more/grey.jpg"]
    _assert_same_answers(ours, theirs, "predicted class", read_run(run_dir, predictions=False).classes)


def test_cli_bundle_writes_the_zip_and_refuses_runs_outside_runs_dir(runs, tmp_path, capsys):
    from core.cli import main

    folder, run_dir, _ = runs
    out = tmp_path / "run.zip"
    assert main(["bundle", str(run_dir), "--out", str(out), "--runs-dir", str(folder / "runs")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"out": str(out),
                                                                           "bytes": out.stat().st_size}
    assert zipfile.ZipFile(out).read("manifest.json") == (run_dir / "manifest.json").read_bytes()

    elsewhere = shutil.copytree(run_dir, tmp_path / "elsewhere" / run_dir.name)
    assert main(["bundle", str(elsewhere), "--out", str(tmp_path / "x.zip"), "--runs-dir", str(folder / "runs")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: Only runs saved by this app") and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(RunError):
        write_bundle(elsewhere, folder / "runs", tmp_path / "y.zip")


def test_a_blend_of_forest_and_linear_with_text_loads_from_the_cut_code_alone(runs, tmp_path):
    """The contest may deliver a blend (``AveragedModels``, which imports a helper inside a method)
    of a forest (``_NanFill``, ``TextStack``) and a linear model (``TextVectors``): the code cut for
    its pickle is enough for a clean interpreter to load it and predict the same."""
    import joblib

    from core.export.bundle import _pickle_code, pickled_globals
    from core.models.tabular import AveragedModels
    from core.runs import load_model

    folder = runs[0]
    data = folder / "churn.csv"
    members = [load_model(_train(folder, data, "churned", model=key, max_epochs=20), folder / "runs")[0]
               for key in ("forest", "linear")]
    blend = AveragedModels(members, ("no", "yes"))
    found = pickled_globals(blend)
    assert {("core.models.tabular", "AveragedModels"), ("core.models.tabular", "_NanFill"),
            ("core.features", "TextStack"), ("core.features", "TextVectors")} <= found
    out = tmp_path / "blend"
    out.mkdir()
    for name, text in _pickle_code(found, "model.joblib").items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    joblib.dump(blend, out / "model.joblib")
    new = with_free_text(churn_like(n=60, seed=21), 22)
    new.to_csv(out / "rows.csv", index=False)
    expected = blend.predict_proba(new)
    (out / "snippet.py").write_text(
        "import joblib, numpy as np, pandas as pd\n"
        "np.save('proba.npy', joblib.load('model.joblib').predict_proba(pd.read_csv('rows.csv')))\n"
        + CHECK_ISOLATED.format(root=str(ROOT)))
    done = subprocess.run([sys.executable, "-E", "-s", "snippet.py"], cwd=out, capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": str(out)}, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out / "proba.npy"), expected, atol=1e-9)


def test_cut_code_refuses_a_name_its_module_does_not_define():
    from core.export.source import cut

    with pytest.raises(ValueError, match="defines no 'NoSuchTransformer'"):
        cut({"core.features": ["NoSuchTransformer"]})


def test_flat_source_runs_alone_with_one_import_block_and_refuses_a_name_meaning_two_things():
    from core.export.source import FlatSource

    pieces = FlatSource()
    assert pieces.add(("core.images", "_pixels")) == "_pixels"
    pieces.import_line("from PIL import Image, ImageDraw")
    block = pieces.import_block()
    assert block.count("from PIL import") == 1 and "Image" in block and "ImageDraw" in block
    namespace: dict = {}
    exec(compile(block + "\n\n\n" + "\n\n\n".join(t for _, t in pieces.definitions()), "flat.py", "exec"), namespace)
    picture = namespace["Image"].new("RGB", (40, 20), "red")
    assert namespace["_pixels"](picture, 8, 3).shape == (3, 8, 8)
    pieces.import_line("from numpy import zeros as _pixels")
    with pytest.raises(ValueError, match="'_pixels' would mean both"):
        pieces.definitions()


def test_a_run_too_large_to_bundle_is_refused_before_anything_is_read(runs, monkeypatch):
    import core.export.bundle as bundle

    folder, run_dir, _ = runs
    run = read_run(run_dir, predictions=False)
    assert bundle.bundle_problem(run) is None
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", 1000)
    monkeypatch.setattr(bundle, "_members", lambda *a: pytest.fail("read a run it should refuse"))
    assert "too large to bundle" in bundle.bundle_problem(run)
    with pytest.raises(RunError, match="too large to bundle"):
        build_bundle(run_dir, folder / "runs")


@pytest.mark.parametrize(("sample", "model"), [("regression", "linear"), ("regression", "mlp"), ("iris", "hgb")])
def test_regression_and_multiclass_bundles_predict_as_the_app(sample, model, tmp_path):
    from core.datasets import SAMPLE_DIR
    from tests.core.helpers import regression_table

    frame = regression_table(n=150) if sample == "regression" else pd.read_csv(SAMPLE_DIR / "iris.csv")
    target = "y" if sample == "regression" else "species"
    frame.to_csv(tmp_path / "data.csv", index=False)
    run_dir = _train(tmp_path, tmp_path / "data.csv", target, model=model, max_epochs=5)
    run = read_run(run_dir, predictions=False)
    new = frame.drop(columns=[target]).sample(40, random_state=1)
    ours = predict_table(run_dir, table(new), tmp_path / "runs")

    bundle = _unpack(build_bundle(run_dir, tmp_path / "runs"), tmp_path / "bundle")
    new.to_csv(bundle / "new_rows.csv", index=False)
    _run_snippet(bundle)
    theirs = pd.read_csv(bundle / "predictions.csv")
    label = f"predicted {target}"
    if run.task == "regression":
        np.testing.assert_allclose(theirs[label], ours[label], atol=1e-6, rtol=1e-9)
    else:
        assert run.task == "multiclass"
        _assert_same_answers(ours, theirs, label, run.classes)
