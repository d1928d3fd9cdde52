"""Trainboard's own definitions and what they depend on, cut from the real modules (never a
hand-kept copy): the one home for shipping pieces of ``core`` without Trainboard.

* ``package_files``: the modules a pickle names (``core.features.ColumnCaster``, …), each cut down
  to those names and what they use, under the same import paths, so ``joblib.load`` finds them
  without Trainboard (a model bundle's ``core/``, ``core.export.bundle``);
* ``FlatSource``: definitions gathered into one self-contained module body, our own imports
  replaced by the definitions themselves, with the imports it needs as one tidy block (a bundle's
  ``predict.py``; the run's standalone script, ``core.export.code``).

A top-level statement is kept when it binds a needed name (a function, class, constant or
import); the names its body uses at run time are needed in turn, across ``from core.x import y``
and the imports inside functions. Annotations are skipped: every module here has
``from __future__ import annotations``, so they are never evaluated.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "core"
_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__"}


@dataclass
class _Module:
    name: str
    lines: list[str]
    tree: ast.Module
    lazy_annotations: bool
    binders: dict[str, list[int]] = field(default_factory=dict)  # name → indexes of top-level statements


@dataclass
class Cut:
    """The statements kept per module (indexes into its top-level body, in source order)."""

    kept: dict[str, set[int]] = field(default_factory=dict)
    import_names: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # an import's aliases kept


def _is_ours(module: str | None) -> bool:
    return bool(module) and (module == PACKAGE or module.startswith(PACKAGE + "."))


_CACHE: dict[str, _Module] = {}


def _module(name: str) -> _Module:
    if name not in _CACHE:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for module {name!r}")
        text = Path(spec.origin).read_text(encoding="utf-8")
        tree = ast.parse(text)
        lazy = any(isinstance(s, ast.ImportFrom) and s.module == "__future__"
                   and any(a.name == "annotations" for a in s.names) for s in tree.body)
        module = _Module(name, text.splitlines(), tree, lazy)
        for i, stmt in enumerate(tree.body):
            for bound in _bound_names(stmt):
                module.binders.setdefault(bound, []).append(i)
        _CACHE[name] = module
    return _CACHE[name]


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


def _used_names(node: ast.AST, lazy_annotations: bool) -> tuple[set[str], list[ast.ImportFrom]]:
    """Names ``node`` reads at run time, and the imports of our own modules inside it."""
    names: set[str] = set()
    imports: list[ast.ImportFrom] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
            names.add(current.id)
        if isinstance(current, ast.ImportFrom) and current is not node and _is_ours(current.module):
            imports.append(current)
        for child_name, child in ast.iter_fields(current):
            if lazy_annotations and child_name in ("annotation", "returns"):
                continue  # never evaluated under ``from __future__ import annotations``
            if isinstance(child, ast.AST):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(c for c in child if isinstance(c, ast.AST))
    return names, imports


def cut(needed: dict[str, Iterable[str]]) -> Cut:
    """Which statements of which modules define ``needed`` (module → names) and what they use."""
    result = Cut()
    todo = [(module, name) for module, names in needed.items() for name in names]
    done: set[tuple[str, str]] = set()
    while todo:
        module_name, name = todo.pop()
        if (module_name, name) in done:
            continue
        done.add((module_name, name))
        module = _module(module_name)
        binders = module.binders.get(name)
        if not binders:
            if name in _BUILTINS:
                continue
            raise ValueError(f"{module_name} defines no {name!r} at its top level")
        for index in binders:
            stmt = module.tree.body[index]
            result.kept.setdefault(module_name, set()).add(index)
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                result.import_names.setdefault((module_name, index), set()).add(name)
                if isinstance(stmt, ast.ImportFrom) and _is_ours(stmt.module):
                    original = next(a.name for a in stmt.names if (a.asname or a.name) == name)
                    todo.append((stmt.module, original))
                continue
            used, inner_imports = _used_names(stmt, module.lazy_annotations)
            # Names it uses that the module binds at its top level (the rest are locals or builtins).
            todo.extend((module_name, n) for n in used if n in module.binders)
            for imp in inner_imports:
                todo.extend((imp.module, a.name) for a in imp.names)
    for module_name in list(result.kept):  # a package's __init__ runs before its modules
        parts = module_name.split(".")
        for i in range(1, len(parts)):
            result.kept.setdefault(".".join(parts[:i]), set())
    return result


def _statement_text(module: _Module, index: int) -> str:
    """A kept definition's source as written, with its decorators and the comment lines just above
    it (what a constant means is written there: ``#: ...``)."""
    stmt = module.tree.body[index]
    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    while first > 1 and module.lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return "\n".join(module.lines[first - 1:stmt.end_lineno])


# ---------------------------------------------------------------------------- imports

#: One name an import binds: ``(module, name, asname)``; ``module`` is None for ``import name``.
_Import = tuple[str | None, str, str | None]
WIDTH = 100


def _kept_imports(module: _Module, index: int, cut_: Cut) -> list[_Import]:
    """The names a kept import statement binds that the cut needs."""
    stmt = module.tree.body[index]
    keep = cut_.import_names[(module.name, index)]
    source = stmt.module if isinstance(stmt, ast.ImportFrom) else None
    return [(source, a.name, a.asname) for a in stmt.names if (a.asname or a.name).split(".")[0] in keep]


def _bound_by(entry: _Import) -> str:
    module, name, asname = entry
    return asname or (name if module else name.split(".")[0])


def import_block(entries: Iterable[_Import]) -> str:
    """Import lines, the standard library's first, then the rest; ``import x`` before
    ``from x import y``, one ``from`` line a module (wrapped when long)."""
    groups: list[str] = []
    for stdlib in (True, False):
        chosen = {e for e in entries if e[0] != "__future__"
                  and ((e[0] or e[1]).split(".")[0] in sys.stdlib_module_names) == stdlib}
        lines = [f"import {name}" + (f" as {asname}" if asname else "")
                 for _, name, asname in sorted((e for e in chosen if e[0] is None), key=lambda e: (e[1], e[2] or ""))]
        froms: dict[str, set[str]] = {}
        for module, name, asname in chosen:
            if module is not None:
                froms.setdefault(module, set()).add(name + (f" as {asname}" if asname else ""))
        for module in sorted(froms):
            line = f"from {module} import " + ", ".join(sorted(froms[module]))
            if len(line) > WIDTH:
                line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in sorted(froms[module])) + ")"
            lines.append(line)
        if lines:
            groups.append("\n".join(lines))
    return "\n\n".join(groups)


