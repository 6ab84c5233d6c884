"""Lazy public APIs: a component's package names its API without importing its heavy modules.

``from pipelines.training import coerce_features`` should not cost the import of MLflow and
scikit-learn for a caller that only wanted an error class, and importing any submodule runs the
package's ``__init__`` first. So each component's ``__init__`` declares its exports as
``name -> submodule`` and installs the ``__getattr__`` made here (PEP 562); the real imports
also sit under ``TYPE_CHECKING`` there, so mypy and go-to-definition see them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_api(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``exports[name]`` on first use.

    An export whose name equals its module's name is the module itself (``metrics``). Every
    export must also be listed in the package's ``__all__`` (a test checks both agree).
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 -- installed as the package's __getattr__
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(f"{package}.{module}")
        return loaded if name == module else getattr(loaded, name)

    def __dir__() -> list[str]:  # noqa: N807 -- installed as the package's __dir__
        return sorted(exports)

    return __getattr__, __dir__
