"""Python source that builds an object again: a scikit-learn estimator from its ``get_params``.

``repr`` is not code (``HistGradientBoostingClassifier(categorical_features=array([...]))``,
Trainboard's own classes, numpy scalars), so this walks the constructor parameters
(``get_params(deep=False)``) recursively — estimators, lists of ``(name, estimator)`` steps,
ColumnTransformer tuples, numpy arrays and scalars, dtypes, functions by qualified name — and
records the imports they need in a ``FlatSource``. Only parameters that differ from the
constructor's defaults are written, so the code reads like a person wrote it.
"""

from __future__ import annotations

import importlib
import inspect
import math
import textwrap
import types
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from core.export.source import FlatSource

#: Trainboard subclasses that only add live reporting: the script uses the plain class, which
#: fits and predicts identically.
PLAIN_CLASSES = {
    "core.models.tabular.ReportingHGBClassifier": ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    "core.models.tabular.ReportingHGBRegressor": ("sklearn.ensemble", "HistGradientBoostingRegressor"),
}
WIDTH = 100
#: The parameter written first and without its name (as people write these classes).
POSITIONAL = {"Pipeline": "steps", "ColumnTransformer": "transformers"}


def public_path(obj: Any) -> tuple[str, str]:
    """The shortest public module an object can be imported from, and its name there
    (``sklearn.ensemble``, not ``sklearn.ensemble._hist_gradient_boosting.gradient_boosting``)."""
    module, name = obj.__module__, obj.__qualname__
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        candidate = ".".join(parts[:end])
        if any(p.startswith("_") for p in parts[1:end]):
            break
        try:
            if getattr(importlib.import_module(candidate), name, None) is obj:
                return candidate, name
        except ImportError:
            continue
    return module, name


