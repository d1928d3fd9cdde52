"""A run as a zip a user takes away and uses without Trainboard (Evaluate and Runs' download,
``python -m core bundle``).

The zip holds the run's ``manifest.json`` (its threshold included), the model as saved
(``model.joblib`` for a scikit-learn pipeline; ``model.pt`` + ``model.json`` for a torch
network, and the MLP's ``preprocess.joblib``), ``requirements.txt`` with the versions the run was
trained with, and ``README.md`` whose Python snippet predicts on a CSV (or a folder of images)
exactly as the app does. Torch models come with ``predict.py``; pickles with ``core/``, the few
pieces of Trainboard's code they were pickled with, cut from its source by
``core.export.source`` so ``joblib.load`` finds them under the same import paths.
Members are written in a fixed order with the run's own timestamp, so a bundle's bytes depend
on the run only.
"""

from __future__ import annotations

import ast
import io
import pickle
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import core
from core.errors import RunError
from core.export.source import FlatSource, package_files
from core.predict import CONFIDENCE, PROBABILITY, THRESHOLD, prediction_column
from core.run_record import MANIFEST_FILE, RunRecord, read_run
from core.runs import load_model, resolve_run
from core.trusted import load_pickle, trusted_folder

#: A bundle is built in memory: runs whose files add up to more than this are refused.
MAX_BUNDLE_BYTES = 1 << 30
#: Packages a bundle's code imports under another name than its distribution's.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow"}


#: The model's files in a bundle, by kind of model: bundle name → the run folder's file.
_MODEL_FILES = {"sklearn": {"model.joblib": "model.joblib"},
                "mlp": {"model.pt": "mlp.pt", "model.json": "mlp.json", "preprocess.joblib": "preprocess.joblib"},
                "cnn": {"model.pt": "model.pt", "model.json": "model.json"}}


def _kind(run: RunRecord) -> str | None:
    return "sklearn" if run.model.family == "sklearn" else run.model.key if run.model.key in _MODEL_FILES else None


def bundle_problem(run: RunRecord) -> str | None:
    """Why ``build_bundle`` would refuse this run (its kind of model, its size), else None: the
    pages disable their button with this reason instead of failing on click."""
    kind = _kind(run)
    if kind is None:
        return f"Runs of the {run.model.label} cannot be packaged yet."
    size = sum((run.path / name).stat().st_size for name in (*_MODEL_FILES[kind].values(), MANIFEST_FILE)
               if (run.path / name).is_file())
    if size > MAX_BUNDLE_BYTES:
        return (f"The run '{run.run_id}' is {size / 2**20:,.0f} MB, too large to bundle here (at most "
                f"{MAX_BUNDLE_BYTES / 2**20:,.0f} MB); copy its folder instead.")
    return None


def bundle_name(run: RunRecord) -> str:
    """The download's file name."""
    return f"{run.run_id}-model.zip"


