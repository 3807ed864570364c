"""Module boundaries, checked by reading the package: where stepd's exceptions are defined."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import stepd
from stepd.errors import StepdError

PACKAGE = Path(stepd.__file__).parent
# store/ is being changed elsewhere; its private signal moves to errors.py with that change.
EXCEPTIONS_ELSEWHERE_FOR_NOW = frozenset({"stepd.store.sqlite._WriteFailed"})
NOT_IMPORTED = frozenset({"stepd.__main__"})  # runs the command line


def _modules() -> list[str]:
    found = pkgutil.walk_packages([str(PACKAGE)], prefix="stepd.")
    return sorted(info.name for info in found if info.name not in NOT_IMPORTED)


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
            if not in_tree and where not in EXCEPTIONS_ELSEWHERE_FOR_NOW:
                misplaced.append(where)
    assert misplaced == []
