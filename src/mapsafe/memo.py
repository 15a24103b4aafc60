"""memo: @cached, functools.lru_cache's shape over mapsafe.Cache: call-once per key, per instance on methods."""

from __future__ import annotations

import functools
import inspect
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, overload

from .cache import _MAXSIZE_NOT_GIVEN, Cache, CacheInfo, CacheStats
from ._core import CachedCore, MapLock
from .sentinels import MISSING

__all__ = ["cached", "CachedFunction"]

_KWD_MARK = object()  # separates positional from keyword arguments in a default key
_FAST_TYPES = frozenset({int, str})


def make_key(args: tuple[Any, ...], kwargs: dict[str, Any], typed: bool) -> Any:
    """The default cache key of a call, as ``functools.lru_cache`` builds it.

    So the same calls share a key as there: keyword order counts
    (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are two keys), and ``typed``
    separates ``f(1, 2)`` from ``f(1.0, 2)``.
    """
    if not kwargs and not typed:
        # Positional calls (the C core builds these keys too): the lone int
        # or str itself, else the argument tuple.
        return args[0] if len(args) == 1 and type(args[0]) in _FAST_TYPES else args
    key = args
    if kwargs:
        key += (_KWD_MARK,)
        for item in kwargs.items():
            key += item
    if typed:
        key += tuple(type(v) for v in args)
        if kwargs:
            key += tuple(type(v) for v in kwargs.values())
    return _HashedKey(key)


class _HashedKey(list[Any]):
    """A call's key, hashed once (a lookup may hash it several times); a list, as lru_cache's is."""

    __slots__ = ("hashvalue",)

    def __init__(self, items: tuple[Any, ...]) -> None:
        super().__init__(items)
        self.hashvalue = hash(items)  # TypeError for an unhashable argument, as lru_cache

    def __hash__(self) -> int:  # type: ignore[override]
        return self.hashvalue


@overload
def cached(maxsize: Callable[..., Any], /) -> CachedFunction: ...
@overload
def cached(
    maxsize: int | None = ...,
    *,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    **options: Any,
) -> Callable[[Callable[..., Any]], CachedFunction]: ...


def cached(
    maxsize: Any = _MAXSIZE_NOT_GIVEN,
    *,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    **options: Any,
) -> Any:
    """Cache a function's results in a ``mapsafe.Cache``, like ``functools.lru_cache`` but loading once per key.

    ``@cached``, ``@cached()`` and ``@cached(maxsize=..., ttl=..., ...)``
    take every ``Cache`` option, plus:

    * ``key=``: builds the cache key from the call's arguments (the same
      arguments, minus ``self`` on a method). Normalise there:
      ``key=lambda url: url.lower().rstrip("/")``. The default key is
      lru_cache's; an unhashable argument raises TypeError, as there.
    * ``typed=``: as in lru_cache, ``f(1)`` and ``f(1.0)`` are cached
      separately. Ignored when ``key=`` is given.

    On a method, each instance gets its own cache (so the bound applies
    per instance), found through a table of weak references: nothing here
    keeps an instance alive, unlike ``lru_cache`` on a method, and nothing
    is added to the instance (it pickles as before). The instance must be
    weakly referenceable (a class with ``__slots__`` needs ``"__weakref__"``
    among them), else TypeError. A bound method kept after its instance
    died still answers hits; a miss raises ReferenceError.

    The wrapper has ``cache_info()``, ``cache_clear()``,
    ``cache_parameters()``, ``stats()``, ``invalidate(*args, **kwargs)``
    and ``.cache``. Do not use it for functions whose result depends on
    anything other than the key. Coroutine and generator functions are
    refused (TypeError): their one-shot results cannot be shared.
    """
    if callable(maxsize) and not isinstance(maxsize, int):
        return CachedFunction(maxsize, _MAXSIZE_NOT_GIVEN, key, typed, options)  # bare @cached
    if key is not None and not callable(key):
        raise TypeError(f"key must be callable, got {type(key).__name__} {key!r}")
    if not isinstance(typed, bool):
        raise TypeError(f"typed must be True or False, got {type(typed).__name__} {typed!r}")
    Cache(maxsize, **options)  # check the options now, at decoration, not at the first call

    def decorator(fn: Callable[..., Any]) -> "CachedFunction":
        return CachedFunction(fn, maxsize, key, typed, options)

    return decorator


