"""Happens-before sources: installs and uninstalls the class-level patches of the hooks_* modules.

threading and queue (hooks_threading), concurrent.futures, asyncio and
ThreadPool (hooks_futures), multiprocessing.connection (hooks_connection),
mapsafe's maps and RWLock (hooks_maps), mapsafe's Cache and @cached
(hooks_cache), and weakref.finalize (hooks_finalize). What they share, the
patch record and the common wrapper shapes, is in hooks_base.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from . import hooks_cache, hooks_connection, hooks_finalize, hooks_futures, hooks_maps, hooks_redis, hooks_threading
from .hooks_base import INHERITED, PATCHES

__all__ = ["install", "uninstall"]


class _PatchingLoader:
    """Wraps a module's loader for one import: run the module, then patch it."""

    def __init__(self, loader: Any, patch: Callable[[Any], None]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module keeps its own loader, as if we had never been there.
        spec = module.__spec__
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        _try_patch(self.patch, module)


class _AfterImport:
    """A meta path finder that patches some stdlib modules once they are first imported.

    asyncio and multiprocessing cost tens of milliseconds to import, and
    change the program's modules (multiprocessing adds __mp_main__), so
    they are patched only if the program imports them.
    """

    def __init__(self, patches: dict) -> None:
        self.patches = patches  # module name -> patch(module); set once

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = self.patches.get(name)
        if patch is None or self not in sys.meta_path:
            return None
        # What the import would have found without us: the finders after us.
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def _try_patch(patch: Callable[[Any], None], module: Any) -> None:
    try:
        patch(module)
    except Exception:  # a stdlib we do not know: left unpatched, as before install
        pass


# The installed _AfterImport finder, if any (at most one). No lock: changed
# only by install() and uninstall(), which the thread setting the detector
# up (runner, pytest plugin) calls, never two at once.
_AFTER_IMPORT: list = []


def _patch_on_import(patches: dict) -> None:
    """Patch each module now if it is imported, else when it is."""
    later = {}
    for name, patch in patches.items():
        module = sys.modules.get(name)
        if module is not None:
            _try_patch(patch, module)
        else:
            later[name] = patch
    if later:
        finder = _AfterImport(later)
        sys.meta_path.insert(0, finder)
        _AFTER_IMPORT.append(finder)


# Whether install() patched and uninstall() has not undone it since; changed
# only there (same thread and order as _AFTER_IMPORT).
_installed = False


def install() -> None:
    """Patch the happens-before sources. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    hooks_threading.patch_threading()
    hooks_threading.patch_queue()
    hooks_futures.patch_futures()
    hooks_maps.patch_maps()
    hooks_maps.patch_rwlock()
    hooks_cache.patch_cache()
    hooks_finalize.patch_finalize()
    _patch_on_import({"asyncio.base_events": hooks_futures.patch_asyncio,
                      "multiprocessing.pool": hooks_futures.patch_pool,
                      "multiprocessing.connection": hooks_connection.patch_connection,
                      "mapsafe.redis._map": hooks_redis.patch_redis_map})


def uninstall() -> None:
    global _installed
    while _AFTER_IMPORT:
        finder = _AFTER_IMPORT.pop()
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
    while PATCHES:
        owner, name, original = PATCHES.pop()
        if original is INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _installed = False
