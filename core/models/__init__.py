"""The model registry: planner and trainers name models by key (DESIGN.md §2).

Adding a model is one new ``ModelFamily`` class plus one line here. Families are imported on
first use, so a table-only run never pays for importing torch.
"""

from __future__ import annotations

from importlib import import_module

from core.errors import PlanError
from core.models.base import ModelFamily

REGISTRY: dict[str, str] = {
    "linear": "core.models.tabular:LinearFamily",
    "hgb": "core.models.tabular:HGBFamily",
    "forest": "core.models.tabular:ForestFamily",
    "mlp": "core.models.mlp:MLPFamily",
    "cnn": "core.models.cnn:CNNFamily",
}


def get_family(key: str) -> ModelFamily:
    """The family registered under ``key``, ready to fit, save and load."""
    try:
        module, cls = REGISTRY[key].split(":")
    except KeyError:
        raise PlanError(f"There is no model called '{key}'. Choose one of: {', '.join(REGISTRY)}.") from None
    return getattr(import_module(module), cls)()


def models_for(kind: str) -> list[str]:
    """Keys of the models that accept this kind of data ("tabular" or "images")."""
    return [key for key in REGISTRY if kind in get_family(key).kinds]
