"""PyTorch MLP for tables: scikit-learn compatible estimators, their save/load, and how the "mlp"
family (its facts: ``core.models.mlp_family``) fits, saves and loads.

The estimators take the dense float matrix that ``core.features.dense_preprocessor`` makes and
train a plain multi-layer perceptron in ``core.models.torch_loop``'s loop: AdamW, a plateau
learning-rate schedule, early stopping on the validation loss (best weights restored). The whole
training set lives as one float32 tensor on the device and batches are index slices of a seeded
permutation, so the loop runs as fast as a hand-written one.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from torch import nn

from core.errors import PlanError, RunError
from core.events import Callback, StopFlag, ignore
from core.features import dense_preprocessor
from core.models.base import FitContext, Fitted
from core.models.torch_loop import Batches, EarlyStop, Loop, Schedule, StepEvents, StopOrBudget, seeded
from core.trusted import load_pickle

#: Rows per forward pass when predicting or scoring the validation split (bounds memory).
PREDICT_CHUNK = 65_536
#: Below this many rows a fit without a validation set monitors its training data instead.
MIN_ROWS_FOR_HOLDOUT = 20
#: Settings a plan (or the user) may change; the family sets the rest from the FitContext.
TUNABLE = ("hidden", "dropout", "lr", "weight_decay", "batch_size", "max_epochs", "patience",
           "valid_fraction", "class_weight")
FORMAT_VERSION = 1


def auto_batch_size(n_rows: int) -> int:
    """Batch size for ``batch_size="auto"``: small batches (more updates) for small tables,
    large ones (throughput) for big tables."""
    for limit, size in ((2_000, 64), (10_000, 128), (50_000, 256), (100_000, 512)):
        if n_rows < limit:
            return size
    return 1024


def build_module(layer_sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear → LayerNorm → ReLU → Dropout per hidden layer, then a linear output layer.

    LayerNorm rather than BatchNorm: it works for any batch size (even a last batch of one row)
    and predicts the same for a row whatever else is in the batch.
    """
    layers: list[nn.Module] = []
    for n_in, n_out in zip(layer_sizes[:-2], layer_sizes[1:-1], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(layer_sizes[-2], layer_sizes[-1]))
    return nn.Sequential(*layers)


def _dense32(X: Any) -> np.ndarray:
    """A C-contiguous, writable float32 array (torch refuses read-only memory without a warning)."""
    if sp.issparse(X):
        X = X.toarray()
    return np.require(X, dtype=np.float32, requirements=["C", "W"])


