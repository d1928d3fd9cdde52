"""Prediction as a job: chunked with progress, one row per input row with the input's columns first,
CSV + Parquet written; CSV and Excel downloads escaped against spreadsheet formulas."""

import pandas as pd
import pytest

import core.predict
from core.errors import DataError
from core.events import RunFinished, StepEnded
from core.pipeline import JobSpec, run_job
from core.planner import Overrides
from tests.core.helpers import churn_like


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    path = folder / "churn.csv"
    churn_like(n=300).to_csv(path, index=False)
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(folder / "runs"),
                              overrides=Overrides(model="linear")))
    return folder, run_dir


def test_predict_job_keeps_the_input_then_adds_the_answers(run, monkeypatch):
    folder, run_dir = run
    monkeypatch.setattr(core.predict, "CHUNK_ROWS", 120)  # three slices: progress is reported per slice
    new = churn_like(n=300, seed=5).drop(columns=["churned"])
    new.to_csv(folder / "new.csv", index=False)
    events = []
    out = run_job(JobSpec(source=str(folder / "new.csv"), mode="predict", run_dir=str(run_dir),
                          out=str(folder / "out" / "p.csv"), runs_dir=str(folder / "runs")), events.append)
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(new.columns) + ["predicted churned", "confidence", "probability of no",
                                                       "probability of yes", "threshold"]
    assert len(frame) == 300 and frame["customer_id"].tolist() == new["customer_id"].tolist()
    assert (frame["threshold"] == 0.5).all()  # the decision's threshold, in the file
    assert [e.step for e in events if isinstance(e, StepEnded)] == [1, 2, 3]
    assert isinstance(events[-1], RunFinished) and events[-1].run == str(out)
    assert pd.read_parquet(out.with_suffix(".parquet")).shape == frame.shape


def test_missing_columns_are_named(run):
    folder, run_dir = run
    churn_like(n=20).drop(columns=["tenure", "churned"]).to_csv(folder / "bad.csv", index=False)
    with pytest.raises(DataError, match="tenure"):
        run_job(JobSpec(source=str(folder / "bad.csv"), mode="predict", run_dir=str(run_dir),
                        out=str(folder / "bad-out.csv"), runs_dir=str(folder / "runs")))


def test_predict_applies_the_runs_threshold(run, tmp_path):
    """Saved at the median probability, rows between it and 0.5 flip class; confidence follows."""
    import shutil

    import numpy as np

    from core.predict import predict_table
    from core.runs import save_threshold
    from tests.core.helpers import table

    folder, run_dir = run
    runs = tmp_path / "runs"
    copy = shutil.copytree(run_dir, runs / run_dir.name)
    new = table(churn_like(n=200, seed=7).drop(columns=["churned"]))
    before = predict_table(copy, new, runs)
    p_yes = before["probability of yes"].to_numpy()
    threshold = float(np.median(p_yes))
    assert abs(threshold - 0.5) > 0.02, "the median should be away from 0.5 for rows to flip"
    save_threshold(copy, threshold, runs)
    after = predict_table(copy, new, runs)
    flipped = before["predicted churned"] != after["predicted churned"]
    between = (p_yes >= min(threshold, 0.5)) & (p_yes < max(threshold, 0.5))
    assert flipped.any() and (flipped.to_numpy() == between).all()
    assert (after["predicted churned"] == np.where(p_yes >= threshold, "yes", "no")).all()
    expected = np.where(after["predicted churned"] == "yes", p_yes, 1 - p_yes)
    assert np.allclose(after["confidence"], expected)  # the probability of the class predicted