class _CachedCalls(CachedCore):
    """The calls of a cached function or of one instance's cached method, and lru_cache's helpers.

    On the C core, calls and hits are CachedCore's C; these Python methods
    are what it calls for the rest (and, on the pure core, all of it).
    """

    cache: Cache[Any, Any]
    _key: Any
    _typed: bool

    def _key_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._key is not None:
            return self._key(*args, **kwargs)
        return make_key(args, kwargs, self._typed)

    def _call_slow(self, /, *args: Any, **kwargs: Any) -> Any:
        """A call whose key is made here (lru_cache's tuple keys)."""
        return self._miss(self._key_of(args, kwargs), *args, **kwargs)

    def _miss(self, key: Any, /, *args: Any, **kwargs: Any) -> Any:
        """The call for ``key`` when the C hit did not apply: the cache decides, loading if need be."""
        cache = self.cache
        value = cache._hit_slow(key)
        if value is not MISSING:
            return value
        call = self._target()
        return cache._load(key, lambda _key: call(*args, **kwargs), None)

    if "__call__" not in CachedCore.__dict__:  # the pure core: calls start here

        def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
            return self._miss(self._key_of(args, kwargs), *args, **kwargs)

    def _target(self) -> Callable[..., Any]:
        raise NotImplementedError

    def cache_info(self) -> CacheInfo:
        return self.cache.cache_info()

    def cache_clear(self) -> None:
        self.cache.cache_clear()

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def invalidate(self, /, *args: Any, **kwargs: Any) -> bool:
        """Forget the result for these arguments; True if one was cached."""
        return self.cache.invalidate(self._key_of(args, kwargs))


class CachedFunction(_CachedCalls):
    """What ``@cached`` returns: the function, its cache, and lru_cache's helpers."""

    if TYPE_CHECKING:
        __qualname__: str  # the function's, set by functools.update_wrapper

    def __init__(
        self, fn: Callable[..., Any], maxsize: Any, key: Callable[..., Any] | None, typed: bool, options: dict[str, Any]
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@cached needs a function, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            # Their result is a one-shot object: a cache would hand the same
            # coroutine or generator to every caller, and only the first
            # could run it (lru_cache does exactly that).
            raise TypeError(
                f"@cached cannot cache {getattr(fn, '__qualname__', fn)!r}: it returns a coroutine or "
                "generator, which only its first caller could consume; cache the awaited or collected "
                "result in a plain function instead"
            )
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self._maxsize = maxsize
        self._key = key
        self._typed = typed
        self._options = options
        self._name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
        self.cache = Cache(maxsize, **options)  # the function's cache (a method's instances have their own)
        # id(instance) -> (weak reference to it, its _BoundCached), for methods.
        # Read lock-free (one dict op, then the reference is checked); added
        # under _bind_lock, so an instance never gets two caches; an entry
        # is removed (one dict op) by its reference's callback when the
        # instance dies, before its id can be reused.
        self._instances: dict[int, tuple[weakref.ref[Any], _BoundCached]] = {}
        self._bind_lock = MapLock()
        self._core_init(self.cache, key, self._instances, typed)

    def _target(self) -> Callable[..., Any]:
        return self.__wrapped__

    if "__get__" not in CachedCore.__dict__:  # the pure core; on the C core, CachedCore's __get__ is this

        def __get__(self, instance: Any, owner: type | None = None) -> Any:
            if instance is None:
                return self
            pair = self._instances.get(id(instance))
            if pair is not None and pair[0]() is instance:
                return pair[1]
            return self._bind(instance)

    def _bind(self, instance: Any) -> "_BoundCached":
        """``instance``'s bound function and cache, made on its first use."""
        instances = self._instances
        key = id(instance)
        try:
            ref = weakref.ref(instance, partial(_forget, instances, key))
        except TypeError:
            raise TypeError(
                f"@cached on the method {self._name} needs weakly referenceable instances, to keep "
                f"one cache per instance without keeping it alive; give {type(instance).__name__} "
                "'__weakref__' in its __slots__"
            ) from None
        bound = _BoundCached(self, ref, Cache(self._maxsize, **self._options))
        with self._bind_lock:
            # Re-check: another thread may have bound it since our lock-free read.
            pair = instances.get(key)
            if pair is None or pair[0]() is not instance:
                instances[key] = pair = (ref, bound)
        return pair[1]

    def __reduce__(self) -> str:
        # By reference, as functools.lru_cache's wrapper pickles: the module's
        # own decorated function (multiprocessing sends functions this way).
        return self.__qualname__

    def cache_parameters(self) -> dict[str, Any]:
        return {"maxsize": self.cache.maxsize, "typed": self._typed, **self._options}

    def __repr__(self) -> str:
        return f"<mapsafe.cached {self._name} {self.cache!r}>"


def _forget(instances: dict[int, Any], key: int, _ref: object) -> None:
    instances.pop(key, None)


class _BoundCached(_CachedCalls):
    """A cached method bound to one instance, with that instance's cache; holds the instance weakly."""

    def __init__(self, function: CachedFunction, ref: weakref.ref[Any], cache: Cache[Any, Any]) -> None:
        self._function = function
        self._ref = ref
        self._key = function._key
        self._typed = function._typed
        self.cache = cache
        self._core_init(cache, function._key, None, function._typed)

    def _target(self) -> Callable[..., Any]:
        instance = self._ref()
        if instance is None:
            raise ReferenceError(f"the instance of the cached method {self._function._name} no longer exists")
        return partial(self._function.__wrapped__, instance)

    @property
    def __wrapped__(self) -> Any:
        return self._target()

    def __repr__(self) -> str:
        return f"<bound mapsafe.cached {self._function._name} of {self._ref()!r}>"
