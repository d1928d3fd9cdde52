"""core.planner: the auto-pick rules and their plain-language reasons."""

import numpy as np
import pytest

from core.errors import PlanError
from core.planner import Overrides, is_imbalanced, plan
from core.schema import prepare
from core.types import DeviceInfo
from tests.core.helpers import churn_like, regression_table, table


@pytest.fixture(scope="module")
def churn():
    return prepare(table(churn_like()), target="churned")


def test_tables_get_boosting_after_a_linear_baseline(churn):
    p = plan(churn)
    assert p.model == "hgb" and p.baseline == "linear" and p.task == "binary"
    text = " ".join(p.reasons)
    assert "gradient boosting" in text and "baseline" in text
    assert "customer_id" in text  # the dropped ID column is explained
    assert "signup" in text  # dates become parts
    assert "stratified" in text


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
    p = plan(data)
    assert p.params["max_leaf_nodes"] <= 8 and any("only 300 rows" in r for r in p.reasons)


def test_gpu_with_a_large_numeric_table_picks_the_mlp(churn):
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(rng.normal(size=(60_000, 5)), columns=list("abcde"))
    frame["y"] = (frame["a"] > 0).map({True: "up", False: "down"})
    data = prepare(table(frame), target="y")
    gpu = DeviceInfo("cuda", "NVIDIA H100", 16)
    assert plan(data, device=gpu).model == "mlp"
    assert plan(data).model == "hgb"


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
            "assert p.model == 'hgb', p.model; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
