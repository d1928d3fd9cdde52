"""Show me the code (``core.export.code``): a run's standalone script reproduces its validation metrics.

Each test trains a run as the app does (``run_job``), writes its script, runs it in a fresh
folder with an isolated interpreter (``python -I``: no Trainboard on its path), and compares the
JSON object on its last line with the manifest's metrics: exactly for scikit-learn models,
within 0.01 for the torch MLP.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import RunError
from core.export.code import script_for_run
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from core.run_record import load_manifest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_data"


def train(source: Path, runs: Path, **overrides) -> Path:
    target = overrides.pop("target", None)
    spec = JobSpec(source=str(source), name=source.name, target=target, runs_dir=str(runs),
                   overrides=Overrides(**overrides))
    return run_job(spec)


def run_script(script: str, folder: Path, *args: str) -> dict:
    """The script's metrics: run in ``folder`` with an isolated interpreter, last stdout line parsed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.py"
    path.write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"  # a shared test machine: boosting's spin-waiting threads only slow it down
    done = subprocess.run([sys.executable, "-I", str(path), *args], cwd=folder, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_reproduces(run_dir: Path, runs: Path, tmp_path: Path, tolerance: float = 1e-9, data: Path | None = None
                      ) -> str:
    script = script_for_run(run_dir, runs)
    assert "import core" not in script and "from core" not in script
    ast.parse(script)
    got = run_script(script, tmp_path / "fresh", *([str(data)] if data else []))
    expected = load_manifest(run_dir)["metrics"]
    assert list(got) == list(expected)
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, abs=tolerance), key
    return script


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("code-runs")


@pytest.mark.parametrize("sample", ["iris", "wine", "breast_cancer", "diabetes", "churn"])
def test_auto_run_on_each_sample_is_reproduced_exactly(sample, runs, tmp_path):
    run_dir = train(SAMPLES / f"{sample}.csv", runs, time_budget=8)
    # The default data path is the file the run read: no argument needed.
    script = assert_reproduces(run_dir, runs, tmp_path)
    for section in ("load", "prepare", "split", "model", "train", "evaluate"):
        assert f"# {section}:" in script
    if load_manifest(run_dir)["candidates"]:
        assert "does not hold the contest" in script


def test_the_rows_trained_on_follow_the_recorded_refit_and_old_runs_their_wording(runs):
    """Whether the contest fitted its winner again (so which rows the script trains on) is the
    manifest's ``contest.refit``, whatever the reasons say; a run saved before that field existed
    is read from the contest's delivery sentence."""
    from core.export.code import REFIT_WORDS

    run_dir = train(SAMPLES / "iris.csv", runs, time_budget=8)
    path = run_dir / "manifest.json"
    saved = path.read_text(encoding="utf-8")
    manifest = json.loads(saved)
    assert manifest["contest"]["refit"] is any(REFIT_WORDS in r for r in manifest["contest"]["reasons"])
    reworded = [r for r in manifest["contest"]["reasons"] if REFIT_WORDS not in r]
    sentence = f"The winner was then {REFIT_WORDS} 120 training rows."

    def refitted(contest: dict) -> bool:
        path.write_text(json.dumps({**manifest, "contest": contest}), encoding="utf-8")
        script = script_for_run(run_dir, runs)
        return "# After the contest the winner was fitted again" in script

    try:
        assert refitted({"reasons": reworded, "refit": True})
        assert not refitted({"reasons": [*reworded, sentence], "refit": False})
        assert refitted({"reasons": [*reworded, sentence]})  # saved before contest.refit
        assert not refitted({"reasons": reworded})
    finally:
        path.write_text(saved, encoding="utf-8")