def build_bundle(run_dir: str | Path, runs_dir: str | Path) -> bytes:
    """The run's bundle as zip bytes (only runs inside ``runs_dir``: its model is unpickled to
    find what the pickle needs)."""
    path = resolve_run(run_dir, runs_dir)
    run = read_run(path, predictions=False)
    if problem := bundle_problem(run):  # checked on disk, before anything is read
        raise RunError(problem)
    members = _members(path, run, runs_dir)
    stamp = _timestamp(run)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def write_bundle(run_dir: str | Path, runs_dir: str | Path, out: str | Path) -> Path:
    """``build_bundle`` written to ``out`` (through a temporary file beside it)."""
    out = Path(out)
    data = build_bundle(run_dir, runs_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------- the members


def _members(path: Path, run: RunRecord, runs_dir: str | Path) -> dict[str, bytes]:
    """Every file of the bundle, in the order they are written."""
    manifest = (path / MANIFEST_FILE).read_bytes()
    kind = _kind(run)
    try:
        models = {name: (path / stored).read_bytes() for name, stored in _MODEL_FILES[kind].items()}
    except FileNotFoundError as err:
        raise RunError(f"The run '{run.run_id}' has no saved model ({Path(err.filename).name} is missing).") from None
    pickled: set[tuple[str, str]] = set()  # what the bundle's pickles name
    if kind == "sklearn":
        model, _ = load_model(path, runs_dir)
        pickled = pickled_globals(model)
        code, predict = _pickle_code(pickled, "model.joblib"), None
        readme, snippet_imports = _sklearn_readme(run), {"joblib", "pandas", "scipy"}  # scipy: scikit-learn's
    elif kind == "mlp":  # only its preparation is a pickle (loading the network would import torch)
        with trusted_folder(path, runs_dir):
            pickled = pickled_globals(load_pickle(path / "preprocess.joblib"))
        code, predict = _pickle_code(pickled, "preprocess.joblib"), _mlp_predict(run)
        readme, snippet_imports = _torch_readme(run, code=True), set()
    else:  # cnn
        code, predict = {}, _cnn_predict(run)
        readme, snippet_imports = _torch_readme(run, code=False), set()
    packages = _imported([predict or "", *code.values()]) | snippet_imports | {m.split(".")[0] for m, _ in pickled}
    requirements = _requirements(run, packages)
    members = {"README.md": readme.encode(), MANIFEST_FILE: manifest, "requirements.txt": requirements.encode(),
               **models}
    if predict is not None:
        members["predict.py"] = predict.encode()
    members.update({name: text.encode() for name, text in sorted(code.items())})
    return members


def _timestamp(run: RunRecord) -> tuple[int, int, int, int, int, int]:
    """The run's creation time (a zip's dates start in 1980)."""
    try:
        date, time = run.created.rstrip("Z").split("T")
        stamp = tuple(int(x) for x in date.split("-")) + tuple(int(x) for x in time.split(":"))
        return stamp if len(stamp) == 6 and stamp[0] >= 1980 else (1980, 1, 1, 0, 0, 0)
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)


# ---------------------------------------------------------------------------- what a pickle needs


class _GlobalsRecorder(pickle.Pickler):
    """Pickles into nothing, noting every class and function the pickle refers to by name."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.found: set[tuple[str, str]] = set()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) or callable(obj):
            module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if isinstance(module, str) and isinstance(name, str):
                self.found.add((module, name))
        return NotImplemented


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def pickled_globals(obj: Any) -> set[tuple[str, str]]:
    """``(module, name)`` of every class and function pickling ``obj`` names."""
    recorder = _GlobalsRecorder()
    recorder.dump(obj)
    return recorder.found


def _pickle_code(pickled: set[tuple[str, str]], model_file: str) -> dict[str, str]:
    """The ``core/`` files a pickle that names ``pickled`` needs, cut from Trainboard's source."""
    needed: dict[str, set[str]] = {}
    for module, name in pickled:
        if module == "core" or module.startswith("core."):
            needed.setdefault(module, set()).add(name.split(".")[0])
    if not needed:
        return {}
    header = (f"Trainboard {core.__version__}: the part of its own code that {model_file} was pickled with, cut from\n"
              "its source so the model loads without Trainboard. Keep this folder beside the model; do not edit it.\n")
    return package_files(needed, header)


def _imported(sources: list[str]) -> set[str]:
    """Top-level packages the given Python sources import."""
    found = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def _requirements(run: RunRecord, packages: set[str]) -> str:
    """``name==version`` for every package outside the standard library: the version the run
    recorded (manifest ``versions``), else the one installed when the bundle is made."""
    recorded = run.versions
    lines = [f"# What this bundle's code imports, at the versions run {run.run_id} was trained with",
             f"# (Python {recorded.get('python', '?')}). Install: python -m pip install -r requirements.txt"]
    later = []
    ours = {"core", "builtins", "__main__"}
    for dist in sorted({_DISTRIBUTIONS.get(p, p) for p in packages - set(sys.stdlib_module_names) - ours}, key=str.lower):
        if dist in recorded:
            lines.append(f"{dist}=={recorded[dist]}")
            continue
        try:
            later.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            later.append(dist)
    if later:
        lines.append("# not recorded by the run: the versions installed when this bundle was made")
        lines.extend(later)
    if "torch" in packages and "+" in recorded.get("torch", ""):
        lines.append("# torch's local build tag (+cpu, …) installs from https://download.pytorch.org/whl; "
                     "drop it for PyPI's build")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- README and predict.py