def parse_imports(line: str) -> list[_Import]:
    """The names an import statement (``"from pathlib import Path, PurePosixPath"``) binds."""
    entries: list[_Import] = []
    for stmt in ast.parse(line).body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)) or getattr(stmt, "level", 0):
            raise ValueError(f"not an absolute import statement: {line!r}")
        source = stmt.module if isinstance(stmt, ast.ImportFrom) else None
        entries.extend((source, a.name, a.asname) for a in stmt.names)
    return entries


# ---------------------------------------------------------------------------- the two outputs


def package_files(needed: dict[str, Iterable[str]], header: str) -> dict[str, str]:
    """``{"core/features.py": source, …}``: each module ``needed`` names, cut down, plus the
    packages' ``__init__.py`` (``header`` becomes every file's docstring)."""
    result = cut(needed)
    files = {}
    for module_name in sorted(result.kept):
        module = _module(module_name)
        is_package = Path(importlib.util.find_spec(module_name).origin).name == "__init__.py"
        path = module_name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        imports: list[_Import] = []
        definitions = []
        for index in sorted(result.kept[module_name]):
            if isinstance(module.tree.body[index], (ast.Import, ast.ImportFrom)):
                imports.extend(_kept_imports(module, index, result))
            else:
                definitions.append(_statement_text(module, index))
        files[path] = _file(header, import_block(imports), definitions)
    return files


def _file(header: str, imports: str, definitions: list[str]) -> str:
    docstring = '"""' + header.replace('"""', "'''") + '"""'
    head = "\n\n".join([docstring, "from __future__ import annotations", *([imports] if imports else [])])
    return "\n\n\n".join([head, *definitions]).rstrip() + "\n"


class FlatSource:
    """Definitions of ``core`` gathered for one self-contained file: ``add`` what the file uses
    (and ``import_line`` its own imports) while writing it, then take ``import_block()`` and
    ``definitions()``. Refuses what cannot be flattened: a name two places define differently,
    an import of ours renamed or inside a function."""

    def __init__(self) -> None:
        self._needed: dict[str, set[str]] = {}
        self._imports: set[_Import] = set()

    def add(self, obj: Any) -> str:
        """Copy ``obj`` (a function, class or constant of a ``core`` module: the object, or
        ``(module, name)``) with what it uses; returns its name in the file."""
        module, name = obj if isinstance(obj, tuple) else (obj.__module__, obj.__name__)
        if name not in _module(module).binders:
            raise ValueError(f"{module} defines no {name!r} at its top level")
        self._needed.setdefault(module, set()).add(name)
        return name

    def import_line(self, line: str) -> None:
        """An import the file's own code needs (``"import numpy as np"``)."""
        self._imports.update(parse_imports(line))

    def import_block(self) -> str:
        return import_block(self._flatten()[0])

    def definitions(self) -> list[tuple[str, str]]:
        """``(module, source)`` of each copied definition: source order within a module, each
        module after those it imports from."""
        return self._flatten()[1]

    def _flatten(self) -> tuple[set[_Import], list[tuple[str, str]]]:
        result = cut(self._needed)
        imports = set(self._imports)
        definitions: list[tuple[str, str]] = []
        bound: dict[str, object] = {_bound_by(e): e for e in imports}
        for module_name in _dependency_order(result):
            module = _module(module_name)
            for index in sorted(result.kept[module_name]):
                stmt = module.tree.body[index]
                if isinstance(stmt, ast.ImportFrom) and _is_ours(stmt.module):
                    if any(a.asname and a.asname != a.name for a in stmt.names):
                        raise ValueError(f"{module_name} renames an import of ours; it cannot be flattened")
                    continue
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    found = [e for e in _kept_imports(module, index, result) if e[0] != "__future__"]
                    what: list[tuple[str, object]] = [(_bound_by(e), e) for e in found]
                    imports.update(found)
                else:
                    if _used_names(stmt, module.lazy_annotations)[1]:
                        raise ValueError(f"{module_name}: a kept definition imports our own modules inside it")
                    what = [(name, module_name) for name in _bound_names(stmt)]
                    definitions.append((module_name, _statement_text(module, index)))
                for name, meaning in what:
                    if bound.setdefault(name, meaning) != meaning:
                        raise ValueError(f"{name!r} would mean both {bound[name]} and {meaning} in one file")
        return imports, definitions


def _dependency_order(result: Cut) -> list[str]:
    """Modules with kept statements, each after the modules it imports names from."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return  # done, or a cycle (only imports inside functions could make one, and those are refused)
        visiting.add(name)
        module = _module(name)
        for index in sorted(result.kept.get(name, ())):
            stmt = module.tree.body[index]
            if isinstance(stmt, ast.ImportFrom) and _is_ours(stmt.module) and stmt.module in result.kept:
                visit(stmt.module)
        order.append(name)

    for name in sorted(result.kept):
        if result.kept[name]:
            visit(name)
    return [name for name in order if result.kept[name]]
