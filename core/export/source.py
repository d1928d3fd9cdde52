"""The smallest part of Trainboard's own source that defines some of its names, cut from the real
modules (never a hand-kept copy), for what a model bundle ships:

* ``package_files``: the modules a pickle names (``core.features.ColumnCaster``, …), each cut down
  to those names and what they use, under the same import paths, so ``joblib.load`` finds them
  without Trainboard;
* ``flat_source``: one self-contained file of some definitions (a network's builder, the image
  resizing), for a bundle's ``predict.py``.

A top-level statement is kept when it binds a needed name (a function, class, constant or
import); the names its body uses at run time are needed in turn, across ``from core.x import y``
and the imports inside functions. Annotations are skipped: every module here has
``from __future__ import annotations``, so they are never evaluated.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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


def _statement_text(module: _Module, index: int, cut_: Cut) -> str:
    stmt = module.tree.body[index]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        keep = cut_.import_names[(module.name, index)]
        copy = type(stmt)(**{**{f: getattr(stmt, f) for f in stmt._fields},
                             "names": [a for a in stmt.names if (a.asname or a.name).split(".")[0] in keep]})
        return ast.unparse(copy)
    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    while first > 1 and module.lines[first - 2].lstrip().startswith("#"):
        first -= 1  # the comment that explains it comes along
    return "\n".join(module.lines[first - 1:stmt.end_lineno])


def package_files(needed: dict[str, Iterable[str]], header: str) -> dict[str, str]:
    """``{"core/features.py": source, …}``: each module ``needed`` names, cut down, plus the
    packages' ``__init__.py`` (``header`` becomes every file's docstring)."""
    result = cut(needed)
    files = {}
    for module_name in sorted(result.kept):
        module = _module(module_name)
        is_package = Path(importlib.util.find_spec(module_name).origin).name == "__init__.py"
        path = module_name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        imports, definitions = [], []
        for index in sorted(result.kept[module_name]):
            stmt = module.tree.body[index]
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                continue
            is_import = isinstance(stmt, (ast.Import, ast.ImportFrom))
            (imports if is_import else definitions).append(_statement_text(module, index, result))
        files[path] = _file(header, imports, definitions)
    return files


def flat_source(needed: dict[str, Iterable[str]]) -> str:
    """The definitions ``needed`` names and everything they use, as one module's body (our own
    imports replaced by the definitions themselves). Refuses two different definitions of a name."""
    result = cut(needed)
    imports: list[str] = []
    definitions: list[str] = []
    owner: dict[str, str] = {}
    for module_name in _dependency_order(result):
        module = _module(module_name)
        for index in sorted(result.kept[module_name]):
            stmt = module.tree.body[index]
            if isinstance(stmt, ast.ImportFrom) and (_is_ours(stmt.module) or stmt.module == "__future__"):
                if any(a.asname and a.asname != a.name for a in stmt.names):
                    raise ValueError(f"{module_name} renames an import of ours; it cannot be flattened")
                continue
            if _used_names(stmt, module.lazy_annotations)[1]:
                raise ValueError(f"{module_name}: a kept definition imports our own modules inside it")
            text = _statement_text(module, index, result)
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                if text not in imports:
                    imports.append(text)
                continue
            for bound in _bound_names(stmt):
                if owner.setdefault(bound, module_name) != module_name:
                    raise ValueError(f"{bound!r} is defined in both {owner[bound]} and {module_name}")
            definitions.append(text)
    return "\n".join(imports) + "\n\n\n" + "\n\n\n".join(definitions) + "\n"


def _dependency_order(result: Cut) -> list[str]:
    """Modules with kept statements, each after the modules it imports names from."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        module = _module(name)
        for index in sorted(result.kept.get(name, ())):
            stmt = module.tree.body[index]
            if isinstance(stmt, ast.ImportFrom) and _is_ours(stmt.module) and stmt.module in result.kept:
                visit(stmt.module)
        order.append(name)

    for name in sorted(result.kept):
        if result.kept[name]:
            visit(name)
    return order


def _file(header: str, imports: list[str], definitions: list[str]) -> str:
    docstring = '"""' + header.replace('"""', "'''") + '"""'
    head = "\n\n".join([docstring, "from __future__ import annotations", *(["\n".join(imports)] if imports else [])])
    return "\n\n\n".join([head, *definitions]).rstrip() + "\n"
