"""core.contest: the automatic contest chooses on the training rows only, prefers the simpler model
within the noise, blends only past the noise, and records itself in the run."""

import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.compare import Comparison, Entry
from core.contest import _blend, _Judging, best_threshold, judging
from core.events import ContestEnded, ContestStarted, FoldEnded
from core.models.base import ModelFamily
from core.pipeline import JobSpec, run_job
from core.planner import Overrides, plan
from core.predict import predictions_for_table
from core.run_record import load_manifest, read_run
from core.runs import load_model
from core.schema import prepare
from core.splits import split_rows
from core.training import fit
from tests.core.helpers import churn_like, table


def only(p, *names):
    """The plan with a smaller portfolio, to keep a test quick."""
    return replace(p, contest=tuple(c for c in p.contest if c.name in names))


def xor_table(n=500, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = np.sign(frame["a"] * frame["b"]) + rng.normal(scale=0.1, size=n)
    return frame


def test_the_validation_rows_never_influence_the_choice(monkeypatch):
    """Planted: on the training rows the target is an interaction (trees win, a line cannot fit
    it); on the validation rows it is inverted, so choosing there would pick the linear model.
    The contest picks a tree model, and no fit learns from a validation row: the refit's curve may
    watch them only with its rounds fixed beforehand, so they decide nothing there."""
    frame = xor_table()
    the_plan = only(plan(prepare(table(frame), target="y"), Overrides(seed=0, time_budget=120)), "linear", "hgb")
    _, valid = split_rows(frame["y"].to_numpy(), "regression", the_plan.valid_fraction, 0)
    frame.loc[valid, "y"] *= -1  # regression splits ignore y, so the rows stay the same
    data = prepare(table(frame), target="y")
    seen: list[set] = []
    real_fit = {}
    for key in ("linear", "hgb"):
        from core.models import get_family

        cls = type(get_family(key))
        real_fit[cls] = cls.fit

        def spy(self, ctx, _real=cls.fit):
            seen.append((set(ctx.X_train.index), set(ctx.X_valid.index), dict(ctx.params)))
            return _real(self, ctx)

        monkeypatch.setattr(cls, "fit", spy)
    result = fit(data, the_plan)
    assert set(result.valid_index) == set(valid)
    assert seen and all(not (learnt & set(valid)) for learnt, _, _ in seen)
    watched = [(rows, params) for _, rows, params in seen if rows & set(valid)]
    assert all(rows == set(valid) and params.get("rounds") for rows, params in watched)  # the refit's curve
    assert result.plan.model == "hgb", result.plan.reasons
    on_valid = {c["model"]: c for c in result.candidates}
    assert on_valid["hgb"]["mean"] > on_valid["linear"]["mean"] + 0.3  # clearly better inside the training rows
    # …while on the inverted validation rows the linear model would have looked better:
    linear = fit(data, plan(data, Overrides(model="linear")))
    r2 = lambda model: 1 - np.mean((model.predict(result.X_valid) - result.y_valid) ** 2) / np.var(result.y_valid)  # noqa: E731
    assert r2(linear.main.model) > r2(result.main.model)


def entry(name, scores, family=None):
    from core.models import get_family
    from core.types import Candidate

    family = family or name
    e = Entry(model=name, metric="r2", candidate=Candidate(name=name, model=family, label=get_family(family).label))
    e.scores["r2"] = list(scores)
    e.fit_s = [0.1] * len(scores)
    return e


def test_within_one_standard_error_the_simpler_model_is_kept():
    from core.compare import pick

    close = [entry("linear", [0.905, 0.915, 0.90]), entry("hgb", [0.91, 0.93, 0.90])]
    best, reasons = pick(close, "r2", 3)
    assert best == "linear" and any("within noise, so the simpler linear model is kept" in r for r in reasons)
    clear = [entry("linear", [0.80, 0.82, 0.81]), entry("hgb", [0.91, 0.93, 0.90])]
    assert pick(clear, "r2", 3)[0] == "hgb"
    # A variant of a family counts as less simple than the family's own settings.
    variants = [entry("hgb-codes", [0.91, 0.93, 0.90], "hgb"), entry("hgb", [0.91, 0.929, 0.90])]
    variants[0].candidate = replace(variants[0].candidate, note="codes read as categories")
    assert pick(variants, "r2", 3)[0] == "hgb"


def test_a_variant_that_beats_its_family_on_every_fold_is_kept():
    """Within one standard error of each other, but paired over the folds the variant is better
    every time (a daily ridership table's small leaves): settings of one family are no simpler."""
    from core.compare import pick

    own = entry("hgb", [0.918, 0.905, 0.931])
    small = entry("hgb-small-leaves", [0.926, 0.908, 0.939], "hgb")
    small.candidate = replace(small.candidate, note="leaves of 5 rows")
    best, reasons = pick([own, small], "r2", 3)
    assert best == "hgb-small-leaves" and any("on the same folds by +0.006" in r for r in reasons)
    # Ahead on average but not on every fold: the noise of the pair hides it, the family's own stays.
    small.scores["r2"] = [0.930, 0.900, 0.935]
    assert pick([own, small], "r2", 3)[0] == "hgb"
    # Across families the one-standard-error rule alone speaks: the simpler linear model stays.
    line = entry("linear", [0.918, 0.905, 0.931])
    forest = entry("forest", [0.926, 0.908, 0.939])
    assert pick([line, forest], "r2", 3)[0] == "linear"


def test_a_blend_is_delivered_only_past_the_noise():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"a": rng.normal(size=n)})
    frame["y"] = frame["a"]
    data = prepare(table(frame), target="y")
    judge = judging(data.y, "regression", 0)
    truth = data.y.to_numpy()
    # Two models with independent errors: their average halves the error variance.
    a, b = entry("linear", []), entry("hgb", [])
    for e in (a, b):
        e.oof = truth + rng.normal(scale=0.5, size=n)
        e.scores["r2"] = [1 - np.mean((e.oof[v] - truth[v]) ** 2) / np.var(truth[v]) for _, v in judge.folds]
        e.fit_s = [0.1] * judge.n_folds
    comparison = Comparison(metric="r2", folds=judge.words, entries=[a, b], best="linear", reasons=())
    blend, words = _blend(comparison, a, judge, data, "r2", lambda e: 0.0)
    assert blend is not None and {m.model for m in blend.members} == {"linear", "hgb"} and "blend is delivered" in words
    # The same model twice gains nothing: no blend.
    b.oof, b.scores = a.oof.copy(), {"r2": list(a.scores["r2"])}
    blend, words = _blend(comparison, a, judge, data, "r2", lambda e: 0.0)
    assert blend is None and "single model is kept" in words