class Writer:
    """Turns values into source text, adding what they need to ``pieces``."""

    def __init__(self, pieces: FlatSource) -> None:
        self.pieces = pieces
        self._output: str | None = None  # the set_output an enclosing estimator passes on to its parts

    def expr(self, value: Any, indent: int = 0) -> str:
        one = self._expr(value, indent, flat=True)
        if len(one) + indent <= WIDTH and "\n" not in one:
            return one
        return self._expr(value, indent, flat=False)

    # -- one value ------------------------------------------------------------------------------
    def _expr(self, value: Any, indent: int, flat: bool) -> str:
        if isinstance(value, BaseEstimator):
            return self._estimator(value, indent, flat)
        if value is None or isinstance(value, (bool, str, int)) and not isinstance(value, np.generic):
            return repr(value)
        if isinstance(value, (float, np.floating)):
            return self._float(float(value))
        if isinstance(value, np.bool_):
            return repr(bool(value))
        if isinstance(value, np.integer):
            return repr(int(value))
        if isinstance(value, np.ndarray):
            self.pieces.import_line("import numpy as np")
            return self._array(value, indent, flat)
        if isinstance(value, np.dtype):
            return self._dtype(value)
        if isinstance(value, type) and issubclass(value, np.generic):
            self.pieces.import_line("import numpy as np")
            return f"np.{value.__name__}"
        if isinstance(value, np.ufunc):
            self.pieces.import_line("import numpy as np")
            return f"np.{value.__name__}"
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
            return self._named(value)
        if isinstance(value, (list, tuple)):
            return self._sequence(value, indent, flat)
        if isinstance(value, dict):
            pairs = [(self.expr(k), v) for k, v in value.items()]
            return self._wrap("{", "}", [f"{k}: {self._child(v, indent + 4, flat)}" for k, v in pairs], indent, flat)
        raise TypeError(f"cannot write {type(value).__name__} as Python source")

    def _child(self, value: Any, indent: int, flat: bool) -> str:
        """A value inside another: on one line when it fits there, else broken up in turn."""
        return self._expr(value, indent, True) if flat else self.expr(value, indent)

    @staticmethod
    def _float(value: float) -> str:
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)

    def _array(self, value: np.ndarray, indent: int, flat: bool) -> str:
        """``np.array([...], dtype=...)``; a long one-dimensional array wrapped several items a line."""
        dtype = self._dtype(value.dtype)
        items = [self._expr(v, indent + 8, True) for v in value.tolist()] if value.ndim == 1 else None
        if flat or items is None:
            return f"np.array({self._child(value.tolist(), indent + 4, flat)}, dtype={dtype})"
        pad = " " * (indent + 4)
        lines = textwrap.wrap(", ".join(items), WIDTH - len(pad), break_long_words=False, break_on_hyphens=False)
        return "np.array(\n" + pad + "[" + ("\n" + pad + " ").join(lines) + f"],\n{pad}dtype={dtype},\n" + \
            " " * indent + ")"

    def _dtype(self, dtype: np.dtype) -> str:
        kind = np.dtype(dtype).kind
        if kind == "O":
            return "object"
        if kind == "b":
            return "bool"
        self.pieces.import_line("import numpy as np")
        return f"np.{np.dtype(dtype).name}"

    def _named(self, obj: Any) -> str:
        """A function or class by name: copied when it is Trainboard's, imported otherwise."""
        key = f"{obj.__module__}.{obj.__qualname__}"
        if key in PLAIN_CLASSES:
            module, name = PLAIN_CLASSES[key]
        elif obj.__module__.startswith("core"):
            return self.pieces.add(obj)
        elif obj.__module__ == "builtins":
            return obj.__qualname__
        else:
            module, name = public_path(obj)
        self.pieces.import_line(f"from {module} import {name.split('.')[0]}")
        return name

    def _sequence(self, value: list | tuple, indent: int, flat: bool) -> str:
        items = [self._child(v, indent + 4, flat) for v in value]
        if isinstance(value, tuple):
            if len(items) == 1:
                return f"({items[0]},)"
            return self._wrap("(", ")", items, indent, flat)
        return self._wrap("[", "]", items, indent, flat)

    def _estimator(self, est: BaseEstimator, indent: int, flat: bool) -> str:
        name = self._named(type(est))
        params = self._changed_params(est)
        first = POSITIONAL.get(type(est).__name__)
        output = getattr(est, "_sklearn_output_config", {}).get("transform")
        inherited = output is not None and output == self._output
        outer, self._output = self._output, output or self._output
        try:
            args = [self._child(params.pop(first), indent + 4, flat)] if first in params else []
            args += [f"{k}={self._child(v, indent + 4, flat)}" for k, v in params.items()]
        finally:
            self._output = outer
        text = self._wrap(f"{name}(", ")", args, indent, flat)
        if output and not inherited:  # set_output is not a constructor parameter; it reaches the parts itself
            text += f".set_output(transform={output!r})"
        return text

    @staticmethod
    def _changed_params(est: BaseEstimator) -> dict[str, Any]:
        defaults = {name: p.default for name, p in inspect.signature(type(est).__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        out = {}
        for key, value in est.get_params(deep=False).items():
            default = defaults.get(key, inspect.Parameter.empty)
            if default is not inspect.Parameter.empty and _same(value, default):
                continue
            out[key] = value
        return out

    @staticmethod
    def _wrap(opening: str, closing: str, items: list[str], indent: int, flat: bool) -> str:
        if flat or not items:
            return opening + ", ".join(items) + closing
        pad = " " * (indent + 4)
        return opening + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + closing


def _same(value: Any, default: Any) -> bool:
    """Whether a parameter equals its default (arrays and estimators never count as equal)."""
    if isinstance(value, (np.ndarray, BaseEstimator)) or isinstance(default, (np.ndarray, BaseEstimator)):
        return False
    if type(value) is not type(default) and not (isinstance(value, (int, float)) and isinstance(default, (int, float))
                                                 and not isinstance(value, bool) and not isinstance(default, bool)):
        return False
    if isinstance(value, float) and isinstance(default, float) and math.isnan(value) and math.isnan(default):
        return True
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False