def test_boosting_refitted_with_the_folds_rounds_is_reproduced_exactly(runs, tmp_path):
    """The contest's boosting winner grows its folds' mean rounds on every training row (no
    early-stopping slice); the script learns from the same rows and grows the same rounds."""
    from core.runs import load_model

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=900), "b": rng.normal(size=900), "c": rng.normal(size=900)})
    frame["y"] = np.sign(frame["a"] * frame["b"]) * 3 + frame["c"] + rng.normal(scale=0.3, size=900)
    path = tmp_path / "interaction.csv"
    frame.to_csv(path, index=False)
    run_dir = train(path, runs, time_budget=30, target="y")
    manifest = load_manifest(run_dir)
    assert manifest["model"]["key"] == "hgb" and manifest["contest"]["refit"], manifest["contest"]["reasons"]
    assert manifest["contest"]["curve"] == "validation rows"  # it decided nothing on the rows it watched
    assert any("boosting rounds, the mean its folds needed" in r for r in manifest["contest"]["reasons"])
    booster = load_model(run_dir, runs)[0].steps[-1][1]
    assert booster.fixed_rounds_ and booster.n_iter_ == booster.max_iter
    script = assert_reproduces(run_dir, runs, tmp_path)
    assert "growing as many\n    # rounds as its folds did" in script