def test_rows_keep_their_order_and_count_and_extra_columns_are_kept_and_listed(run):
    from core.predict import check_columns, input_columns, predict_table
    from core.run_record import read_run
    from tests.core.helpers import table

    folder, run_dir = run
    new = churn_like(n=120, seed=11).sample(frac=1.0, random_state=3)  # shuffled, index out of order
    new = new.assign(notes="call back", churned=new["churned"])  # an extra column; the target, kept too
    out = predict_table(run_dir, table(new), folder / "runs")
    record = read_run(run_dir, predictions=False)
    assert len(out) == len(new) and out["customer_id"].tolist() == new["customer_id"].tolist()
    assert input_columns(record, out) == list(new.columns)
    assert out[list(new.columns)].equals(new)  # the input's cells untouched
    assert check_columns(record, new.columns) == ["customer_id", "churned", "notes"]


def test_missing_columns_are_named_in_one_error(run):
    from core.predict import check_columns
    from core.run_record import read_run

    record = read_run(run[1], predictions=False)
    with pytest.raises(DataError) as err:
        check_columns(record, ["customer_id", "charges", "region"])
    message = str(err.value)
    assert "lacks 3 column(s) the model needs: 'tenure', 'contract', 'signup'" in message


def test_a_file_of_earlier_predictions_keeps_its_columns(run):
    from core.predict import predict_table
    from tests.core.helpers import table

    folder, run_dir = run
    new = churn_like(n=30, seed=2).drop(columns=["churned"])
    first = predict_table(run_dir, table(new), folder / "runs")
    again = predict_table(run_dir, table(first), folder / "runs")
    assert again[list(first.columns)].equals(first)
    assert again["predicted churned (new)"].tolist() == first["predicted churned"].tolist()


RISKY = ["=1+1", "+SUM(A1:A2)", "-3", "@cmd", "\tx", "\ry", "plain", "a=b", None]


def _risky_frame() -> pd.DataFrame:
    return pd.DataFrame({"note": RISKY, "amount": [-3.5, 2.0, -1.0, 0.0, 1.0, -2.0, 3.0, 4.0, 5.0],
                         "count": [-1, 2, 3, 4, 5, 6, 7, 8, 9]})


def test_csv_escapes_formulas_and_leaves_numbers_alone(tmp_path):
    from core.predict import write_csv

    write_csv(_risky_frame(), tmp_path / "p.csv")
    back = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert back["note"].tolist() == ["'=1+1", "'+SUM(A1:A2)", "'-3", "'@cmd", "'\tx", "'\ry", "plain", "a=b", ""]
    assert back["amount"].tolist() == [-3.5, 2.0, -1.0, 0.0, 1.0, -2.0, 3.0, 4.0, 5.0]
    assert back["count"].iloc[0] == -1
    raw = (tmp_path / "p.csv").read_bytes()
    assert b"'=1+1,-3.5,-1\r\n" in raw  # negative numbers written as numbers, no quote
    assert b"\"'\ry\",-2.0,6\r\n" in raw  # a lone carriage return quoted: the row stays one row


def test_excel_has_no_formula_cells_and_keeps_the_text(tmp_path):
    import io

    import openpyxl

    from core.predict import excel_bytes

    sheet = openpyxl.load_workbook(io.BytesIO(excel_bytes(_risky_frame()))).active
    cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
    assert cells and not any(cell.data_type == "f" for cell in cells)
    notes = [row[0].value for row in sheet.iter_rows(min_row=2)]
    # (XML, which .xlsx is, reads a carriage return back as a line feed)
    assert notes[:8] == ["'=1+1", "'+SUM(A1:A2)", "'-3", "'@cmd", "'\tx", "'\ny", "plain", "a=b"]
    assert [row[1].value for row in sheet.iter_rows(min_row=2)][0] == -3.5
    assert sheet.cell(row=2, column=3).value == -1 and sheet.cell(row=2, column=3).data_type == "n"


def test_excel_refuses_more_rows_than_a_sheet_holds(monkeypatch):
    import core.predict

    monkeypatch.setattr(core.predict, "EXCEL_MAX_ROWS", 5)
    with pytest.raises(DataError, match="Download the CSV instead"):
        core.predict.excel_bytes(_risky_frame())
