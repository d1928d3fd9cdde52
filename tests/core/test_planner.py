"""core.planner: the auto-pick rules and their plain-language reasons."""

import numpy as np
import pytest

from core.errors import PlanError
from core.planner import Overrides, default_budget, is_imbalanced, plan
from core.schema import prepare
from core.types import DeviceInfo
from tests.core.helpers import churn_like, regression_table, table


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like()), target="churned")


def test_automatic_on_a_table_is_a_budgeted_contest(churn):
    p = plan(churn)
    assert p.model == "auto" and p.is_contest and p.task == "binary" and p.baseline is None
    families = [c.model for c in p.contest]
    assert families[:3] == ["linear", "hgb", "forest"] and families[-1] == "mlp"  # quick ones first
    assert len({c.name for c in p.contest}) == len(p.contest)
    assert p.time_budget == default_budget(len(churn.X))
    text = " ".join(p.reasons)
    assert "candidates compete" in text and f"at most {p.time_budget:.0f} s" in text and "default" in text
    assert "customer_id" in text  # the dropped ID column is explained
    assert "signup" in text  # dates become parts
    assert "stratified" in text


def test_the_users_budget_is_the_contests(churn):
    p = plan(churn, Overrides(time_budget=7))
    assert p.time_budget == 7 and any("at most 7 s (you set)" in r for r in p.reasons)


def test_default_budget_grows_with_the_table():
    sizes = [1_000, 10_000, 50_000, 1_000_000]
    budgets = [default_budget(n) for n in sizes]
    assert budgets == sorted(budgets) and budgets[0] <= 18 and budgets[-1] >= 120


def test_a_large_table_leaves_the_forest_and_network_out():
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(rng.normal(size=(250_000, 3)), columns=list("abc"))
    frame["y"] = frame["a"] + rng.normal(size=len(frame))
    p = plan(prepare(table(frame), target="y"))
    assert [c.model for c in p.contest] == ["linear", "hgb"]


def test_a_skewed_positive_target_asks_the_contest_about_its_log():
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame({"a": rng.normal(size=400)})
    frame["y"] = np.exp(frame["a"] + rng.normal(scale=0.5, size=400))
    p = plan(prepare(table(frame), target="y"))
    logs = {c.name: c.params.get("log_target", False) for c in p.contest if c.model == "hgb"}
    assert set(logs.values()) == {True, False}  # both scales compete; the folds decide


def test_whole_number_columns_may_be_codes():
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame({"region": rng.integers(1, 12, 600), "x": rng.normal(size=600)})
    frame["y"] = np.where(frame["region"].isin([3, 7]), "a", "b")
    p = plan(prepare(table(frame), target="y"))
    codes = [c for c in p.contest if c.as_category]
    assert codes and all(c.as_category == ("region",) for c in codes) and all("region" in c.note for c in codes)


def test_a_code_needs_rows_enough_to_learn_each_value():
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame({"region": rng.permutation(np.arange(120) % 40), "x": rng.normal(size=120)})
    frame["y"] = np.where(frame["region"] % 3 == 0, "a", "b")
    p = plan(prepare(table(frame), target="y"))
    assert not any(c.as_category for c in p.contest)  # 40 values in 120 rows: three rows a category


def test_user_choice_is_said(churn):
    p = plan(churn, Overrides(model="forest", valid_fraction=0.3, seed=7, max_epochs=50))
    assert p.model == "forest" and p.valid_fraction == 0.3 and p.seed == 7 and p.max_epochs == 50
    assert any("You chose: Random forest" in r for r in p.reasons)
    assert any("30%" in r for r in p.reasons)


def test_linear_needs_no_baseline(churn):
    assert plan(churn, Overrides(model="linear")).baseline is None


@pytest.mark.parametrize("bad", [Overrides(model="cnn"), Overrides(model="nope"), Overrides(valid_fraction=0.9)])
def test_bad_overrides_are_refused_in_words(churn, bad):
    with pytest.raises(PlanError) as info:
        plan(churn, bad)
    assert len(str(info.value)) > 20


def test_small_tables_get_small_trees():
    data = prepare(table(regression_table(n=300)), target="y")
    for p in (plan(data, Overrides(model="hgb")), plan(data)):
        params = p.params if not p.is_contest else next(c.params for c in p.contest if c.name == "hgb")
        assert params["max_leaf_nodes"] <= 8 and any("only 300 rows" in r for r in p.reasons)


def test_gpu_with_a_large_numeric_table_picks_the_mlp(churn):
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(rng.normal(size=(60_000, 5)), columns=list("abcde"))
    frame["y"] = (frame["a"] > 0).map({True: "up", False: "down"})
    data = prepare(table(frame), target="y")
    gpu = DeviceInfo("cuda", "NVIDIA H100", 16)
    assert "mlp" in [c.model for c in plan(data, device=gpu).contest]  # any size, on a GPU
    assert "mlp" not in [c.model for c in plan(data).contest]  # too slow on a CPU at 60k rows


def test_imbalance_rule():
    assert is_imbalanced(["a"] * 85 + ["b"] * 15, ("a", "b"))
    assert not is_imbalanced(["a"] * 70 + ["b"] * 30, ("a", "b"))
    assert not is_imbalanced([1.0, 2.0], ())


def test_planning_a_table_does_not_import_torch_without_an_accelerator():
    """torch costs ~0.2 GB and seconds to import: a table job on a CPU-only machine never pays it
    just to learn that there is no GPU (the 1M-row job's memory counts it)."""
    import subprocess
    import sys

    from core.device import _may_have_accelerator

    if _may_have_accelerator():
        pytest.skip("this machine may have a GPU: planning asks torch, as it should")
    code = ("import sys; from core.pipeline import make_plan; from core.schema import prepare; "
            "from tests.core.helpers import churn_like, table; "
            "p = make_plan(prepare(table(churn_like(n=200)), target='churned')); "
            "assert p.model == 'auto', p.model; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_rare_binary_class_leaves_the_trees_unweighted():
    rare = prepare(table(churn_like(n=600, positive_share=0.08)), target="churned")
    weights = {c.name: c.params.get("weigh_classes", True) for c in plan(rare).contest}
    assert weights["hgb"] is False and weights["forest"] is False and weights["linear"] is True
    assert any("learn the classes unweighted" in r for r in plan(rare).reasons)
    common = prepare(table(churn_like(n=600, positive_share=0.4)), target="churned")
    assert all(c.params.get("weigh_classes", True) for c in plan(common).contest)


def test_boosting_with_small_leaves_is_a_question_for_the_contest():
    """Mid-sized tables: the contest also scores boosting with small leaves (rare patterns, such as a
    daily table's holidays, need them); small tables already get small trees; the user's leaves stay."""
    from core.models.tabular import SMALL_LEAVES_HGB

    mid = prepare(table(churn_like(n=2000)), target="churned")
    variant = next(c for c in plan(mid).contest if c.name == "hgb-small-leaves")
    assert variant.model == "hgb" and all(variant.params[k] == v for k, v in SMALL_LEAVES_HGB.items())
    assert "rare patterns" in variant.note and "small leaves" in variant.label
    small = prepare(table(churn_like(n=400)), target="churned")
    assert "hgb-small-leaves" not in [c.name for c in plan(small).contest]
    mine = plan(mid, Overrides(params={"min_samples_leaf": 30}))
    assert "hgb-small-leaves" not in [c.name for c in mine.contest]