def _about(run: RunRecord) -> str:
    main = run.metrics.get(run.main_metric)
    score = f"; validation {run.main_metric} {main:.4g}" if isinstance(main, (int, float)) else ""
    what = "images" if run.kind == "images" else f"**{run.data.target}**"
    return (f"# {run.model.name}: Trainboard run `{run.run_id}`\n\n"
            f"Predicts {what} ({run.task}) — trained on `{run.data.source}` ({run.data.n_rows:,} rows), "
            f"created {run.created}{score}. `manifest.json` holds everything the app knew about the run.\n")


def _threshold_note(run: RunRecord) -> str:
    if run.task != "binary" or run.threshold is None:
        return ""
    positive, negative = run.classes[-1], run.classes[0]
    default = "" if run.threshold.value == 0.5 else " (a plain `model.predict` would decide at 0.5 instead)"
    return (f"**The decision threshold travels with the model.** The run answers “{positive}” when the "
            f"probability of “{positive}” is at least **{run.threshold.value:.4g}** (chosen by "
            f"{run.threshold.chosen_by}; manifest `threshold`), else “{negative}”. The lines below do the same, "
            f"so their answers are the app's{default}.\n")


def _fenced(language: str, code: str) -> str:
    return f"```{language}\n{code.strip()}\n```\n"


def _sklearn_readme(run: RunRecord) -> str:
    features = list(run.data.feature_columns)
    label = prediction_column(run)
    lines = [*_template("sklearn_snippet_head.py.txt").splitlines(),
             'rows = pd.read_csv("new_rows.csv")  # your file (Excel: pd.read_excel)',
             f"features = {features!r}",
             "X = rows[features]  # a KeyError names any column the file lacks"]
    if run.task == "regression":
        lines += [f"rows[{label!r}] = model.predict(X)"]
    else:
        lines += ['classes = manifest["data"]["classes"]',
                  "proba = pd.DataFrame(model.predict_proba(X), columns=[str(c) for c in model.classes_],",
                  "                     index=rows.index).reindex(columns=classes, fill_value=0.0)"]
        if run.task == "binary" and run.threshold is not None:
            lines += ['threshold = manifest["threshold"]["value"]  # the run\'s decision threshold',
                      f"rows[{label!r}] = [classes[1] if p >= threshold else classes[0] for p in proba[classes[1]]]"]
        else:
            lines += [f"rows[{label!r}] = proba.idxmax(axis=1)  # the most probable class"]
        lines += ["for c in classes:", f"    rows[{PROBABILITY!r} + c] = proba[c]"]
    lines += ['rows.to_csv("predictions.csv", index=False)']
    compile("\n".join(lines), "README.md", "exec")  # a snippet that does not parse would fail only at the user's
    return "\n".join([
        _about(run),
        "## Install\n",
        _fenced("bash", "python -m pip install -r requirements.txt"),
        "No Trainboard needed: the pipeline is scikit-learn's, with a few of Trainboard's own column "
        "transformers inside. Those are in `core/` (cut from Trainboard's source), which `joblib.load` "
        "finds when you run from this folder (or put this folder on `sys.path`). Load only bundles you "
        "trust: `joblib.load` runs code from the file.\n",
        "## Predict on a CSV\n",
        f"The file needs the columns {', '.join(f'`{c}`' for c in features)}; other columns are kept.\n",
        _threshold_note(run),
        _fenced("python", "\n".join(lines)),
    ])