def test_judging_uses_folds_on_small_tables_and_a_slice_on_large_ones():
    small = judging(np.repeat(["a", "b"], 500), "binary", 0)
    assert not small.held_out and small.n_folds == 5 and "1,000 training rows" in small.words
    large = judging(np.arange(60_000, dtype=float), "regression", 0)
    assert large.held_out and large.n_folds == 1 and len(large.folds[0][1]) == 12_000


def test_best_threshold_finds_the_planted_cut():
    rng = np.random.default_rng(0)
    truth = rng.random(4000) < 0.1
    proba = np.clip(np.where(truth, 0.3, 0.1) + rng.normal(scale=0.05, size=4000), 0, 1)  # never above 0.5
    value, best, at_half = best_threshold(truth, proba)
    assert 0.15 < value < 0.25 and best > at_half + 0.2


@pytest.fixture(scope="module")
def rare_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contest")
    path = folder / "rare.csv"
    churn_like(n=1200, positive_share=0.08, seed=1).to_csv(path, index=False)
    events = []
    data = prepare(table(pd.read_csv(path)), target="churned")
    the_plan = only(plan(data, Overrides(time_budget=60)), "linear", "hgb")
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(folder / "runs"), plan=the_plan),
                      on_event=events.append)
    return run_dir, folder / "runs", events, path


def test_the_manifest_records_every_candidate(rare_run):
    run_dir, _, events, _ = rare_run
    manifest = load_manifest(run_dir)
    candidates = manifest["candidates"]
    names = [c["model"] for c in candidates]
    assert {"dummy", "linear", "hgb"} <= set(names)
    folds = next(e for e in events if isinstance(e, ContestStarted)).n_folds
    for c in candidates:
        assert {"model", "family", "label", "params", "scores", "fold_seconds", "won", "blended"} <= set(c)
        if c["model"] != "blend":
            assert len(c["scores"]["roc_auc"]) == folds and len(c["fold_seconds"]) == folds
    assert sum(c["won"] for c in candidates) == 1
    won = next(c for c in candidates if c["won"])
    assert manifest["model"]["key"] == (won["family"] if won["model"] != "blend" else "blend")
    ended = next(e for e in events if isinstance(e, ContestEnded))
    assert ended.reasons and all(r in manifest["model"]["reasons"] for r in ended.reasons)
    assert any("Tried on" in r and "±" in r for r in manifest["model"]["reasons"])
    # Whether the winner was fitted again on every training row is a fact of its own, read back by
    # read_run, and it agrees with the delivery sentence.
    refit = manifest["contest"]["refit"]
    assert isinstance(refit, bool) and read_run(run_dir).contest_refit is refit
    assert refit == any("fitted again on all" in r for r in manifest["contest"]["reasons"])