def mixed_table(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """A rare yes (about 10%) with signal in a number, a category, free text and a date."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 50.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    complaint = rng.random(n) < 0.3
    good = ["great", "fast", "friendly", "helpful", "easy", "clear", "quick"]
    bad = ["refund", "broken", "late", "rude", "cancel", "waiting", "never"]
    filler = ["the", "order", "service", "app", "team", "delivery", "price", "support", "account"]
    words = [" ".join(rng.choice(filler, 4).tolist() + rng.choice(bad if c else good, 3).tolist() +
                      rng.choice(filler, int(rng.integers(2, 6))).tolist()) for c in complaint]
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    score = 2.5 * complaint + 0.01 * (amount - 100) + (plan == "basic") * 0.8 + (signup.month >= 10) * 0.7
    left = np.where(score + rng.normal(0, 0.8, n) > np.quantile(score, 0.88), "yes", "no")
    return pd.DataFrame({"amount": amount, "plan": plan, "review": words,
                         "signup": signup.strftime("%Y-%m-%d"), "left": left})


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "mixed.csv"
    mixed_table().to_csv(path, index=False)
    return path


def test_mixed_table_roles_are_what_the_tests_mean(mixed, runs):
    run_dir = train(mixed, runs, model="linear", target="left")
    roles = {c["name"]: c["role"] for c in load_manifest(run_dir)["data"]["columns"]}
    assert roles == {"amount": "numeric", "plan": "categorical", "review": "text", "signup": "datetime"}


def test_auto_run_with_text_date_and_rare_class_keeps_its_threshold(mixed, runs, tmp_path):
    run_dir = train(mixed, runs, target="left", time_budget=12)
    manifest = load_manifest(run_dir)
    assert manifest["task"] == "binary" and manifest["threshold"]["chosen_by"] == "out-of-fold"
    script = assert_reproduces(run_dir, runs, tmp_path, data=mixed)
    assert f"THRESHOLD = {manifest['threshold']['value']!r}" in script


def test_boosting_with_stacked_text_and_dates_is_reproduced_exactly(mixed, runs, tmp_path):
    run_dir = train(mixed, runs, model="hgb", target="left")
    script = assert_reproduces(run_dir, runs, tmp_path, data=mixed)
    # Trainboard's own transformers are copied in from their source, the booster is scikit-learn's own.
    assert "class TextStack(" in script and "class DateParts(" in script
    assert "HistGradientBoostingClassifier(" in script and "ReportingHGB" not in script


def test_forest_regression_on_a_log_scale_is_reproduced_exactly(runs, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=np.exp(1 + x[:, 0] + 0.5 * x[:, 1] ** 2))
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    run_dir = train(path, runs, model="hgb")
    assert load_manifest(run_dir)["model"]["params"]["log_target"]
    script = assert_reproduces(run_dir, runs, tmp_path / "hgb")
    assert "np.exp(np.clip(model.predict(" in script
    assert_reproduces(train(path, runs, model="forest"), runs, tmp_path / "forest")


def test_mlp_training_loop_is_written_out_in_torch(mixed, runs, tmp_path):
    run_dir = train(mixed, runs, model="mlp", target="left", max_epochs=8)
    script = assert_reproduces(run_dir, runs, tmp_path, tolerance=0.01, data=mixed)
    assert "torch.optim.AdamW(" in script and "def build_module(" in script


def test_script_reads_another_copy_of_the_data_given_as_argument(runs, tmp_path):
    source = tmp_path / "iris.csv"
    source.write_bytes((SAMPLES / "iris.csv").read_bytes())
    run_dir = train(source, runs, model="linear")
    moved = tmp_path / "elsewhere" / "flowers.csv"
    moved.parent.mkdir()
    source.rename(moved)
    assert_reproduces(run_dir, runs, tmp_path, data=moved)


def test_only_runs_inside_the_runs_folder_are_read(runs, tmp_path):
    with pytest.raises(RunError):
        script_for_run(tmp_path, runs)


def test_cli_prints_or_writes_the_script(runs, tmp_path):
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    cli = [sys.executable, "-m", "core", "code", str(run_dir), "--runs-dir", str(runs)]
    printed = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("#!/usr/bin/env python3") and "def main():" in printed.stdout
    out = tmp_path / "run.py"
    written = subprocess.run([*cli, "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert written.returncode == 0 and out.read_text() == printed.stdout
    assert json.loads(written.stdout.strip().splitlines()[-1])["out"] == str(out)
    outside = subprocess.run(cli[:-2] + ["--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
    assert outside.returncode == 2 and outside.stderr.startswith("error:")


def test_blend_of_two_families_is_reproduced_exactly(runs, tmp_path):
    from dataclasses import replace

    from core.datasets import load_table
    from core.pipeline import make_plan, prepare_data

    source = SAMPLES / "breast_cancer.csv"
    plan = make_plan(prepare_data(load_table(source)), Overrides(model="linear"))
    members = [{"model": "linear", "params": {}}, {"model": "hgb", "params": {"max_iter": 40}}]
    spec = JobSpec(source=str(source), name=source.name, runs_dir=str(runs),
                   plan=replace(plan, model="blend", params={"members": members}))
    run_dir = run_job(spec)
    assert load_manifest(run_dir)["model"]["key"] == "blend"
    script = assert_reproduces(run_dir, runs, tmp_path)
    assert "def train_1(" in script and "def train_2(" in script and "np.mean([predict(X_valid)" in script


@pytest.mark.slow
def test_cnn_on_a_few_digit_images_is_reproduced(runs, tmp_path):
    """The image sample, cut to 12 pictures a class and two epochs to stay quick."""
    images = tmp_path / "digits"
    for folder in sorted((SAMPLES / "digits").iterdir()):
        (images / folder.name).mkdir(parents=True)
        for picture in sorted(folder.glob("*.png"))[:12]:
            (images / folder.name / picture.name).write_bytes(picture.read_bytes())
    run_dir = train(images, runs, max_epochs=2)
    manifest = load_manifest(run_dir)
    assert manifest["model"]["key"] == "cnn" and manifest["data"]["kind"] == "images"
    script = assert_reproduces(run_dir, runs, tmp_path, tolerance=0.01)
    assert "class ConvNet(" in script and "OneCycleLR(" in script and "def _augment(" in script


@pytest.mark.parametrize("n", [3000, 60_000])  # the contest's folds; from 50,000 rows one held-apart slice
def test_copied_contest_folds_match_the_contest(n, tmp_path):
    """A run kept from the contest (no refit) learnt from the contest's rows: the copy of
    ``judging`` in the script must cut the training rows exactly as the contest did."""
    from core.contest import judging
    from core.export.source import FlatSource

    pieces = FlatSource()
    pieces.add(("core.contest", "judging"))
    source = "\n\n\n".join(["from __future__ import annotations\nimport json\nimport sys\n" + pieces.import_block(),
                            *(text for _, text in pieces.definitions()),
                            'y = pd.Series(np.random.default_rng(0).choice(["a", "b"], int(sys.argv[1])))\n'
                            'print(json.dumps([[part.tolist() for part in fold] for fold in judging(y, "binary", 0).folds]))'])
    (tmp_path / "folds.py").write_text(source)
    done = subprocess.run([sys.executable, "-I", "folds.py", str(n)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = judging(pd.Series(np.random.default_rng(0).choice(["a", "b"], n)), "binary", 0)
    got = json.loads(done.stdout)
    assert len(got) == len(expected.folds)
    for mine, theirs in zip(got, expected.folds, strict=True):
        assert all(np.array_equal(np.asarray(a), b) for a, b in zip(mine, theirs, strict=True))
