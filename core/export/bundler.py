"""Copying Trainboard's own definitions into a standalone script (``core.export.code``).

A generated script must not import Trainboard, yet its preparation uses Trainboard's own
transformers and helpers. ``Bundle`` copies each needed definition from its real source
(``inspect.getsource``, so the code has one home) with everything it refers to: module-level
functions, classes and constants of ``core`` modules are copied too, other names become imports.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import Any

_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class _Module:
    source: str
    tree: ast.Module
    defined: dict[str, ast.stmt]  # top-level def/class/assignment by name
    imported: dict[str, ast.stmt]  # top-level import statement by the name it binds


@cache
def _module(name: str) -> _Module:
    source = inspect.getsource(sys.modules.get(name) or importlib.import_module(name))
    tree = ast.parse(source)
    defined: dict[str, ast.stmt] = {}
    imported: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        defined[name.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported[(alias.asname or alias.name).split(".")[0]] = node
    return _Module(source, tree, defined, imported)


class _Names(ast.NodeVisitor):
    """The names a definition reads, annotations left out (``from __future__ import annotations``
    keeps them unevaluated in the script)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        pass  # its annotation only

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for item in [*node.decorator_list, *node.args.defaults, *[d for d in node.args.kw_defaults if d], *node.body]:
            self.visit(item)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.startswith("core"):
            raise ValueError(f"a definition imports Trainboard inside its body ({node.module}); it cannot be copied")


def _with_comments(source: str, node: ast.stmt) -> str:
    """A definition's source with its decorators and the comment lines just above it (what a
    constant means is written there: ``#: ...``)."""
    lines = source.splitlines()
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return "\n".join(lines[first - 1:node.end_lineno])


def _reads(node: ast.stmt) -> set[str]:
    visitor = _Names()
    visitor.visit(node)
    return visitor.names


@dataclass
class Bundle:
    """The definitions and imports a script needs, in an order that runs."""

    imports: set[str] = field(default_factory=set)
    _done: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, name) -> its source, in order
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, obj: Any) -> str:
        """Copy ``obj`` (a function, class or constant name of a ``core`` module: pass the object,
        or ``(module, name)``) and what it needs; returns the name it has in the script."""
        module, name = obj if isinstance(obj, tuple) else (obj.__module__, obj.__name__)
        self._add(module, name)
        return name

    def import_line(self, line: str) -> None:
        self.imports.add(line)

    def _add(self, module: str, name: str) -> None:
        key = (module, name)
        if key in self._seen:
            return
        self._seen.add(key)
        info = _module(module)
        node = info.defined.get(name)
        if node is None:
            raise KeyError(f"{name} is not defined at the top of {module}")
        for read in sorted(_reads(node) - {name}):
            self._need(module, info, read)
        segment = _with_comments(info.source, node)
        if segment not in self._done.values():  # one assignment may bind several names
            self._done[key] = segment

    def _need(self, module: str, info: _Module, name: str) -> None:
        if name in info.defined:
            self._add(module, name)
        elif name in info.imported:
            statement = info.imported[name]
            if isinstance(statement, ast.ImportFrom) and statement.module and statement.module.startswith("core"):
                alias = next(a for a in statement.names if (a.asname or a.name) == name)
                self._add(statement.module, alias.name)
            elif isinstance(statement, ast.ImportFrom):
                if statement.module == "__future__":
                    return
                alias = next(a for a in statement.names if (a.asname or a.name) == name)
                self.imports.add(f"from {statement.module} import {alias.name}"
                                 + (f" as {alias.asname}" if alias.asname else ""))
            else:
                alias = next(a for a in statement.names if (a.asname or a.name).split(".")[0] == name)
                self.imports.add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
        elif name not in _BUILTINS:
            pass  # a local name (argument, loop variable, comprehension): not the module's

    def definitions(self) -> list[tuple[str, str]]:
        """``(module, source)`` of each copied definition, each after what it needs."""
        return [(module, source) for (module, _), source in self._done.items()]

    def import_block(self) -> str:
        plain = sorted(line for line in self.imports if line.startswith("import "))
        froms = sorted(line for line in self.imports if line.startswith("from "))
        return "\n".join([*plain, *froms])
