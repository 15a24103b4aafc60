"""Which core the detector's per-operation code runs on: C (_racecore) if built, else Python.

``MAPSAFE_CORE`` chooses, as for the maps (see ``mapsafe._core``). Chosen
once, at import. ``C`` is the extension module, or None for pure Python.
"""

from __future__ import annotations

from .. import _core

__all__ = ["C", "NAME"]

C = _core.c_module(_core.CHOICE, "race._racecore", "race detector runs")
NAME = "c" if C is not None else "python"
