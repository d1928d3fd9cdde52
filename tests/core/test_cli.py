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
    excel = tmp_path / "pred.xlsx"
    assert cli("predict", run_dir, data, "--out", excel, "--runs-dir", folder / "runs").returncode == 0
    book = pd.read_excel(excel)  # the same table, as a workbook
    assert list(book.columns) == list(frame.columns) and len(book) == len(frame)
    assert book["predicted churned"].tolist() == frame["predicted churned"].tolist()
    assert book["probability of yes"].tolist() == pytest.approx(frame["probability of yes"].tolist())
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


def test_check_prints_findings_in_words_and_as_json(tmp_path):
    frame = churn_like(n=600)
    frame["refund"] = frame["churned"].map({"yes": "refunded", "no": "none"})
    data = tmp_path / "leaky.csv"
    frame.to_csv(data, index=False)
    result = cli("check", data, "--target", "churned")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout.strip().splitlines()[-1])["findings"]
    leak = next(f for f in findings if f["id"] == "target_leak")
    assert leak["severity"] == "warning" and leak["columns"] == ["refund"] and leak["acted"]
    assert set(leak) >= {"id", "severity", "columns", "evidence", "action"}
    assert "warning [target_leak] 'refund' alone predicts 'churned'" in result.stderr
    assert "Left out of training" in result.stderr


def test_check_exits_0_on_clean_data_and_reads_image_zips():
    result = cli("check", ROOT / "sample_data" / "shapes.zip")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"findings": []}
    assert "shapes.zip: No findings" in result.stderr


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", b""])
def test_check_exits_2_on_unreadable_input(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    result = cli("check", bad)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert result.stdout == ""