def test_the_threshold_is_chosen_out_of_fold_and_applied_by_predict(rare_run):
    run_dir, runs_dir, _, path = rare_run
    run = read_run(run_dir)
    assert run.threshold.chosen_by == "out-of-fold" and run.threshold.metric == "macro_f1"
    # 8% positives, weighted to count equally: 0.5 is not where macro F1 is best.
    assert abs(run.threshold.value - 0.5) >= 0.02
    assert any("not 0.5" in r and "out-of-fold" in r for r in run.model.reasons)
    # Evaluate's decisions are at that threshold…
    positive = run.classes[-1]
    proba = run.predictions[f"proba: {positive}"]
    assert ((proba >= run.threshold.value) == (run.predictions["predicted"] == positive)).all()
    # …and so are Predict's, on new rows.
    model, record = load_model(run_dir, runs_dir)
    out = predictions_for_table(model, record, pd.read_csv(path).drop(columns=["churned"]).head(300))
    flagged = out[f"probability of {positive}"] >= run.threshold.value
    assert (flagged == (out["predicted churned"] == positive)).all()
    assert flagged.any() and (flagged != (out[f"probability of {positive}"] >= 0.5)).any()


def test_the_budget_holds_for_the_whole_run(tmp_path):
    path = tmp_path / "churn.csv"
    churn_like(n=3000).to_csv(path, index=False)
    budget = 4.0
    t0 = time.perf_counter()
    run_dir = run_job(JobSpec(source=str(path), target="churned", runs_dir=str(tmp_path / "runs"),
                              overrides=Overrides(time_budget=budget)))
    took = time.perf_counter() - t0
    manifest = load_manifest(run_dir)
    skipped = [c for c in manifest["candidates"] if c["skipped"]]
    assert skipped and all("budget" in c["skipped"] for c in skipped)  # the full contest needs far longer
    # Loading, contest, refit, evaluation and saving: within 10%, plus slack for a busy machine.
    assert took <= budget * 1.1 + 1.5, took


def test_stop_mid_contest_keeps_the_best_so_far(tmp_path):
    data = prepare(table(churn_like(n=800)), target="churned")
    stop = threading.Event()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, FoldEnded) and event.model == "hgb":
            stop.set()  # Stop pressed while boosting is being scored

    result = fit(data, only(plan(data, Overrides(time_budget=60)), "linear", "hgb", "forest"), on_event, stop)
    assert result.main.cancelled and result.plan.model in ("linear", "hgb")
    assert result.contest_refit is False  # a stopped contest keeps its fold model
    records = {c["model"]: c for c in result.candidates}
    assert records["forest"]["skipped"] == "stopped by you" and not records["forest"]["fold_seconds"]
    assert any("Stopped by you during the contest" in r for r in result.plan.reasons)
    assert len(result.main.model.predict(result.X_valid)) == len(result.X_valid)


def test_a_stop_before_any_model_says_so(tmp_path):
    from core.errors import RunError

    data = prepare(table(churn_like(n=300)), target="churned")
    stop = threading.Event()
    stop.set()
    with pytest.raises(RunError, match="nothing to save"):
        fit(data, plan(data), stop=stop)


def test_the_blend_family_is_never_offered_by_hand():
    from core.models import comparison_candidates, get_family, trainable

    assert "blend" not in trainable() and "blend" not in comparison_candidates()
    assert isinstance(get_family("blend"), ModelFamily)


def test_the_cli_and_the_page_plan_the_same_contest():
    from core.pipeline import make_plan

    data = prepare(table(churn_like(n=300)), target="churned")
    assert make_plan(data, Overrides()).contest == plan(data, Overrides()).contest
    assert judging(data.y.iloc[:240], "binary", 0).n_folds == 5 and isinstance(judging(data.y, "binary", 0), _Judging)


def test_a_large_tables_slice_is_shared_not_copied():
    from core.compare import take_rows

    y = np.random.default_rng(0).choice(["a", "b"], 60_000)
    judge = judging(y, "binary", 0)
    fit_rows, slice_rows = judge.folds[0]
    assert fit_rows[-1] + 1 == slice_rows[0] and slice_rows[-1] == len(y) - 1  # the last rows, contiguous
    frame = pd.DataFrame({"x": np.arange(len(y), dtype=float)})
    assert np.shares_memory(take_rows(frame, fit_rows)["x"].to_numpy(), frame["x"].to_numpy())
    # A class the tail would miss: a stratified split instead.
    rare = np.array(["a"] * 59_990 + ["b"] * 10, dtype=object)
    fit_rows, slice_rows = judging(rare, "binary", 0).folds[0]
    assert "b" in set(rare[slice_rows]) and "b" in set(rare[fit_rows])


