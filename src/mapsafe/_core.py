"""Which core runs the maps' hot paths: the C one (_speedups) if built, else pure Python.

``MAPSAFE_CORE`` chooses: ``auto`` (the default: C if it imports, else
Python with a RuntimeWarning), ``c`` (C or an error) or ``python``.
It is read once, at import.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

from .errors import ConfigError

CHOICES = ("auto", "c", "python")


def c_module(choice: str, name: str, what: str) -> ModuleType | None:
    """The C extension ``name`` (relative to mapsafe) if ``choice`` wants C and
    it is built; None for the pure-Python core. ``what`` names what it speeds
    up, for the warning."""
    if choice not in CHOICES:
        raise ConfigError(f"MAPSAFE_CORE must be one of {', '.join(CHOICES)}; got {choice!r}")
    if choice == "python":
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as exc:
        if choice == "c":
            raise ConfigError(f"MAPSAFE_CORE=c, but the C core is not built ({exc})") from None
        warnings.warn(
            f"mapsafe: the C core is not built ({exc}); using the pure-Python core, "
            f"whose {what} are slower. Set MAPSAFE_CORE=python to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _load(choice: str) -> tuple[str, ModuleType]:
    speedups = c_module(choice, "_speedups", "maps")
    if speedups is not None:
        return "c", speedups
    from . import _pycore

    return "python", _pycore


CHOICE = os.environ.get("MAPSAFE_CORE", "auto").strip().lower() or "auto"
NAME, _impl = _load(CHOICE)
LABEL = {"c": "C core", "python": "pure-Python core"}[NAME]  # for --version and bench headers
if TYPE_CHECKING:
    # The checker sees the pure-Python core: the C core (_speedups) has the
    # same classes and functions, with the same signatures.
    from ._pycore import (
        CacheCore as CacheCore,
        CachedCore as CachedCore,
        LockedCore as LockedCore,
        MapLock as MapLock,
        ProfiledRLock as ProfiledRLock,
        RWCore as RWCore,
        RWHold as RWHold,
        ShardedCore as ShardedCore,
        SyncCore as SyncCore,
        SyncReader as SyncReader,
        call_if_free as call_if_free,
        hold_all as hold_all,
        thread_token as thread_token,
    )
else:
    RWCore = _impl.RWCore
    SyncCore = _impl.SyncCore
    LockedCore = _impl.LockedCore
    ShardedCore = _impl.ShardedCore
    ProfiledRLock = _impl.ProfiledRLock
    RWHold = _impl.RWHold
    SyncReader = _impl.SyncReader
    CacheCore = _impl.CacheCore
    CachedCore = _impl.CachedCore
    MapLock = _impl.MapLock
    hold_all = _impl.hold_all
    call_if_free = _impl.call_if_free
    thread_token = _impl.thread_token
