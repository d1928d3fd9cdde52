"""The Train page and its comparison section through AppTest (jobs inline): the plan the page
shows is the plan the run was trained with, the validation share is never lost, and the
comparison's winner is what "Train the winner" trains (that it gets the very settings it was
scored with is tests/core/test_compare.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.run_record import read_run
from core.runs import list_runs

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def _inline(monkeypatch, tmp_path):
    monkeypatch.setenv("TRAINBOARD_INLINE_JOBS", "1")
    monkeypatch.setenv("TRAINBOARD_RUNS", str(tmp_path / "runs"))


def train_page(sample: str = "iris.csv") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.button(key=f"sample-{sample}").click().run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    return at


def shown_plan(at: AppTest) -> list[str]:
    plan = next(m.value for m in at.markdown if str(m.value).startswith("- Tabular data"))
    return [line.removeprefix("- ") for line in plan.splitlines()]


def start(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    return at


def the_run(tmp_path: Path):
    (run,) = list_runs(tmp_path / "runs")
    return read_run(run.path, predictions=False)


def test_from_empty_session_it_says_what_to_do():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/train.py").run()
    assert "No data loaded yet" in " ".join(i.value for i in at.info)
    assert not at.button or all(b.label != "Start training" for b in at.button)


def test_what_the_page_showed_is_what_the_run_says(tmp_path):
    at = train_page()
    reasons = shown_plan(at)
    assert at.subheader[0].value == "The plan: an automatic contest"
    start(at)
    assert "Finished." in " ".join(s.value for s in at.success)
    run = the_run(tmp_path)
    # The plan shown, then what the contest found: tried, chosen, refitted.
    assert list(run.model.reasons[:len(reasons)]) == reasons and len(run.model.reasons) > len(reasons)
    assert run.split.valid_fraction == 0.2 and run.split.n_valid == 30
    hgb = next(c for c in run.candidates if c["model"] == "hgb")
    assert hgb["params"]["max_leaf_nodes"] == 4  # the small-table tuning the plan described
    won = next(c for c in run.candidates if c["won"])
    assert run.model.key == won["family"]


@pytest.mark.parametrize(("choice", "fraction"), [("auto", 0.1), (0.2, 0.2), (0.3, 0.3)])
def test_the_validation_share_on_a_large_table_is_never_lost(choice, fraction, tmp_path, monkeypatch):
    """20% used to be sent as "no choice": on a table of 200,000 rows the planner then used 10%.
    Here iris counts as large, so "automatic" means 10% and any explicit share must stay."""
    monkeypatch.setattr("core.planner.LARGE_TABLE", 100)
    at = train_page()
    at.select_slider[0].set_value(choice).run()
    reasons = shown_plan(at)
    said = f"You chose to hold out {fraction:.0%}" if choice != "auto" else f"{fraction:.0%} of the rows"
    assert any(r.startswith(said) for r in reasons), reasons
    start(at)
    run = the_run(tmp_path)
    assert run.split.valid_fraction == fraction and run.split.n_valid == round(150 * fraction)
    assert list(run.model.reasons[:len(reasons)]) == reasons


def test_a_chosen_model_is_trained_and_said(tmp_path):
    at = train_page()
    at.selectbox[0].select("forest").run()
    assert at.subheader[0].value == "The plan: Random forest"
    assert "You chose: Random forest." in shown_plan(at)
    start(at)
    assert the_run(tmp_path).model.key == "forest"


def test_the_comparison_shows_a_leaderboard_and_trains_its_winner_as_scored(tmp_path):
    at = train_page()
    at.number_input(key="compare_budget").set_value(30).run()
    next(b for b in at.button if b.label == "Compare models").click().run()
    assert not at.exception, at.exception
    board = at.dataframe[-1].value
    assert {"model", "folds done", "seconds per fold", "note"} <= set(board.columns)
    picked = [m for m in board["model"] if m.endswith("← picked")]
    assert len(picked) == 1
    winner = next(b for b in at.button if b.label.startswith("Train the winner: "))
    label = winner.label.removeprefix("Train the winner: ")
    assert picked[0] == f"{label} ← picked"
    winner.click().run()
    assert not at.exception, at.exception
    run = the_run(tmp_path)
    assert run.model.label == label
    assert any(r == f"You chose: {label}." for r in run.model.reasons)


def test_real_photos_plan_the_pretrained_network_and_offer_the_image_comparison():
    at = train_page("textures.zip")
    assert at.subheader[0].value == "The plan: Pretrained features + logistic regression"
    plan = next(m.value for m in at.markdown if str(m.value).startswith("- Images:"))
    assert "look like photographs" in plan and "128×128 px" in plan
    caption = " ".join(c.value for c in at.caption)
    assert "convolutional neural network, pretrained features + logistic regression and fine-tuned" in caption
    assert any(b.label == "Compare models" for b in at.button)


def runs_page_labels(at: AppTest) -> list[str]:
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    return [o for m in at.multiselect for o in m.options]


def test_a_class_sees_only_its_own_runs_and_a_reload_keeps_them(tmp_path):
    """Each browser gets a workspace key in its page address: its runs are its own (a classmate's
    session lists none of them), and opening the same address again finds them."""
    at = train_page()
    at.selectbox[0].select("linear").run()
    start(at)
    key = at.query_params["workspace"]
    (mine,) = runs_page_labels(at)
    assert "iris.csv" in mine
    assert the_run(tmp_path).workspace not in (None, key)  # a digest: the key never lands in a manifest

    classmate = AppTest.from_file(APP, default_timeout=60).run()
    assert runs_page_labels(classmate) == []
    assert classmate.query_params["workspace"] != key
    assert "No trained runs yet" in " ".join(i.value for i in classmate.info)

    reloaded = AppTest.from_file(APP, default_timeout=60)
    reloaded.query_params["workspace"] = key
    assert runs_page_labels(reloaded.run()) == [mine]
    assert reloaded.query_params["workspace"] == key  # kept in the address after a page switch too


def test_a_forged_workspace_key_gets_a_fresh_workspace(tmp_path):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["workspace"] = "../../etc"
    runs_page_labels(at.run())
    assert at.query_params["workspace"] != "../../etc" and len(at.query_params["workspace"]) == 32


def test_the_input_size_chosen_on_the_page_is_planned_said_and_reaches_the_backbone(tmp_path):
    import json

    at = train_page("textures.zip")
    size = next(s for s in at.selectbox if s.label == "Pretrained network's input size")
    assert size.value == "auto"
    size.select(160).run()
    assert not at.exception, at.exception
    plan = next(m.value for m in at.markdown if str(m.value).startswith("- Images:"))
    assert "160×160 px for the pretrained network, as you chose" in plan
    assert "loaded at 128×128 px for the pretrained network rather than the 96 px" in plan  # stored at 128
    start(at)
    run = the_run(tmp_path)
    assert run.model.key == "embed+linear" and run.data.image_size == 128
    assert json.loads((run.path / "model.json").read_text())["backbone"]["input_size"] == 160


def test_the_input_size_setting_is_offered_only_where_a_pretrained_network_may_train():
    at = train_page("textures.zip")
    at.selectbox[0].select("cnn").run()
    assert all(s.label != "Pretrained network's input size" for s in at.selectbox)
