"""Which of the package's files a workflow stage runs: the static import graph of ``prunebias``.

Snakemake's ``code`` rerun trigger sees only a rule's own text, so each analysis rule lists
the package files its stage imports as inputs; an edit to one of them then reruns exactly
the rules whose stage runs it. Those lists are derived here, never written by hand.

A stage is a function, ``prunebias.cli:cmd_metrics``. Its files are its module and package
``__init__``s, the modules imported at the top of its module or inside the function, and
everything those import, anywhere in them (transitively). One refinement keeps hub modules
from tying all stages together: a module that a function only calls into (``jobs.f(...)``,
``jobs.g(...)``) contributes those functions' imports, not every import of the module; so
``prunebias.jobs:train``'s torch-side imports are not code of the metrics stage.

Parsed with :mod:`ast`; nothing is imported or executed.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = "prunebias"


@cache
def package_root() -> Path:
    """The folder of the ``prunebias`` that runs here (a checkout's ``src/`` or site-packages)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{PACKAGE} is not importable: pip install -e . in the project folder")
    return Path(next(iter(spec.submodule_search_locations))).parent


def module_file(module: str, root: Path) -> Path | None:
    """The file of a module of the package under ``root``, or None if there is none."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(node: ast.Import | ast.ImportFrom, root: Path) -> Iterator[tuple[str, str]]:
    """(module, name it is bound to) for each package module an import statement loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == PACKAGE:
                yield alias.name, alias.asname or alias.name.split(".")[0]
        return
    if node.level or not node.module or node.module.split(".")[0] != PACKAGE:
        return
    for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        # `from prunebias import jobs` loads a module; `from prunebias.io import save` a name.
        if module_file(submodule, root) is not None:
            yield submodule, alias.asname or alias.name
        else:
            yield node.module, ""


def _imports(nodes: list[ast.stmt], root: Path, nested: bool) -> dict[str, str]:
    """Package modules imported by statements (``nested``: also inside functions and classes)."""
    found: dict[str, str] = {}
    for statement in nodes:
        walk = ast.walk(statement) if nested else iter([statement])
        for node in walk:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for module, bound in _imported(node, root):
                    found.setdefault(module, bound)
            elif isinstance(node, (ast.If, ast.Try)) and not nested:
                # `if TYPE_CHECKING:` / `try: import ...` at the top still run at import
                found |= _imports(list(ast.iter_child_nodes(node)), root, nested=False)
    return found


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    raise LookupError(name)


def _calls_only(body: ast.AST, bound: str) -> set[str] | None:
    """The attributes called on the name ``bound`` in ``body``, or None if it is used otherwise."""
    called = [
        node.func.attr
        for node in ast.walk(body)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == bound
    ]
    uses = sum(isinstance(node, ast.Name) and node.id == bound for node in ast.walk(body))
    return set(called) if called and uses == len(called) else None


def _local_calls(body: ast.AST, tree: ast.Module) -> set[str]:
    """The functions of the same module that ``body`` calls by name."""
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {
        node.func.id
        for node in ast.walk(body)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined
    }


def _packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def stage_files(*entries: str, root: Path | None = None) -> list[Path]:
    """Every package file the functions ``entries`` (``"pkg.module:function"``, or a whole
    ``"pkg.module"``) may run, sorted."""
    root = package_root() if root is None else root
    files: set[Path] = set()
    done: set[str] = set()

    def add_file(module: str) -> ast.Module | None:
        for package in _packages(module):
            if (init := module_file(package, root)) is not None:
                files.add(init)
        path = module_file(module, root)
        if path is None:
            return None
        files.add(path)
        return _tree(path)

    def add_module(module: str) -> None:
        if module in done:
            return
        done.add(module)
        tree = add_file(module)
        if tree is not None:
            for imported in _imports(tree.body, root, nested=True):
                add_module(imported)

    def add_function(module: str, name: str) -> None:
        if f"{module}:{name}" in done:
            return
        done.add(f"{module}:{name}")
        tree = add_file(module)
        if tree is None:
            raise LookupError(f"no module {module} under {root}")
        try:
            function = _function(tree, name)
        except LookupError:
            raise LookupError(f"{module} defines no function {name} (under {root})") from None
        for local in _local_calls(function, tree):
            add_function(module, local)
        for imported in _imports(tree.body, root, nested=False):
            add_module(imported)
        for imported, bound in _imports(function.body, root, nested=True).items():
            called = _calls_only(function, bound) if bound else None
            if called is None:
                add_module(imported)
                continue
            for attr in called:
                if _defines_function(imported, attr, root):
                    add_function(imported, attr)
                else:
                    add_module(imported)

    for entry in entries:
        module, _, function = entry.partition(":")
        if function:
            add_function(module, function)
        else:
            add_module(module)
    return sorted(files)


def _defines_function(module: str, name: str, root: Path) -> bool:
    path = module_file(module, root)
    if path is None:
        return False
    try:
        _function(_tree(path), name)
    except LookupError:
        return False
    return True