def _torch_readme(run: RunRecord, code: bool) -> str:
    if run.kind == "images":
        usage = "python predict.py new_images/ --out predictions.csv"
        snippet = ["from predict import predict_folder  # predict.py, in this folder", "",
                   'predictions = predict_folder("new_images")  # any folder of images, no class folders',
                   'predictions.to_csv("predictions.csv", index=False)']
        what = (f"a folder of images (any layout), resized as Trainboard does ({run.data.image_size} px, "
                f"centre-cropped, {run.data.channels} channel(s))")
    else:
        usage = "python predict.py new_rows.csv --out predictions.csv"
        snippet = ["import pandas as pd", "", "from predict import predict_table  # predict.py, in this folder", "",
                   'rows = pd.read_csv("new_rows.csv")  # your file (Excel: pd.read_excel)',
                   'predict_table(rows).to_csv("predictions.csv", index=False)']
        what = "a CSV with the columns " + ", ".join(f"`{c}`" for c in run.data.feature_columns)
    pickles = (" `preprocess.joblib` (the column preparation, a scikit-learn pipeline) needs `core/`, a few of "
               "Trainboard's own transformers cut from its source; keep it beside `predict.py`. Load only bundles "
               "you trust: `joblib.load` runs code from the file." if code else "")
    return "\n".join([
        _about(run),
        "## Install\n",
        _fenced("bash", "python -m pip install -r requirements.txt"),
        "No Trainboard needed: `predict.py` rebuilds the network from `model.json` (its definition is "
        "Trainboard's own, copied from its source) and loads the weights with "
        f"`torch.load(..., weights_only=True)`.{pickles}\n",
        f"## Predict on {what}\n",
        _threshold_note(run),
        _fenced("bash", usage),
        "or from Python:\n",
        _fenced("python", "\n".join(snippet)),
    ])


#: The code a bundle hands to its user (predict.py's parts, the README snippet's loading lines) lives
#: as text templates: it runs on the user's machine, on the user's own bundle, never in the app.
TEMPLATES = Path(__file__).with_name("templates")


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


_PREDICT_HEAD = _template("predict_head.py.txt")

_MLP_BODY = _template("predict_mlp.py.txt")

_CNN_BODY = _template("predict_cnn.py.txt")


def _predict_script(run: RunRecord, needed: dict[str, list[str]], body: str, usage: str, function: str,
                    how: str, extra_imports: tuple[str, ...] = ()) -> str:
    pieces = FlatSource()
    for module, names in {**needed, "core.evaluation": ["decide"]}.items():
        for name in names:
            pieces.add((module, name))
    for line in ("import argparse", "import json", "import sys", "from pathlib import Path", "import pandas as pd",
                 *extra_imports):
        pieces.import_line(line)
    columns = (prediction_column(run), CONFIDENCE, PROBABILITY, THRESHOLD)
    definitions = pieces.definitions()
    head = _PREDICT_HEAD.format(run_id=run.run_id, name=run.model.name, usage=usage, function=function, how=how,
                                imports=pieces.import_block(), columns=repr(columns),
                                origin=", ".join(sorted({module for module, _ in definitions})),
                                definitions="\n\n\n".join(text for _, text in definitions))
    script = head + body
    compile(script, "predict.py", "exec")  # a generated file that does not parse would fail only later
    return script


def _mlp_predict(run: RunRecord) -> str:
    return _predict_script(
        run, {"core.models.mlp": ["build_module", "_outputs", "_dense32"]},
        _MLP_BODY.format(features=list(run.data.feature_columns)), "python predict.py new_rows.csv --out predictions.csv",
        "predict_table", "The columns are prepared by the saved preprocessing (preprocess.joblib,\n"
        "which needs core/ beside this file), the network rebuilt from model.json and its weights\n"
        "loaded with torch.load(..., weights_only=True).", extra_imports=("import joblib",))


def _cnn_predict(run: RunRecord) -> str:
    return _predict_script(
        run, {"core.models.cnn": ["_net_from_spec", "PREDICT_BATCH"],
              "core.images": ["_pixels", "_parts", "_is_ignored", "IMAGE_FORMATS", "IMAGE_SUFFIXES"]},
        _CNN_BODY.format(image_size=int(run.data.image_size or 0), channels=int(run.data.channels or 0)),
        "python predict.py new_images/ --out predictions.csv", "predict_folder",
        "Images are resized and centre-cropped as the app does, the\n"
        "network rebuilt from model.json and its weights loaded with torch.load(..., weights_only=True).")

