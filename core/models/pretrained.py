"""How the pretrained families (facts: ``core.models.pretrained_family``) fit, save and load.

- ``embed+linear``: frozen EfficientNet-Lite0 features (``core.models.backbone.embed``, remembered
  per image) → scikit-learn's logistic regression on standardised features, its strength chosen by
  cross-validation; the fitted regression is folded into one linear layer, so the model predicts
  (and explains, Grad-CAM) as one torch network.
- ``finetune``: the backbone's frozen first part reads each picture once (remembered too); the last
  blocks and a new linear head train on its output in ``core.models.torch_loop``'s loop — the head
  alone first, then the blocks with a ten-times smaller learning rate, early stopping with the best
  weights kept, Stop and the time budget honoured between batches.

A saved run holds only what was learnt (``model.pt``: the head, and the fine-tuned blocks) and
``model.json``, which names the backbone by name and package versions: it is never copied into
runs, and loading rebuilds it from the installed package.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import DataError, RunError
from core.events import Message
from core.models.backbone import (
    FEATURES,
    TAIL_BLOCKS,
    Backbone,
    BackboneUnavailable,
    Stopped,
    backbone,
    embed,
    reference,
)
from core.models.base import FitContext, Fitted, epoch_event, stop_message
from core.models.cnn import ImageClassifier
from core.models.pretrained_family import ACCELERATOR_INPUT, BACKBONE_LABEL, CPU_INPUT
from core.models.torch_loop import (
    Batches,
    EarlyStop,
    Hook,
    Loop,
    StepEvents,
    StopOrBudget,
    reading_saved_model,
    seeded,
)

FORMAT = "trainboard-pretrained"
STRENGTHS = (0.01, 0.1, 1.0)  # the logistic regression's C, tried by cross-validation
DEFAULT_STRENGTH = 0.1  # when a class has too few pictures to cross-validate
HEAD_LR = 3e-3
TAIL_LR_SHARE = 0.1  # the unfrozen blocks learn ten times slower than the new head
WEIGHT_DECAY = 0.01
LABEL_SMOOTHING = 0.1
DROPOUT = 0.2
PATIENCE = 5
PREDICT_BATCH = 64
READING_SHARE = 0.25  # of a fine-tune's progress bar: reading the pictures once, before the epochs


class PretrainedNet(nn.Module):
    """The backbone and a linear head: raw uint8 images in, class scores out."""

    def __init__(self, body: Backbone, n_classes: int, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.backbone = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURES, n_classes)

    @property
    def features(self) -> list[nn.Module]:
        """Grad-CAM (``core.image_eval.saliency``) explains the last entry's output map."""
        return [self.backbone.last]

    def from_prefix(self, prefix: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone.pool(self.backbone.tail(prefix))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_prefix(self.backbone.prefix(x))

    def place(self, device: torch.device | str) -> PretrainedNet:
        return self.to(device)


class PretrainedClassifier(ImageClassifier):
    """A fitted pretrained model predicting from raw uint8 images N×C×S×S. The frozen part's output
    is remembered per image (``core.models.backbone.embed``), so scoring the pictures it trained on
    or was validated on does not run the whole network again."""

    net: PretrainedNet

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = self.check(X)
        self.net.eval()
        frozen_part = "pooled" if self.spec["kind"] == "embed+linear" else "prefix"
        inputs = embed(X, self.spec["backbone"]["input_size"], self.device, part=frozen_part)
        out = [np.empty((0, len(self.class_names)))]
        with torch.inference_mode():
            for start in range(0, len(inputs), PREDICT_BATCH):
                batch = torch.as_tensor(inputs[start:start + PREDICT_BATCH], device=self.device)
                logits = self.net.head(batch) if frozen_part == "pooled" else self.net.from_prefix(batch)
                out.append(torch.softmax(logits.cpu().double(), dim=1).numpy())
        return np.concatenate(out)


def _input_size(ctx: FitContext) -> int:
    return int(ctx.params.get("input_size") or (CPU_INPUT if ctx.device.type == "cpu" else ACCELERATOR_INPUT))


def _check_images(X: Any) -> None:
    if X.ndim != 4 or X.dtype != np.uint8 or X.shape[1] not in (1, 3) or X.shape[2] != X.shape[3]:
        raise DataError("The pretrained network needs square uint8 images (N×C×S×S with 1 or 3 channels). Load "
                        "the images with the image loader.")


def _spec(kind: str, ctx: FitContext, input_size: int) -> dict[str, Any]:
    return {"format": FORMAT, "version": 1, "kind": kind, "backbone": reference(input_size),
            "channels": int(ctx.X_train.shape[1]), "image_size": int(ctx.X_train.shape[-1]),
            "n_classes": len(ctx.classes), "class_names": list(ctx.classes), "dropout": DROPOUT}


def _unfitted_message(ctx: FitContext, what: str) -> Message:
    return stop_message(ctx.stop.is_set(), f"while reading the {what}",
                        "No model was trained: it answers every picture with the classes' shares.", ctx.time_budget)


def _prior_head(net: PretrainedNet, y: np.ndarray, n_classes: int) -> None:
    """A head that ignores the picture and answers the classes' shares (a stop before any learning)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes) + 1.0
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.log(torch.as_tensor(counts / counts.sum(), dtype=torch.float32)))


# --------------------------------------------------------------------------------------------
# embed+linear


class EmbedLinearTrainer:
    """Frozen features → logistic regression, folded into the network's linear head."""

    def fit(self, ctx: FitContext) -> Fitted:
        _check_images(ctx.X_train)
        size, device = _input_size(ctx), torch.device(ctx.device.type)
        spec = _spec("embed+linear", ctx, size)
        with seeded(ctx.seed, device):  # the head's initial weights (overwritten by the regression's)
            net = PretrainedNet(backbone(size, device), len(ctx.classes)).to(device).eval()
        model = PretrainedClassifier(net, spec)
        name = f"{BACKBONE_LABEL} features + logistic regression ({size} px)"
        features = embed(ctx.X_train, size, device, emit=ctx.emit, stop=ctx.stop, what="training pictures")
        if isinstance(features, Stopped):
            _prior_head(net, ctx.y_train, len(ctx.classes))
            ctx.emit(_unfitted_message(ctx, "training pictures"))
            return Fitted(model=model, params={"input_size": size, "embedded": int(features.done.sum())}, name=name,
                          cancelled=True)
        y = np.asarray(ctx.y_train, dtype=np.int64)
        ctx.emit(Message("info", "Fitting the logistic regression on the pictures' features…"))
        pipeline, strength, folds = _fit_regression(features, y, len(ctx.classes), ctx)
        _fold_into(net.head, pipeline, len(ctx.classes))
        valid_loss, metrics = float("nan"), {"accuracy": float("nan")}
        if len(ctx.X_valid):
            valid = embed(ctx.X_valid, size, device, emit=ctx.emit, stop=ctx.stop, what="validation pictures")
            if not isinstance(valid, Stopped):
                valid_loss, metrics = _head_scores(net, valid, np.asarray(ctx.y_valid, dtype=np.int64))
        train_loss, _ = _head_scores(net, features, y)
        ctx.emit(epoch_event(1, train_loss, valid_loss, ctx.started, metrics, 1))
        params = {"input_size": size, "C": strength, "C_chosen_by": f"{folds}-fold cross-validation" if folds else
                  "default (too few pictures per class to cross-validate)", "features": FEATURES,
                  "class_weights": bool(ctx.imbalanced), "device": device.type}
        return Fitted(model=model, params=params, name=name)

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        net: PretrainedNet = fitted.model.net
        return _write(fitted.model.spec, {f"head.{k}": v for k, v in net.head.state_dict().items()}, folder)

    def load(self, folder: Path) -> PretrainedClassifier:
        return _read(folder, "embed+linear")


def _fit_regression(features: np.ndarray, y: np.ndarray, n_classes: int, ctx: FitContext) -> tuple[Any, float, int]:
    """Standardised features → logistic regression, C by stratified cross-validation when every
    class has at least two pictures (a Teachable-Machine-sized set still gets two folds)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weights = "balanced" if ctx.imbalanced else None
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=DEFAULT_STRENGTH, max_iter=2000,
                                                                 class_weight=weights))
    smallest = int(np.bincount(y, minlength=n_classes).min())
    folds = min(3, smallest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds >= 2:
            search = GridSearchCV(pipeline, {"logisticregression__C": list(STRENGTHS)}, scoring="neg_log_loss",
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=ctx.seed))
            search.fit(features, y)
            return search.best_estimator_, float(search.best_params_["logisticregression__C"]), folds
        pipeline.fit(features, y)
    return pipeline, DEFAULT_STRENGTH, 0


def _fold_into(head: nn.Linear, pipeline: Any, n_classes: int) -> None:
    """Write scaler + regression into one linear layer: softmax(head(x)) equals ``predict_proba``
    (two classes: logits [-z/2, z/2], whose softmax is the regression's sigmoid of z; symmetric, so
    Grad-CAM finds evidence for either class)."""
    scaler, regression = pipeline[0], pipeline[-1]
    coef = regression.coef_ / scaler.scale_
    intercept = regression.intercept_ - coef @ scaler.mean_
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    weight = np.zeros((n_classes, coef.shape[1]))
    bias = np.full(n_classes, -1e4)  # a class absent from the training pictures is never predicted
    weight[regression.classes_], bias[regression.classes_] = coef, intercept
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def _head_scores(net: PretrainedNet, features: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, float]]:
    with torch.inference_mode():
        logits = net.head(torch.as_tensor(features, device=net.head.weight.device))
        target = torch.as_tensor(y, device=logits.device)
        loss = float(nn.functional.cross_entropy(logits, target))
        accuracy = float((logits.argmax(dim=1) == target).float().mean())
    return loss, {"accuracy": accuracy}


# --------------------------------------------------------------------------------------------
# finetune


class FinetuneTrainer:
    """The last blocks and a new head, trained on the frozen part's remembered output."""

    def fit(self, ctx: FitContext) -> Fitted:
        _check_images(ctx.X_train)
        size, device = _input_size(ctx), torch.device(ctx.device.type)
        settings = _finetune_settings(ctx, size)
        name = f"Fine-tuned {BACKBONE_LABEL} (last {TAIL_BLOCKS} blocks, {size} px)"
        with seeded(ctx.seed, device) as generator:
            net = PretrainedNet(backbone(size, device, trainable=True), len(ctx.classes)).to(device)
            model = PretrainedClassifier(net, _spec("finetune", ctx, size))
            # Reading the pictures fills the first quarter of the progress bar; the epochs the rest.
            prefix = embed(ctx.X_train, size, device, part="prefix", emit=ctx.emit, stop=ctx.stop,
                           what="training pictures", share=READING_SHARE)
            valid = (embed(ctx.X_valid, size, device, part="prefix", emit=ctx.emit, stop=ctx.stop,
                           what="validation pictures") if not isinstance(prefix, Stopped) else prefix)
            if isinstance(prefix, Stopped) or isinstance(valid, Stopped):
                _prior_head(net, ctx.y_train, len(ctx.classes))
                ctx.emit(_unfitted_message(ctx, "pictures"))
                net.eval()
                return Fitted(model=model, params=settings, name=name, cancelled=True)
            loop = _finetune_loop(ctx, settings, net, prefix, valid, generator, device).run()
        for parameter in net.parameters():
            parameter.requires_grad_(False)
        ran = {"epochs_run": loop.epochs_run, "best_epoch": loop.best_epoch, "steps": loop.step, "device": device.type}
        return Fitted(model=model, params={**settings, **ran}, name=name, stopped_early=loop.stopped_early,
                      cancelled=loop.cancelled)

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        net: PretrainedNet = fitted.model.net
        state = {f"head.{k}": v for k, v in net.head.state_dict().items()}
        state.update({f"tail.{k}": v for k, v in net.backbone.tail_state().items()})
        return _write(fitted.model.spec, state, folder)

    def load(self, folder: Path) -> PretrainedClassifier:
        return _read(folder, "finetune")


def _finetune_settings(ctx: FitContext, size: int) -> dict[str, Any]:
    epochs = int(ctx.params.get("epochs") or 30)
    if ctx.max_epochs:
        epochs = min(epochs, int(ctx.max_epochs))
    epochs = max(2, epochs)
    n = len(ctx.X_train)
    return {"input_size": size, "epochs": epochs, "head_epochs": int(ctx.params.get("head_epochs") or
                                                                     max(1, min(5, epochs // 5))),
            "batch_size": int(ctx.params.get("batch_size") or (16 if n < 200 else 32)),
            "lr": float(ctx.params.get("lr") or HEAD_LR), "tail_lr_share": TAIL_LR_SHARE,
            "patience": int(ctx.params.get("patience") or PATIENCE), "label_smoothing": LABEL_SMOOTHING,
            "weight_decay": WEIGHT_DECAY, "unfrozen": f"the last {TAIL_BLOCKS} blocks and the final 1×1 convolution",
            "augment": "none (the frozen part's output is remembered)", "class_weights": bool(ctx.imbalanced)}


class _Thaw(Hook):
    """Keeps the backbone's batch norms in eval mode (small sets) and unfreezes its tail after the
    head's epochs, saying so."""

    def __init__(self, net: PretrainedNet, head_epochs: int) -> None:
        self.net, self.head_epochs = net, head_epochs
        self.thawed = False

    def before_epoch(self, loop: Loop) -> None:
        self.net.backbone.eval()
        if not self.thawed and loop.epoch > self.head_epochs:
            self.thawed = True
            for module in self.net.backbone.tail_modules():
                module.requires_grad_(True)
            loop.emit(Message("info", f"Epoch {loop.epoch}: the new final layer has learnt alone for "
                                      f"{self.head_epochs} epoch{'s' * (self.head_epochs > 1)}; the network's last "
                                      "blocks now train with it."))


def _finetune_loop(ctx: FitContext, settings: dict[str, Any], net: PretrainedNet, prefix: np.ndarray,
                   valid: np.ndarray, generator: torch.Generator, device: torch.device) -> Loop:
    P, y = torch.as_tensor(prefix, device=device), torch.as_tensor(np.asarray(ctx.y_train), dtype=torch.int64,
                                                                     device=device)
    P_valid = torch.as_tensor(valid, device=device)
    y_valid = torch.as_tensor(np.asarray(ctx.y_valid), dtype=torch.int64, device=device)
    weight = None
    if ctx.imbalanced:
        counts = np.bincount(np.asarray(ctx.y_train), minlength=len(ctx.classes))
        weight = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=LABEL_SMOOTHING)
    tail = [p for m in net.backbone.tail_modules() for p in m.parameters()]
    optimizer = torch.optim.AdamW([{"params": list(net.head.parameters()), "lr": settings["lr"]},
                                   {"params": tail, "lr": settings["lr"] * TAIL_LR_SHARE}], weight_decay=WEIGHT_DECAY)
    thaw = _Thaw(net, settings["head_epochs"])

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        if thaw.thawed:
            return criterion(net.from_prefix(P[index]), y[index])
        with torch.no_grad():  # the head's epochs: the tail's output needs no graph
            pooled = net.backbone.pool(net.backbone.tail(P[index]))
        return criterion(net.head(net.dropout(pooled)), y[index])

    def validate() -> tuple[float, dict[str, float]]:
        net.eval()
        if not len(P_valid):
            return float("nan"), {"accuracy": float("nan")}
        loss, correct = 0.0, 0
        with torch.inference_mode():
            for start in range(0, len(P_valid), PREDICT_BATCH):
                logits = net.from_prefix(P_valid[start:start + PREDICT_BATCH])
                target = y_valid[start:start + PREDICT_BATCH]
                loss += float(criterion(logits, target)) * len(target)
                correct += int((logits.argmax(dim=1) == target).sum())
        return loss / len(P_valid), {"accuracy": correct / len(P_valid)}

    hooks = [thaw, EarlyStop(settings["patience"], warmup_epochs=settings["head_epochs"]),
             StopOrBudget(ctx.stop, ctx.time_budget, ctx.started), StepEvents(ctx.emit)]
    batches = Batches(len(P), min(settings["batch_size"], len(P)), device)
    return Loop(net, optimizer, batches, batch_loss, validate, settings["epochs"], generator=generator, hooks=hooks,
                emit=ctx.emit)


# --------------------------------------------------------------------------------------------
# Saving and loading (what was learnt only; the backbone is named, not copied)


def _write(spec: dict[str, Any], state: dict[str, torch.Tensor], folder: Path) -> list[str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, folder / "model.pt")
    (folder / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return ["model.pt", "model.json"]


def _read(folder: Path, kind: str) -> PretrainedClassifier:
    folder = Path(folder)
    with reading_saved_model(folder):
        try:
            spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            if spec.get("format") != FORMAT or spec.get("kind") != kind:
                raise ValueError(f"not a Trainboard {kind} model")
            state = torch.load(folder / "model.pt", weights_only=True, map_location="cpu")
            size = int(spec["backbone"]["input_size"])
            net = PretrainedNet(backbone(size, "cpu", trainable=kind == "finetune"), len(spec["class_names"]))
            net.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
            tail = {k[len("tail."):]: v for k, v in state.items() if k.startswith("tail.")}
            if kind == "finetune":
                _load_tail(net.backbone, tail)
        except BackboneUnavailable as err:
            raise RunError(f"{err} This run was trained on it ({spec['backbone']['packages']}).") from None
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    net.eval()
    return PretrainedClassifier(net, spec)


def _load_tail(body: Backbone, tail: dict[str, torch.Tensor]) -> None:
    expected = set(body.tail_state())
    if set(tail) != expected:
        raise ValueError("the fine-tuned blocks do not match the backbone")
    body.net.load_state_dict(tail, strict=False)
