"""Module boundaries, checked by reading the package: who reads the configuration, and where
stepd's exceptions are defined."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import stepd
from stepd.errors import StepdError

PACKAGE = Path(stepd.__file__).parent
CONFIG = "stepd.config"
# Only these read the configuration; everything else receives plain values (STYLE.md).
CONFIG_READERS = frozenset({"cli.py", "daemon.py", "config.py"})
NOT_IMPORTED = frozenset({"stepd.__main__"})  # runs the command line


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module an import statement in `tree` names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[str]:
    found = pkgutil.walk_packages([str(PACKAGE)], prefix="stepd.")
    return sorted(info.name for info in found if info.name not in NOT_IMPORTED)


def test_only_the_cli_and_the_daemon_import_the_configuration() -> None:
    """No module but cli.py and daemon.py (and config.py itself) imports stepd.config."""
    readers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if CONFIG in _imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert sorted(readers - CONFIG_READERS) == []


def test_every_exception_stepd_defines_is_in_errors_and_derives_from_stepd_error() -> None:
    """stepd.errors holds the one exception tree, rooted at StepdError."""
    misplaced = []
    for name in _modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = cls.__module__ == name
            if not defined_here or not issubclass(cls, BaseException):
                continue
            where = f"{name}.{cls_name}"
            in_tree = name == "stepd.errors" and issubclass(cls, StepdError)
            if not in_tree:
                misplaced.append(where)
    assert misplaced == []
