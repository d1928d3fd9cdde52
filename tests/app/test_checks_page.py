"""The data checks on the Data page (the "Checks" panel, its opt-outs) and their one-line summary on
Train, through AppTest."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.core.helpers import churn_like

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def _inline(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(tmp_path / "runs"))


def leaky_csv() -> bytes:
    """A churn table with a column recorded after the outcome and 60 copied rows."""
    frame = churn_like(n=500).drop(columns=["customer_id"])
    frame["refund"] = np.where(frame["churned"] == "yes", "refunded", "none")
    frame = pd.concat([frame, frame.iloc[:60]], ignore_index=True).sample(frac=1.0, random_state=0)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def upload(at: AppTest) -> AppTest:
    at.file_uploader(key="data_table_upload").set_value(("leaky.csv", leaky_csv(), "text/csv")).run()
    assert not at.exception, at.exception
    return at.selectbox(key="data_target").set_value("churned").run()


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def expander(at: AppTest, words: str):
    return next(e for e in at.expander if words in e.label)


def test_findings_show_with_evidence_and_the_leak_is_left_out():
    at = upload(AppTest.from_file(APP, default_timeout=60).run())
    assert "Checks" in [s.value for s in at.subheader]
    leak = expander(at, "'refund' alone predicts 'churned'")
    assert leak.label.startswith("**Warning**")
    assert "out of fold" in texts(leak.markdown) and "Left out of training" in texts(leak.markdown)
    assert len(leak.dataframe) == 1  # example rows
    split = expander(at, "validation rows repeat a training row")
    assert "identical to a training row" in texts(split.markdown) and "Dropped from validation" in texts(split.markdown)
    assert "refund" not in at.session_state["_prepared"][1].X.columns
    editor = pd.DataFrame(at.data_editor[0].value)
    row = editor.set_index("column").loc["refund"]
    assert row["use as"] == "ignore" and row["why"].startswith("left out by the data checks")
    assert "Not used: 'refund'" in texts(at.markdown)


def test_use_it_anyway_keeps_the_column_and_says_so():
    at = upload(AppTest.from_file(APP, default_timeout=60).run())
    box = next(c for c in at.checkbox if c.label.startswith("Use 'refund' anyway"))
    box.check().run()
    assert not at.exception, at.exception
    assert at.session_state["roles"] == {"refund": "categorical"}
    assert "refund" in at.session_state["_prepared"][1].X.columns
    assert "Kept, because you set its role to categorical" in texts(expander(at, "'refund' alone").markdown)
    again = next(c for c in at.checkbox if c.label.startswith("Use 'refund' anyway"))
    assert again.value
    again.uncheck().run()
    assert at.session_state["roles"] == {} and "refund" not in at.session_state["_prepared"][1].X.columns


def test_keeping_duplicates_in_validation_is_remembered():
    at = upload(AppTest.from_file(APP, default_timeout=60).run())
    assert len(at.toggle) == 1  # one switch, with the rows it keeps
    toggle = expander(at, "validation rows repeat a training row").toggle[0]
    assert toggle.label == "Keep duplicates in validation" and not toggle.value
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    assert at.session_state["checks_off"] == ("keep_valid_duplicates",)
    assert "as you chose" in texts(expander(at, "validation rows repeat").markdown)


def test_train_page_summarises_the_findings_in_one_line():
    at = upload(AppTest.from_file(APP, default_timeout=60).run())
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    line = next(w.value for w in at.warning if str(w.value).startswith("Data checks:"))
    assert "warnings" in line and line.endswith("— see the Data page.")


def test_a_clean_sample_shows_only_notes_and_train_stays_quiet():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="sample-iris.csv").click().run()
    assert not at.exception, at.exception
    assert [e.label for e in at.expander if e.label.startswith("**Warning**")] == []
    assert any("The file is sorted by 'species'" in e.label for e in at.expander)
    at.switch_page("app_pages/train.py").run()
    assert not [w for w in at.warning if str(w.value).startswith("Data checks:")]
    assert "Data checks: 3 findings: 3 notes — see the Data page." in texts(at.caption)


def test_image_samples_get_their_checks_too():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="sample-digits.zip").click().run()
    assert not at.exception, at.exception
    assert "Checks" in [s.value for s in at.subheader]
    assert any("identical or nearly identical" in e.label for e in at.expander)
