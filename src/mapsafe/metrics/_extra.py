"""The extra's packages, imported when first needed, so that ``import mapsafe.metrics`` needs neither."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(what: str, module: str, package: str) -> ModuleType:
    """``import module`` for ``what``, or an ImportError of one line naming the ``mapsafe[metrics]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {package}, which did not import ({exc}): "
                          "pip install 'mapsafe[metrics]'") from None
