"""The CLI contract (ARCHITECTURE.md, "CLI"): last stdout line is JSON; user errors exit 2 with one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.helpers import churn_like

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "churn.csv"
    churn_like(n=300).to_csv(data, index=False)
    done = cli("train", data, "--target", "churned", "--runs-dir", folder / "runs", "--model", "linear")
    return folder, data, done


def test_train_prints_progress_and_json(trained):
    folder, _, done = trained
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task"] == "binary" and result["model"] == "linear"
    assert 0.5 < result["metrics"]["roc_auc"] <= 1
    assert Path(result["run_dir"]).parent == folder / "runs"
    assert "training linear" in done.stderr


def test_predict_and_show(trained, tmp_path):
    folder, data, done = trained
    run_dir = json.loads(done.stdout.strip().splitlines()[-1])["run_dir"]
    out = tmp_path / "pred.csv"
    result = cli("predict", run_dir, data, "--out", out, "--runs-dir", folder / "runs")
    assert result.returncode == 0, result.stderr
    import pandas as pd

    frame = pd.read_csv(out)
    assert len(frame) == 300 and set(frame["predicted churned"]) <= {"yes", "no"}
    shown = cli("show", run_dir)
    assert shown.returncode == 0 and json.loads(shown.stdout)["task"] == "binary"


@pytest.mark.parametrize("args, words", [
    (["train", "no/such/file.csv"], "no file"),
    (["train", "{data}", "--target", "nope"], "nope"),
    (["show", "{folder}"], "not a saved run"),
    (["predict", "{folder}/runs", "{data}"], "only runs saved by this app"),  # outside the default runs dir
])
def test_user_errors_exit_2_with_one_line(trained, args, words):
    folder, data, _ = trained
    args = [a.format(data=data, folder=folder) for a in args]
    result = cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1].lower()
    assert "Traceback" not in result.stderr


def test_bad_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = cli("train", empty)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
