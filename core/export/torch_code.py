"""The torch MLP's training written out in plain torch, for ``core.export.code``.

The same steps as ``core.models.mlp`` + ``core.models.torch_loop``: the network built by
``build_module`` (copied from its source) after seeding torch with the run's seed, AdamW, a
plateau schedule on the validation loss, batches from a seeded permutation each epoch. Rather
than re-deciding when to stop, the script trains for the epochs the run trained and keeps the
weights of the run's best epoch: the same model, without copying the early-stopping machinery.
"""

from __future__ import annotations

from core.export.source import FlatSource

_LOOP = '''
class FittedMLP:
    """The trained network with the few facts prediction needs (class order, target scale)."""

    def __init__(self, module, classes=None, mean=0.0, std=1.0):
        self.module, self.classes_, self.mean, self.std = module, classes, mean, std

    def outputs(self, X):
        self.module.eval()
        X = torch.from_numpy(to_dense32(X))
        with torch.inference_mode():
            return torch.cat([self.module(X[i:i + 65_536]) for i in range(0, len(X), 65_536)])

    def predict_proba(self, X):
        return torch.softmax(self.outputs(X).double(), dim=1).numpy()

    def predict(self, X):
        if self.classes_ is not None:
            return self.classes_[self.outputs(X).argmax(dim=1).numpy()]
        return self.outputs(X).double().numpy().ravel() * self.std + self.mean


def to_dense32(X):
    """A C-contiguous, writable float32 array (text makes the preparation's output sparse)."""
    if sp.issparse(X):
        X = X.astype(np.float32).toarray()
    return np.require(X, dtype=np.float32, requirements=["C", "W"])


def fit_mlp(X, y, X_watch, y_watch, settings):
    """Train the MLP as the run did: the run's epochs, the best epoch's weights kept."""
    X, X_watch = to_dense32(X), to_dense32(X_watch)
    if CLASSES:
        classes, codes = np.unique(y, return_inverse=True)
        targets = codes.astype(np.int64)
        watch_codes = np.clip(np.searchsorted(classes, y_watch), 0, len(classes) - 1)
        known = classes[watch_codes] == y_watch  # a watched row of a class training never saw is skipped
        X_watch, watch_targets = (X_watch[known], watch_codes[known].astype(np.int64)) if known.any() else (X, targets)
        n_out = len(classes)
        weight = None
        if settings["class_weight"]:
            weights = compute_class_weight(settings["class_weight"], classes=np.arange(n_out), y=targets)
            weight = torch.tensor(weights, dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        mean, std = 0.0, 1.0
    else:
        y = np.asarray(y, dtype=np.float64)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        targets = ((y - mean) / std).astype(np.float32).reshape(-1, 1)
        watch_targets = ((np.asarray(y_watch, dtype=np.float64) - mean) / std).astype(np.float32).reshape(-1, 1)
        classes, n_out, loss_fn = None, 1, nn.MSELoss()
    X, targets = torch.from_numpy(X), torch.from_numpy(np.ascontiguousarray(targets))
    X_watch, watch_targets = torch.from_numpy(X_watch), torch.from_numpy(np.ascontiguousarray(watch_targets))

    if len(X) < 20_000:
        torch.set_num_threads(1)  # as the run did on a small table (sums in another order differ in the last bits)
    torch.manual_seed(settings["seed"])  # the weights' start and dropout
    generator = torch.Generator().manual_seed(settings["seed"])  # the batches' order
    module = build_module([X.shape[1], *settings["hidden"], n_out], settings["dropout"])
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                         patience=max(1, settings["patience"] // 3))
    best = None
    for epoch in range(1, settings["epochs_run"] + 1):
        module.train()
        for index in torch.randperm(len(X), generator=generator).split(settings["batch_size"]):
            loss = loss_fn(module(X[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        module.eval()
        with torch.inference_mode():
            watch_loss = float(loss_fn(module(X_watch), watch_targets))
        plateau.step(watch_loss)
        if epoch == settings["best_epoch"]:  # the run's early stopping kept this epoch's weights
            best = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    return FittedMLP(module, classes, mean, std)
'''


def mlp_source(pieces: FlatSource, task: str) -> str:
    """The MLP's training code; ``build_module`` and the imports go into ``pieces``."""
    pieces.add(("core.models.mlp", "build_module"))
    for line in ("import numpy as np", "import scipy.sparse as sp", "import torch", "from torch import nn",
                 "from sklearn.utils.class_weight import compute_class_weight"):
        pieces.import_line(line)
    return _LOOP.strip("\n")
