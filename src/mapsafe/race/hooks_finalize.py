"""weakref.finalize, patched: its callback runs marked as a finalizer's, with its registration site (finalizers)."""

from __future__ import annotations

import sys

from .hooks_base import active, patch

__all__ = ["patch_finalize"]


def patch_finalize() -> None:
    import weakref

    from . import finalizers
    from .shadow import Finalizer

    # Its registration site is remembered, and its callback runs marked as
    # a finalizer's (finalizers.py). The callback itself is not wrapped, so
    # peek() and detach() return what the program gave.
    def init(orig):
        def __init__(self, obj, func, /, *args, **kwargs):
            orig(self, obj, func, *args, **kwargs)
            finalizers.registered(self, sys._getframe(1))

        return __init__

    def call(orig):
        def __call__(self, _=None):
            site = finalizers.forget_registration(self)
            if active() is None:
                return orig(self, _)
            with finalizers.finalizing(info=Finalizer("weakref.finalize callback", "registered at", site)):
                return orig(self, _)

        return __call__

    def detach(orig):
        def detach(self):
            finalizers.forget_registration(self)
            return orig(self)

        return detach

    patch(weakref.finalize, "__init__", init)
    patch(weakref.finalize, "__call__", call)
    patch(weakref.finalize, "detach", detach)
