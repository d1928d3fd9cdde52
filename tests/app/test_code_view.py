"""Evaluate's "Show me the code": the run's script in a code block (copy button) with a download."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.pipeline import JobSpec, run_job
from core.planner import Overrides

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def test_evaluate_shows_the_runs_code_with_a_download(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(folder))
    run_dir = run_job(JobSpec(source=str(ROOT / "sample_data" / "iris.csv"), runs_dir=str(folder),
                              overrides=Overrides(model="linear")))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(run_dir)
    at.run().switch_page("app_pages/evaluate.py").run()
    assert not at.exception
    assert any(e.label == "Show me the code" for e in at.expander)
    code = next(c.value for c in at.get("code") if "def main():" in c.value)
    assert code.startswith("#!/usr/bin/env python3") and f"run {run_dir.name}" in code
    assert "from core" not in code and "import core" not in code
    assert any("Download the script" in str(b.proto) for b in at.get("download_button"))