@torch.inference_mode()
def _outputs(module: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The module's raw outputs for every row of ``X``, in eval mode, chunk by chunk."""
    module.eval()
    return torch.cat([module(X[i:i + PREDICT_CHUNK]) for i in range(0, len(X), PREDICT_CHUNK)])


class _TorchMLPBase(BaseEstimator):
    """Shared fit/predict machinery; subclasses say how targets become tensors and what the loss is."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.1, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int | str = "auto", max_epochs: int = 100,
                 patience: int = 8, valid_fraction: float = 0.1, device: str = "cpu",
                 random_state: int | None = 0, callback: Callback | None = None,
                 stop: StopFlag | None = None, time_budget: float | None = None) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.device = device
        self.random_state = random_state
        self.callback = callback
        self.stop = stop
        self.time_budget = time_budget

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- what subclasses provide ---------------------------------------------------------------
    def _encode_fit_targets(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets as the loss wants them, and a mask of the rows that could be encoded."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _loss(self, targets: np.ndarray, device: torch.device) -> nn.Module:
        raise NotImplementedError

    def _metrics(self, outputs: torch.Tensor, targets: torch.Tensor, valid_loss: float) -> dict[str, float]:
        raise NotImplementedError

    def _holdout_stratify(self, targets: np.ndarray) -> np.ndarray | None:
        return None

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> _TorchMLPBase:
        """Train on (X, y), early-stopping on (X_val, y_val) or on a held-out ``valid_fraction``."""
        X, y = validate_data(self, X, y, accept_sparse=True, dtype=np.float32,
                             y_numeric=isinstance(self, RegressorMixin))
        targets = self._encode_fit_targets(y)
        seed = self._seed()
        X, targets, X_valid, valid_targets = self._validation_split(X, targets, X_val, y_val, seed)
        self.batch_size_ = auto_batch_size(len(X)) if self.batch_size == "auto" else int(self.batch_size)
        device = torch.device(self.device)
        with seeded(seed, device) as generator:
            module = build_module(self._layer_sizes(), self.dropout).to(device)
            loop = self._loop(module, generator, _tensor(X, device), _tensor(targets, device),
                              _tensor(X_valid, device), _tensor(valid_targets, device),
                              self._loss(targets, device)).run()
        self.history_ = [{"epoch": e.epoch, "train_loss": e.train_loss, "valid_loss": e.valid_loss}
                         for e in loop.history]
        self.n_epochs_, self.best_epoch_ = loop.epochs_run, loop.best_epoch
        self.stopped_early_, self.cancelled_ = loop.stopped_early, loop.cancelled
        self.module_ = module  # in eval mode, as the loop leaves it
        return self

    def _loop(self, module: nn.Module, generator: torch.Generator, X, y, X_valid, y_valid, loss_fn) -> Loop:
        """AdamW with a plateau schedule, early stopping, the stop flag and time budget, step events."""
        optimizer = torch.optim.AdamW(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(1, self.patience // 3))
        hooks = [Schedule(plateau, per="epoch"), EarlyStop(self.patience), StopOrBudget(self.stop, self.time_budget)]
        if self.callback is not None:
            hooks.append(StepEvents(self.callback))

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            return loss_fn(module(X[index]), y[index])

        @torch.inference_mode()
        def validate() -> tuple[float, dict[str, float]]:
            outputs = _outputs(module, X_valid)
            valid_loss = float(loss_fn(outputs, y_valid))
            return valid_loss, self._metrics(outputs, y_valid, valid_loss)

        return Loop(module, optimizer, Batches(len(X), self.batch_size_, X.device), batch_loss, validate,
                    self.max_epochs, generator=generator, hooks=hooks, emit=self.callback or ignore)

    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _layer_sizes(self) -> list[int]:
        return [self.n_features_in_, *[int(h) for h in self.hidden], self._n_outputs()]

    def _validation_split(self, X, targets, X_val, y_val, seed):
        """(X_train, t_train, X_valid, t_valid): the given validation set, a seeded hold-out,
        or — for tables too small to split — the training data itself."""
        X = _dense32(X)
        if X_val is not None:
            X_valid = _dense32(validate_data(self, X_val, reset=False, accept_sparse=True, dtype=np.float32))
            valid_targets, known = self._encode_targets(np.asarray(y_val))
            # A validation row whose class never appears in training cannot be scored; skip it.
            if known.all():
                return X, targets, X_valid, valid_targets
            if known.any():
                return X, targets, X_valid[known], valid_targets[known]
            return X, targets, X, targets
        n_valid = int(round(len(X) * self.valid_fraction))
        if len(X) < MIN_ROWS_FOR_HOLDOUT or n_valid < 1:
            return X, targets, X, targets
        try:
            parts = train_test_split(X, targets, test_size=n_valid, random_state=seed,
                                     stratify=self._holdout_stratify(targets))
        except ValueError:  # a class too rare to stratify on
            parts = train_test_split(X, targets, test_size=n_valid, random_state=seed)
        X_train, X_valid, t_train, t_valid = parts
        return X_train, t_train, X_valid, t_valid

    # -- predicting ----------------------------------------------------------------------------
    def _raw_outputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, accept_sparse=True, dtype=np.float32)
        device = next(self.module_.parameters()).device
        return _outputs(self.module_, torch.from_numpy(_dense32(X)).to(device)).cpu()


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


class TorchMLPClassifier(ClassifierMixin, _TorchMLPBase):
    """MLP classifier on a dense float matrix; ``predict_proba`` columns follow ``classes_``."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.1, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int | str = "auto", max_epochs: int = 100,
                 patience: int = 8, valid_fraction: float = 0.1, class_weight: str | dict | None = None,
                 device: str = "cpu", random_state: int | None = 0, callback: Callback | None = None,
                 stop: StopFlag | None = None, time_budget: float | None = None) -> None:
        super().__init__(hidden=hidden, dropout=dropout, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size, max_epochs=max_epochs, patience=patience,
                         valid_fraction=valid_fraction, device=device, random_state=random_state,
                         callback=callback, stop=stop, time_budget=time_budget)
        self.class_weight = class_weight

    def _encode_fit_targets(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("The target has only one class; a classifier needs at least two classes.")
        return codes.astype(np.int64)

    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        return codes.astype(np.int64), self.classes_[codes] == y

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _holdout_stratify(self, targets: np.ndarray) -> np.ndarray | None:
        return targets

    def _loss(self, targets: np.ndarray, device: torch.device) -> nn.Module:
        if self.class_weight is None:
            return nn.CrossEntropyLoss()
        codes = np.arange(len(self.classes_))
        weights = compute_class_weight(_coded_weight(self.class_weight, self.classes_), classes=codes, y=targets)
        return nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))

    def _metrics(self, outputs: torch.Tensor, targets: torch.Tensor, valid_loss: float) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(dim=1) == targets).float().mean())}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        return torch.softmax(self._raw_outputs(X).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        codes = self._raw_outputs(X).argmax(dim=1).numpy()
        return self.classes_[codes]


def _coded_weight(class_weight: str | dict, classes: np.ndarray) -> str | dict:
    """``class_weight`` keyed by class code (the network's output index) instead of label."""
    if isinstance(class_weight, dict):
        return {i: class_weight.get(label, 1.0) for i, label in enumerate(classes.tolist())}
    return class_weight


class TorchMLPRegressor(RegressorMixin, _TorchMLPBase):
    """MLP regressor; trains on a standardised target and predicts in the target's own units."""

    def _encode_fit_targets(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        self.target_mean_ = float(y.mean())
        std = float(y.std())
        self.target_std_ = std if std > 0 else 1.0
        return self._encode_targets(y)[0]

    def _encode_targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        scaled = ((y - self.target_mean_) / self.target_std_).astype(np.float32).reshape(-1, 1)
        return scaled, np.isfinite(y)

    def _n_outputs(self) -> int:
        return 1

    def _loss(self, targets: np.ndarray, device: torch.device) -> nn.Module:
        return nn.MSELoss()

    def _metrics(self, outputs: torch.Tensor, targets: torch.Tensor, valid_loss: float) -> dict[str, float]:
        # The loss is the MSE of the standardised target, so this RMSE is in the target's units.
        return {"rmse": math.sqrt(valid_loss) * self.target_std_}

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in the target's original units."""
        return self._raw_outputs(X).double().numpy().ravel() * self.target_std_ + self.target_mean_


_ESTIMATORS: dict[str, type[_TorchMLPBase]] = {c.__name__: c for c in (TorchMLPClassifier, TorchMLPRegressor)}


# -- save / load -------------------------------------------------------------------------------
def save_mlp(estimator: _TorchMLPBase, folder: Path) -> list[str]:
    """Write the weights (``mlp.pt``, a plain state dict) and everything to rebuild the estimator
    (``mlp.json``) into ``folder``; return the file names."""
    check_is_fitted(estimator, "module_")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in estimator.module_.state_dict().items()}
    torch.save(state, folder / "mlp.pt")
    spec: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "class": type(estimator).__name__,
        "params": _json_params(estimator),
        "layer_sizes": estimator._layer_sizes(),
        "n_features_in": int(estimator.n_features_in_),
        "batch_size": estimator.batch_size_,
        "n_epochs": estimator.n_epochs_,
        "best_epoch": estimator.best_epoch_,
        "stopped_early": estimator.stopped_early_,
        "cancelled": estimator.cancelled_,
        "history": estimator.history_,
    }
    if hasattr(estimator, "feature_names_in_"):
        spec["feature_names_in"] = estimator.feature_names_in_.tolist()
    if isinstance(estimator, TorchMLPClassifier):
        spec["classes"] = estimator.classes_.tolist()
        spec["classes_dtype"] = estimator.classes_.dtype.str if estimator.classes_.dtype != object else "object"
    else:
        spec["target_mean"], spec["target_std"] = estimator.target_mean_, estimator.target_std_
    (folder / "mlp.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return ["mlp.pt", "mlp.json"]


def _json_params(estimator: _TorchMLPBase) -> dict[str, Any]:
    """The constructor params that survive a JSON round trip (tuples become lists); the rest
    (callbacks, stop flags, dicts keyed by non-strings) are left out."""
    params = {}
    for name, value in estimator.get_params().items():
        if name in ("callback", "stop"):
            continue
        value = list(value) if isinstance(value, tuple) else value
        try:
            if json.loads(json.dumps(value)) == value:
                params[name] = value
        except (TypeError, ValueError):
            pass
    return params


def load_mlp(folder: Path) -> _TorchMLPBase:
    """Rebuild an estimator saved by ``save_mlp``, on the CPU; the weights load with ``weights_only``."""
    folder = Path(folder)
    try:
        spec = json.loads((folder / "mlp.json").read_text(encoding="utf-8"))
        cls = _ESTIMATORS[spec["class"]]
    except (OSError, ValueError, KeyError) as err:
        raise RunError(f"The folder {folder} holds no readable MLP model (mlp.json). "
                       "Pick another run, or train the model again.") from err
    known = cls().get_params()
    params = {k: (tuple(v) if k == "hidden" else v) for k, v in spec["params"].items() if k in known}
    estimator = cls(**{**params, "device": "cpu"})
    estimator.n_features_in_ = spec["n_features_in"]
    if "feature_names_in" in spec:
        estimator.feature_names_in_ = np.asarray(spec["feature_names_in"], dtype=object)
    if "classes" in spec:
        estimator.classes_ = np.asarray(spec["classes"], dtype=object if spec["classes_dtype"] == "object"
                                        else np.dtype(spec["classes_dtype"]))
    else:
        estimator.target_mean_, estimator.target_std_ = spec["target_mean"], spec["target_std"]
    estimator.batch_size_, estimator.history_ = spec["batch_size"], spec["history"]
    estimator.n_epochs_, estimator.best_epoch_ = spec["n_epochs"], spec["best_epoch"]
    estimator.stopped_early_, estimator.cancelled_ = spec["stopped_early"], spec["cancelled"]
    module = build_module(spec["layer_sizes"], estimator.dropout)
    module.load_state_dict(torch.load(folder / "mlp.pt", weights_only=True, map_location="cpu"))
    estimator.module_ = module.eval()
    return estimator


# -- fitting for the family --------------------------------------------------------------------------------
#: Below this many training rows the MLP runs on one CPU thread: its small batches gain nothing
#: from a second thread, and on a busy machine OpenMP's spin-waits made one wine fold take 47 s.
SMALL_FOR_THREADS = 20_000


@contextmanager
def torch_threads(n: int | None):
    """Temporarily run torch on ``n`` threads (None leaves the setting alone)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MLPTrainer:
    """How ``core.models.mlp_family.MLPFamily`` fits, saves and loads (this module imports torch)."""

    def fit(self, ctx: FitContext) -> Fitted:
        """Fit the preprocessing on the training split, then the MLP with live events."""
        estimator = self._estimator(ctx)
        prep = dense_preprocessor(ctx.prepared.used_columns)
        X_train = prep.fit_transform(ctx.X_train)
        has_valid = ctx.X_valid is not None and len(ctx.X_valid) > 0
        X_valid = prep.transform(ctx.X_valid) if has_valid else None
        y_valid = np.asarray(ctx.y_valid) if has_valid else None
        if ctx.time_budget is not None:
            estimator.set_params(time_budget=max(ctx.time_budget - (time.perf_counter() - ctx.started), 0.0))
        try:
            with torch_threads(1 if len(ctx.X_train) < SMALL_FOR_THREADS and ctx.device.type == "cpu" else None):
                estimator.fit(X_train, np.asarray(ctx.y_train), X_val=X_valid, y_val=y_valid)
        finally:
            estimator.set_params(callback=None, stop=None)
        return Fitted(model=Pipeline([("prep", prep), ("model", estimator)]),
                      params=_effective_params(estimator), name=_name(estimator),
                      stopped_early=estimator.stopped_early_, cancelled=estimator.cancelled_)

    @staticmethod
    def _estimator(ctx: FitContext) -> _TorchMLPBase:
        unknown = sorted(set(ctx.params) - set(TUNABLE))
        if unknown:
            raise PlanError(f"The MLP has no setting {', '.join(map(repr, unknown))}. "
                            f"Use only these: {', '.join(TUNABLE)}.")
        params: dict[str, Any] = {"random_state": ctx.seed, "device": ctx.device.type,
                                  "callback": ctx.emit, "stop": ctx.stop}
        if ctx.task != "regression" and ctx.imbalanced:
            params["class_weight"] = "balanced"
        params.update(ctx.params)
        if "hidden" in params:
            params["hidden"] = tuple(int(h) for h in params["hidden"])
        if ctx.max_epochs is not None:
            params["max_epochs"] = ctx.max_epochs
        if ctx.task == "regression":
            params.pop("class_weight", None)
            return TorchMLPRegressor(**params)
        return TorchMLPClassifier(**params)

    def save(self, fitted: Fitted, folder: Path) -> list[str]:
        """Write ``preprocess.joblib`` (the fitted preprocessing) plus ``mlp.pt`` and ``mlp.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(fitted.model.named_steps["prep"], folder / "preprocess.joblib")
        return ["preprocess.joblib", *save_mlp(fitted.model.named_steps["model"], folder)]

    def load(self, folder: Path) -> Pipeline:
        """The saved preprocessing + MLP as one Pipeline that predicts from raw columns."""
        folder = Path(folder)
        path = folder / "preprocess.joblib"
        if not path.is_file():
            raise RunError(f"The folder {folder} has no preprocess.joblib. Pick another run, "
                           "or train the model again.")
        prep = load_pickle(path)  # only inside a run folder load_model vetted (rule 7)
        return Pipeline([("prep", prep), ("model", load_mlp(folder))])


def _effective_params(estimator: _TorchMLPBase) -> dict[str, Any]:
    """The settings the fit actually used, including epochs run, for the manifest."""
    params = {"hidden": list(estimator.hidden), "dropout": estimator.dropout, "lr": estimator.lr,
              "weight_decay": estimator.weight_decay, "batch_size": estimator.batch_size_,
              "max_epochs": estimator.max_epochs, "patience": estimator.patience,
              "epochs_run": estimator.n_epochs_, "best_epoch": estimator.best_epoch_,
              "n_inputs": int(estimator.n_features_in_), "device": estimator.device,
              "seed": estimator.random_state}
    if isinstance(estimator, TorchMLPClassifier):
        params["class_weight"] = estimator.class_weight if isinstance(estimator.class_weight, str) else None
    return params


def _name(estimator: _TorchMLPBase) -> str:
    return f"MLP ({'-'.join(str(h) for h in estimator.hidden)})"