def test_racing_drops_only_a_candidate_clearly_behind():
    from core.compare import clearly_behind

    leader = entry("linear", [0.90, 0.91, 0.90, 0.92, 0.90])
    far = entry("hgb", [0.70])
    assert "dropped after 1 of 5 folds: clearly behind" in clearly_behind(far, [leader, far], 5)
    near = entry("hgb", [0.89, 0.90])
    assert clearly_behind(near, [leader, near], 5) is None
    ahead = entry("hgb", [0.99])
    assert clearly_behind(ahead, [leader, ahead], 5) is None
    # Only a leader scored on every fold counts: with none, nobody is dropped.
    half = entry("linear", [0.95])
    assert clearly_behind(far, [half, far], 5) is None


def test_the_contest_races_a_hopeless_candidate_out():
    """A purely linear target over many columns: boosting is far behind after its first fold, so
    it runs no more folds; it is recorded with its one fold, cannot win, and the reasons say so."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(600, 12)), columns=[f"x{i}" for i in range(12)])
    frame["y"] = frame.sum(axis=1) + rng.normal(scale=0.05, size=600)
    data = prepare(table(frame), target="y")
    result = fit(data, only(plan(data, Overrides(seed=0, time_budget=120)), "linear", "hgb"))
    hgb = next(c for c in result.candidates if c["model"] == "hgb")
    assert hgb["skipped"].startswith("dropped after 1 of 5 folds") and len(hgb["fold_seconds"]) == 1
    assert not hgb["won"] and result.plan.model == "linear"
    assert any("Dropped early, clearly behind the leader" in r for r in result.plan.reasons)


def test_loading_a_network_library_is_not_taken_from_the_contest_budget(monkeypatch):
    """A worker loads torch for its first network (seconds): the contest's budget starts after it,
    so the same table gets the same contest in a fresh worker as in a warm one."""
    from core.models import LOADING
    from core.models.mlp_family import MLPFamily

    loads = []
    monkeypatch.setattr(MLPFamily, "loaded", lambda self: bool(loads))
    monkeypatch.setattr(MLPFamily, "ready", lambda self: loads or (time.sleep(2.0), loads.append(1)))
    data = prepare(table(churn_like(n=300)), target="churned")
    the_plan = only(plan(data, Overrides(time_budget=6)), "linear", "mlp")
    seen = []
    fit(data, the_plan, on_event=lambda event: seen.append((time.time(), event)))
    said = [e.text for _, e in seen if getattr(e, "text", None) == LOADING]
    at, started = next((t, e) for t, e in seen if isinstance(e, ContestStarted))
    assert said == [LOADING]
    assert started.ends_by - at > 5.5  # all six seconds left, not four


def test_boosting_is_refitted_on_every_row_for_its_folds_rounds_and_its_curve_decides_nothing():
    """``HGBFamily.refit_settings``: the folds' mean rounds; a fit with them learns from every row
    it is given, grows exactly that many rounds, and predicts the same whatever rows it watches."""
    from core.events import NeverStop
    from core.models import cpu_device, get_family
    from core.models.base import FitContext

    family = get_family("hgb")
    assert family.refit_settings([{"n_iter": 40}, {"n_iter": 61}, {"n_iter": 50}]) == {"rounds": 50}
    assert family.refit_settings([{"n_iter": 40}, {}]) == {}  # a fold that did not say: stop early as usual
    data = prepare(table(xor_table(600)), target="y")

    def grown(watch):
        ctx = FitContext(X_train=data.X, y_train=data.y, X_valid=data.X.iloc[watch], y_valid=data.y.iloc[watch] * -1,
                         task="regression", classes=(), params={"rounds": 30}, seed=0, device=cpu_device(),
                         emit=lambda e: None, stop=NeverStop(), prepared=data)
        return family.fit(ctx)

    first, second = grown(np.arange(0, 60)), grown(np.arange(300, 420))
    assert first.params["n_iter"] == second.params["n_iter"] == 30 and not first.stopped_early
    assert len(first.history) == 30  # the curve: one point a round, on the watched rows
    np.testing.assert_array_equal(first.model.predict(data.X), second.model.predict(data.X))
