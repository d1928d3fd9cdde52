"""The data checks (core/checks.py): each check finds its planted case, takes its default action
with an opt-out, and raises no false alarm (warning or above) on the bundled samples or the public
benchmark tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core import checks
from core.checks import (
    KEEP_COLUMN,
    KEEP_VALID_DUPLICATES,
    apply_checks,
    check_images,
    check_table,
    drop_validation_duplicates,
    summary,
    validation_duplicates,
)
from core.datasets import SAMPLE_DIR, load_table
from core.images import load_images
from core.schema import prepare
from core.types import ImageData, LoadReport, Plan
from tests.core.helpers import churn_like, regression_table, table

ROOT = Path(__file__).resolve().parents[2]
CLEAN_TABLES = sorted(SAMPLE_DIR.glob("*.csv")) + sorted((ROOT / "bench" / "data").glob("*.csv"))
#: The image samples; textures.zip is Teachable-Machine-sized on purpose (16 photos a class), so its
#: classes are honestly too small to validate (``test_a_tiny_image_set_is_told_its_classes_are_small``).
CLEAN_IMAGES = sorted(p for p in SAMPLE_DIR.glob("*.zip") if p.name != "textures.zip")


def found(findings, check_id):
    return [f for f in findings if f.id == check_id]


def one(findings, check_id):
    hits = found(findings, check_id)
    assert len(hits) == 1, [f.id for f in findings]
    return hits[0]


def prepared(frame: pd.DataFrame, target: str, roles=None):
    return prepare(table(frame), target=target, roles=roles)


def shuffled(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


# ---------------------------------------------------------------- no false alarms


@pytest.mark.parametrize("path", CLEAN_TABLES, ids=lambda p: p.name)
def test_clean_tables_raise_no_warning(path):
    findings = check_table(prepare(load_table(path)))
    loud = [(f.id, f.title) for f in findings if f.severity != "note"]
    assert not loud, loud
    assert not any(f.acted and f.id in (checks.TARGET_LEAK, checks.SORTED_INDEX) for f in findings)
    json.dumps([f.record() for f in findings])  # the manifest's and the CLI's record is plain JSON


@pytest.mark.parametrize("path", CLEAN_IMAGES, ids=lambda p: p.name)
def test_clean_image_sets_raise_no_warning(path):
    findings = check_images(load_images(path))
    assert not [(f.id, f.title) for f in findings if f.severity != "note"]


def test_a_tiny_image_set_is_told_its_classes_are_small():
    findings = check_images(load_images(SAMPLE_DIR / "textures.zip"))
    assert [(f.id, f.severity) for f in findings if f.severity != "note"] == [("tiny_class", "warning")]


def test_the_samples_findings_are_the_ones_we_expect():
    """Iris and wine are sorted by class (a note: the split is shuffled); churn has an ID column and
    an imbalanced target; iris has one real repeated flower."""
    ids = {p.name: {f.id for f in check_table(prepare(load_table(p)))} for p in sorted(SAMPLE_DIR.glob("*.csv"))}
    assert ids["iris.csv"] == {"sorted_index", "duplicate_rows", "split_duplicates"}
    assert ids["wine.csv"] == {"sorted_index"}
    assert ids["churn.csv"] == {"id_like", "imbalance"}
    assert ids["breast_cancer.csv"] == ids["diabetes.csv"] == set()


# ---------------------------------------------------------------- leakage


def leaky_churn(n: int = 1500) -> pd.DataFrame:
    frame = churn_like(n=n)
    frame["refund"] = np.where(frame["churned"] == "yes", "refunded", "none")  # filled in after the outcome
    return frame


def test_a_recoded_target_is_found_and_left_out_by_default():
    data = prepared(leaky_churn(), "churned")
    leak = one(check_table(data), checks.TARGET_LEAK)
    assert leak.severity == "warning" and leak.columns == ("refund",) and leak.acted
    assert leak.numbers["score"] > 0.99 and leak.numbers["best_other"] < 0.9
    assert leak.opt_out == f"{KEEP_COLUMN}refund" and 0 < len(leak.examples) <= 5
    checked = apply_checks(data)
    assert "refund" not in checked.X.columns and "refund" in data.X.columns
    column = checked.column("refund")
    assert column.role == "ignore" and "leak" in column.reason
    assert any("refund" in m for m in checked.messages)
    assert checked.checks and one(checked.checks, checks.TARGET_LEAK).acted


@pytest.mark.parametrize("how", ["role", "opt-out"])
def test_a_leaking_column_the_user_wants_stays(how):
    roles = {"refund": "categorical"} if how == "role" else {}
    off = () if how == "role" else (f"{KEEP_COLUMN}refund",)
    data = prepared(leaky_churn(), "churned", roles=roles)
    checked = apply_checks(data, roles=roles, off=off)
    assert "refund" in checked.X.columns
    leak = one(checked.checks, checks.TARGET_LEAK)
    assert not leak.acted and leak.action.startswith("Kept")


def test_a_scaled_copy_of_a_number_target_is_found():
    frame = regression_table(n=400)
    frame["price_in_cents"] = frame["y"] * 100 + 7
    leak = one(check_table(prepared(frame, "y")), checks.TARGET_LEAK)
    assert leak.columns == ("price_in_cents",) and leak.numbers["metric"] == "R²" and leak.numbers["score"] > 0.98


def test_a_strong_honest_column_is_no_leak():
    """x1 explains most of y, but not all of it: no warning."""
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=600)
    frame = pd.DataFrame({"x1": x1, "x2": rng.normal(size=600), "y": 3 * x1 + rng.normal(0, 0.5, 600)})
    assert not found(check_table(prepared(frame, "y")), checks.TARGET_LEAK)


def test_the_only_column_is_never_left_out():
    frame = pd.DataFrame({"copy": ["a", "b"] * 50, "label": ["yes", "no"] * 50})
    checked = apply_checks(prepared(frame, "label"))
    assert list(checked.X.columns) == ["copy"]
    leak = one(checked.checks, checks.TARGET_LEAK)
    assert not leak.acted and "only column" in leak.action


def test_big_tables_are_scored_on_a_sample_and_say_so(monkeypatch):
    monkeypatch.setattr(checks, "SCORE_ROWS", 300)
    monkeypatch.setattr(checks, "SAMPLE_ROWS", 600)
    leak = one(check_table(prepared(leaky_churn(n=1200), "churned")), checks.TARGET_LEAK)
    assert leak.numbers["rows_scored"] == 300 and "random 300 of the 1,200 rows" in leak.evidence


def test_the_fast_auc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    score = np.round(rng.random(500) + 0.3 * y, 1)  # ties
    assert checks._auc(y, score) == pytest.approx(roc_auc_score(y, score))


# ---------------------------------------------------------------- row order


def test_a_sorted_file_alone_is_a_note():
    frame = churn_like(n=400).sort_values("churned").reset_index(drop=True)
    order = one(check_table(prepared(frame, "churned")), checks.SORTED_INDEX)
    assert order.severity == "note" and not order.acted and order.columns == ()


def test_a_timestamp_in_a_file_sorted_by_the_target_is_left_out():
    frame = regression_table(n=400).sort_values("y").reset_index(drop=True)
    frame["entered"] = pd.date_range("2024-01-01", periods=len(frame), freq="h").strftime("%Y-%m-%d %H:%M")
    findings = check_table(prepared(frame, "y"))
    order = one(findings, checks.SORTED_INDEX)
    assert order.severity == "warning" and order.columns == ("entered",) and order.acted
    assert not found(findings, checks.TARGET_LEAK)  # reported once, as what it is
    assert "entered" not in apply_checks(prepared(frame, "y")).X.columns


def test_a_time_series_that_is_not_sorted_by_its_target_keeps_its_dates():
    rng = np.random.default_rng(0)
    days = pd.date_range("2020-01-01", periods=700, freq="D")
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temp": rng.normal(size=700),
                          "riders": 100 + 20 * (days.day_of_week < 5) + rng.normal(0, 5, 700)})
    assert not check_table(prepared(frame, "riders"))


# ---------------------------------------------------------------- duplicates


def with_copies(n: int = 600, copies: int = 80) -> pd.DataFrame:
    frame = churn_like(n=n).drop(columns=["customer_id"])
    return shuffled(pd.concat([frame, frame.iloc[:copies]], ignore_index=True))


def test_copied_rows_are_counted_shown_and_dropped_from_validation():
    data = prepared(with_copies(), "churned")
    findings = check_table(data)
    rows = one(findings, checks.DUPLICATE_ROWS)
    assert rows.numbers["repeated_rows"] == 80 and rows.numbers["copies"] and rows.numbers["drop_from_validation"]
    assert len(rows.examples) == 5 and all(len(e["rows"]) == 2 for e in rows.examples)
    split = one(findings, checks.SPLIT_DUPLICATES)
    assert split.severity == "warning" and split.acted and split.opt_out == KEEP_VALID_DUPLICATES
    assert split.numbers["valid_repeats"] > 5


def test_keeping_duplicates_in_validation_is_an_opt_out():
    findings = check_table(prepared(with_copies(), "churned"), off=(KEEP_VALID_DUPLICATES,))
    assert not one(findings, checks.DUPLICATE_ROWS).numbers["drop_from_validation"]
    split = one(findings, checks.SPLIT_DUPLICATES)
    assert not split.acted and "as you chose" in split.action


def split_of(data, fraction=0.25, seed=3):
    from core.training import split_data

    plan = Plan(model="linear", task=data.task, reasons=(), valid_fraction=fraction, seed=seed)
    return split_data(data, plan, keep_rows=False)


def test_the_job_hook_drops_exactly_the_validation_rows_seen_in_training():
    data = apply_checks(prepared(with_copies(), "churned"))
    parts = split_of(data)
    repeat = validation_duplicates(parts.X_train, parts.y_train, parts.X_valid, parts.y_valid)
    assert 5 < repeat.sum() < len(repeat)
    after = drop_validation_duplicates(parts)
    assert len(after.X_valid) == len(after.y_valid) == len(after.valid_idx) == len(parts.X_valid) - repeat.sum()
    assert not validation_duplicates(after.X_train, after.y_train, after.X_valid, after.y_valid).any()
    np.testing.assert_array_equal(after.X_train.index, parts.X_train.index)  # training untouched
    split = one(after.data.checks, checks.SPLIT_DUPLICATES)
    assert split.acted and split.numbers["valid_repeats"] == repeat.sum() and "this run's split" in split.evidence


def test_the_job_hook_leaves_validation_alone_when_opted_out():
    data = apply_checks(prepared(with_copies(), "churned"), off=(KEEP_VALID_DUPLICATES,))
    parts = split_of(data)
    assert drop_validation_duplicates(parts) is parts


def test_repeats_in_a_table_of_few_values_are_its_nature_not_copies():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"q{i}": rng.choice(["yes", "no"], 800) for i in range(4)})
    frame["label"] = np.where(rng.random(800) < 0.5, "a", "b")
    findings = check_table(prepared(frame, "label"))
    rows = one(findings, checks.DUPLICATE_ROWS)
    assert rows.severity == "note" and not rows.numbers["copies"] and not rows.numbers["drop_from_validation"]
    assert not one(findings, checks.SPLIT_DUPLICATES).acted
    assert all(f.severity == "note" for f in findings)
    data = apply_checks(prepared(frame, "label"))
    parts = split_of(data)
    assert drop_validation_duplicates(parts) is parts


def test_same_inputs_with_another_target_are_counted():
    frame = churn_like(n=500).drop(columns=["customer_id"])
    twins = frame.iloc[:30].copy()
    twins["churned"] = np.where(twins["churned"] == "yes", "no", "yes")
    data = prepared(shuffled(pd.concat([frame, twins], ignore_index=True)), "churned")
    conflict = one(check_table(data), checks.CONFLICTING_DUPLICATES)
    assert conflict.numbers["rows"] == 60 and conflict.numbers["groups"] == 30 and conflict.severity == "warning"
    assert sorted(conflict.examples[0]["churned"]) == ["no", "yes"]


# ---------------------------------------------------------------- columns


def test_column_problems_are_found_with_how_much():
    n = 400
    rng = np.random.default_rng(0)
    frame = churn_like(n=n)
    frame["flag"] = "x"  # constant
    frame["almost"] = np.where(np.arange(n) < 2, "rare", "common")  # 99.5% one value
    frame["notes"] = np.where(np.arange(n) % 10 < 7, None, rng.choice(["called", "wrote"], n))  # 70% missing
    frame["empty"] = np.nan
    frame["city"] = [f"city-{i % 300}" for i in range(n)]  # many categories
    frame["amount"] = rng.normal(50, 5, n).round(2).astype(str)
    frame.loc[:9, "amount"] = "n/a"  # numbers stored as text
    frame["size"] = np.where(np.arange(n) % 3 == 0, "large", (np.arange(n) % 20).astype(str))  # mixed
    days = pd.date_range("2021-01-01", periods=n, freq="D")
    frame["visit"] = np.where(np.arange(n) % 2 == 0, days.strftime("%Y-%m-%d"), days.strftime("%d/%m/%Y"))
    findings = check_table(prepared(frame, "churned"))
    assert one(findings, checks.ID_LIKE).columns == ("customer_id",)
    constant = one(findings, checks.CONSTANT)
    assert set(constant.columns) == {"flag", "almost"} and constant.numbers["almost"]["top_share"] == 0.995
    missing = one(findings, checks.MOSTLY_MISSING)
    assert set(missing.columns) == {"notes", "empty"} and "70%" in missing.evidence
    assert one(findings, checks.MANY_CATEGORIES).columns == ("city",)
    text = one(findings, checks.NUMBERS_AS_TEXT)
    assert text.columns == ("amount",) and text.numbers["amount"]["not_numbers"] == 10 and "'n/a'" in text.evidence
    assert one(findings, checks.MIXED_TYPES).columns == ("size",)
    dates = one(findings, checks.DATE_FORMATS)
    assert dates.columns == ("visit",) and dates.severity == "warning" and "05/03" not in dates.title


# ---------------------------------------------------------------- the target


def classes_table(counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[c] * k for c, k in counts.items()])
    return shuffled(pd.DataFrame({"x": rng.normal(size=len(labels)), "z": rng.normal(size=len(labels)),
                                  "label": labels}))


def test_a_class_too_small_to_validate_is_a_warning():
    findings = check_table(prepared(classes_table({"a": 500, "b": 480, "c": 12}), "label"))
    tiny = one(findings, checks.TINY_CLASS)
    assert tiny.severity == "warning" and tiny.numbers["classes"] == {"c": 12}


@pytest.mark.parametrize("rare, severity", [(30, "note"), (8, "warning")])
def test_imbalance_is_a_note_and_heavy_imbalance_a_warning(rare, severity):
    findings = check_table(prepared(classes_table({"no": 1000, "yes": rare}), "label"))
    imbalance = one(findings, checks.IMBALANCE)
    assert imbalance.severity == severity and imbalance.numbers["counts"]["yes"] == rare


def test_hundreds_of_classes_are_a_warning():
    findings = check_table(prepared(classes_table({f"k{i}": 6 for i in range(120)}), "label"))
    assert one(findings, checks.MANY_CLASSES).numbers["classes"] == 120


@pytest.mark.parametrize("name, values", [("order_id", lambda n: np.arange(n) % 97 + 1000),
                                          ("amount", lambda n: np.random.default_rng(0).permutation(n) * 7 + 3)])
def test_a_number_target_that_is_an_id_or_a_code(name, values):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300), name: values(300)})
    data = prepared(frame, name)
    assert data.task == "regression"
    assert one(check_table(data), checks.TARGET_ID_LIKE).severity == "warning"


# ---------------------------------------------------------------- images


def image_set(per_class: int = 40, size: int = 32, seed: int = 0) -> ImageData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (3 * per_class, 1, size, size), dtype=np.uint8)
    labels = np.repeat(np.arange(3), per_class)
    return ImageData(images=images, labels=labels, class_names=("a", "b", "c"),
                     paths=tuple(f"{'abc'[k]}/{i}.png" for i, k in enumerate(labels)),
                     load=LoadReport(source="set.zip", format="images", n_rows=len(labels), n_columns=0))


def test_an_image_in_two_classes_is_a_warning():
    data = image_set()
    images = data.images.copy()
    images[50] = images[3]  # a's image 3 also filed under b
    images[51] = np.clip(images[4].astype(int) + 2, 0, 255).astype(np.uint8)  # brighter: near-identical
    found_ = one(check_images(ImageData(images, data.labels, data.class_names, data.paths, data.load)),
                 checks.IMAGE_DUPLICATES)
    assert found_.severity == "warning" and found_.numbers["groups_across_classes"] == 2
    assert found_.numbers["images"] == 4
    assert {"a/3.png", "b/50.png"} == set(found_.examples[0]["files"])


def test_identical_images_across_the_split_are_dropped_from_validation():
    data = image_set(per_class=60)
    images = data.images.copy()
    images[150:] = images[120:150]  # half of class c twice
    copies = ImageData(images, data.labels, data.class_names, data.paths, data.load)
    checked = apply_checks(copies)
    assert one(checked.checks, checks.IMAGE_DUPLICATES).numbers["drop_from_validation"]
    parts = split_of_images(checked)
    after = drop_validation_duplicates(parts)
    assert 0 < len(after.X_valid) < len(parts.X_valid)
    assert not validation_duplicates(after.X_train, after.y_train, after.X_valid, after.y_valid).any()


def split_of_images(data):
    from core.training import split_data

    return split_data(data, Plan(model="cnn", task="multiclass", reasons=(), valid_fraction=0.3, seed=1))


def test_a_class_with_few_images_is_a_warning():
    data = image_set(per_class=40)
    keep = np.r_[0:80, 80:90]  # class c keeps 10 images: 2 for validation
    few = ImageData(data.images[keep], data.labels[keep], data.class_names, tuple(np.array(data.paths)[keep]),
                    data.load)
    tiny = one(check_images(few), checks.TINY_CLASS)
    assert tiny.numbers["classes"] == {"c": 10}


def png(size: tuple[int, int], mode: str = "L", value=100) -> bytes:
    buffer = io.BytesIO()
    image = Image.new(mode, size, value)
    image.putpixel((1, 1), 0 if mode == "L" else (0, 0, 0))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_mixed_sizes_and_unreadable_files_are_listed(tmp_path):
    for i in range(6):
        (tmp_path / "cat").mkdir(exist_ok=True)
        (tmp_path / "dog").mkdir(exist_ok=True)
        (tmp_path / "cat" / f"{i}.png").write_bytes(png((40 + 8 * i, 40), value=20 + 30 * i))
        (tmp_path / "dog" / f"{i}.png").write_bytes(png((48, 48), "RGB", (10 * i, 200, 30)))
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    findings = check_images(load_images(tmp_path))
    sizes = one(findings, checks.IMAGE_SIZES)
    assert sizes.numbers["sizes"] == 7 and "colour and greyscale" in sizes.evidence
    unreadable = one(findings, checks.UNREADABLE_FILES)
    assert unreadable.examples[0]["file"] == "dog/broken.png" and unreadable.numbers["skipped"] == 1


# ---------------------------------------------------------------- the record and the words


def test_summary_counts_by_severity():
    findings = check_table(prepared(leaky_churn(), "churned"))
    assert summary(findings).startswith(f"{len(findings)} findings: 1 warning")
    assert summary(()) == "No findings"
    record = findings[0].record()
    assert set(record) >= {"id", "severity", "columns", "evidence", "action"}
    assert record["evidence"]["numbers"]["score"] > 0.99


def test_findings_and_what_was_done_reach_the_manifest(tmp_path):
    """The job's path with the checks (core.pipeline._run plus apply_checks / drop_validation_duplicates):
    the saved run records every finding, with the validation rows actually dropped."""
    from core.evaluation import evaluate
    from core.pipeline import make_plan
    from core.planner import Overrides
    from core.run_record import read_run
    from core.runs import save_run
    from core.training import fit_split, split_data

    frame = with_copies()
    frame["refund"] = np.where(frame["churned"] == "yes", "refunded", "none")
    data = apply_checks(prepared(frame, "churned"))
    plan = make_plan(data, Overrides(model="linear"))
    parts = drop_validation_duplicates(split_data(data, plan, keep_rows=False))
    result = fit_split(parts, plan)
    run = read_run(save_run(tmp_path, result, evaluate(result, parts.data.classes), parts.data, "copies.csv",
                            {"load_s": 0.0}), predictions=False)
    by_id = {c["id"]: c for c in run.checks}
    assert {"target_leak", "duplicate_rows", "split_duplicates"} <= set(by_id)
    assert by_id["target_leak"]["columns"] == ["refund"] and by_id["target_leak"]["acted"]
    assert "refund" not in run.data.feature_columns
    dropped = by_id["split_duplicates"]["evidence"]["numbers"]["valid_repeats"]
    assert dropped > 0 and run.split.n_valid == len(parts.valid_idx)
    assert run.split.n_train + run.split.n_valid + dropped == len(frame)


def test_a_check_that_fails_becomes_a_note_and_the_others_still_run(monkeypatch):
    def broken(table):
        raise ValueError("no such thing")

    monkeypatch.setattr(checks, "_duplicates", broken)
    findings = check_table(prepared(leaky_churn(), "churned"))
    failed = one(findings, checks.CHECK_FAILED)
    assert failed.severity == "note" and "ValueError: no such thing" in failed.evidence
    assert one(findings, checks.TARGET_LEAK).acted


def test_a_handful_of_repeats_stays_in_validation():
    """Iris holds one repeated flower; with the automatic split it sits on both sides. One row of
    thirty cannot inflate the scores: it is shown, and validation keeps its 30 rows."""
    data = apply_checks(prepare(load_table(SAMPLE_DIR / "iris.csv")))
    split = one(data.checks, checks.SPLIT_DUPLICATES)
    assert split.severity == "note" and not split.acted and split.numbers["valid_repeats"] == 1
    parts = split_of(data, fraction=0.2, seed=0)
    after = drop_validation_duplicates(parts)
    assert len(after.X_valid) == len(parts.X_valid) == 30
    assert not one(after.data.checks, checks.SPLIT_DUPLICATES).acted
