"""The model registry: planner, comparison, progress text, the Train page and the CLI name models
by key and read each family's facts from here (ARCHITECTURE.md, "Adding a model family").

Adding a model is one new ``ModelFamily`` class plus one line here. Families are imported on
first use, so a table-only run never pays for importing torch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from core.device import cpu_device, pick_device
from core.errors import PlanError
from core.events import Callback, Message, ignore
from core.models.base import ModelFamily
from core.types import DeviceInfo

REGISTRY: dict[str, str] = {
    "dummy": "core.models.tabular:NoSkillFamily",
    "linear": "core.models.tabular:LinearFamily",
    "hgb": "core.models.tabular:HGBFamily",
    "forest": "core.models.tabular:ForestFamily",
    "mlp": "core.models.mlp_family:MLPFamily",
    "cnn": "core.models.cnn_family:CNNFamily",
    "embed+linear": "core.models.pretrained_family:EmbedLinearFamily",
    "finetune": "core.models.pretrained_family:FinetuneFamily",
    "blend": "core.models.tabular:BlendFamily",
}


def get_family(key: str) -> ModelFamily:
    """The family registered under ``key``, ready to fit, save and load."""
    try:
        module, cls = REGISTRY[key].split(":")
    except KeyError:
        raise PlanError(f"There is no model called '{key}'. Choose one of: {', '.join(trainable())}.") from None
    return getattr(import_module(module), cls)()


#: What a job says while a family loads what it needs (torch: ~5 s on 2 cores, once per process).
LOADING = "Loading the neural-network library (once per training process)…"


def ready(models: Iterable[str], on_event: Callback = ignore) -> float:
    """Load what the fits of these families need before any of them is timed, saying so when that
    takes a while; the seconds it took. Job workers do not preload torch (its ~0.25 GB would sit in
    every worker, under a large table's job too), so a job that trains a network loads it here."""
    started, said = time.perf_counter(), False
    for key in dict.fromkeys(models):
        family = get_family(key)
        if not family.loaded() and not said:
            on_event(Message("info", LOADING))
            said = True
        family.ready()
    return time.perf_counter() - started


def families(kind: str | None = None) -> list[ModelFamily]:
    """Every registered family (that takes ``kind`` of data), in registry order."""
    found = [get_family(key) for key in REGISTRY]
    return [f for f in found if kind is None or kind in f.kinds]


def trainable(kind: str | None = None) -> list[str]:
    """Keys a user may choose to train (the no-skill guess is only a yardstick)."""
    return [f.key for f in families(kind) if f.role in ("baseline", "model")]


def comparison_candidates(kind: str = "tabular") -> tuple[str, ...]:
    """Keys a comparison scores (the no-skill guess among them), simplest first."""
    ranked = sorted((f for f in families(kind) if f.comparison_order is not None), key=lambda f: f.comparison_order)
    return tuple(f.key for f in ranked)


def baseline_for(kind: str) -> str | None:
    """The sanity baseline fitted before a model of this kind of data (None: there is none)."""
    return next((f.key for f in families(kind) if f.role == "baseline"), None)


def device_for(model: str, params: dict[str, Any] | None = None) -> DeviceInfo:
    """Torch models use the best device (unless ``params['device'] == 'cpu'``); scikit-learn the CPU."""
    family = get_family(model)
    if family.family == "torch":
        return pick_device((params or {}).get("device", "auto"))
    return cpu_device()
