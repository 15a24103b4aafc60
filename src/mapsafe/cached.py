"""@cached: functools.lru_cache's decorator shape over mapsafe.Cache, call-once per key, per instance on methods."""

from __future__ import annotations

import functools
from typing import Any, Callable

from .cache import _MAXSIZE_NOT_GIVEN, Cache, CacheInfo, CacheStats
from .sentinels import MISSING

__all__ = ["cached", "CachedFunction"]

_KWD_MARK = object()  # separates positional from keyword arguments in a default key
_FAST_TYPES = frozenset({int, str})


def make_key(args: tuple, kwargs: dict, typed: bool) -> Any:
    """The default cache key of a call, as ``functools.lru_cache`` builds it.

    So the same calls share a key as there: keyword order counts
    (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are two keys), and ``typed``
    separates ``f(1, 2)`` from ``f(1.0, 2)``.
    """
    key = args
    if kwargs:
        key += (_KWD_MARK,)
        for item in kwargs.items():
            key += item
    if typed:
        key += tuple(type(v) for v in args)
        if kwargs:
            key += tuple(type(v) for v in kwargs.values())
    elif len(key) == 1 and type(key[0]) in _FAST_TYPES:
        return key[0]
    return _HashedKey(key)


class _HashedKey(list):
    """A call's key, hashed once (a lookup may hash it several times); a list, as lru_cache's is."""

    __slots__ = ("hashvalue",)

    def __init__(self, items: tuple) -> None:
        super().__init__(items)
        self.hashvalue = hash(items)  # TypeError for an unhashable argument, as lru_cache

    def __hash__(self) -> int:  # type: ignore[override]
        return self.hashvalue


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

    On a method, each instance gets its own cache, kept in the instance's
    ``__dict__`` (so the bound applies per instance, and the cache goes
    with the instance: nothing here keeps an instance alive, unlike
    ``lru_cache`` on a method). Instances without a ``__dict__`` (only
    ``__slots__``) raise TypeError; decorate a function of your own key
    instead.

    The wrapper has ``cache_info()``, ``cache_clear()``,
    ``cache_parameters()``, ``stats()``, ``invalidate(*args, **kwargs)``
    and ``.cache``. Do not use it for functions whose result depends on
    anything other than the key, or to cache a generator.
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


class CachedFunction:
    """What ``@cached`` returns: the function, its cache, and lru_cache's helpers."""

    def __init__(self, fn: Callable[..., Any], maxsize: Any, key: Any, typed: bool, options: dict) -> None:
        if not callable(fn):
            raise TypeError(f"@cached needs a function, got {type(fn).__name__}")
        self.__wrapped__ = fn
        functools.update_wrapper(self, fn)
        self._maxsize = maxsize
        self._key = key
        self._typed = typed
        self._options = options
        self.cache = Cache(maxsize, **options)  # the function's cache (a method's instances have their own)
        # Where each instance keeps its cache; __set_name__ gives the attribute's name.
        self._attr = f"__mapsafe_cached_{getattr(fn, '__name__', id(self))}"

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = f"__mapsafe_cached_{name}"

    def _key_of(self, args: tuple, kwargs: dict) -> Any:
        if self._key is not None:
            return self._key(*args, **kwargs)
        return make_key(args, kwargs, self._typed)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # _key_of and _call, inlined: this is every call's path.
        if self._key is not None:
            key = self._key(*args, **kwargs)
        elif not kwargs and len(args) == 1 and not self._typed and type(args[0]) in _FAST_TYPES:
            key = args[0]
        else:
            key = make_key(args, kwargs, self._typed)
        cache = self.cache
        value = cache._hit(key)
        if value is not MISSING:
            return value
        fn = self.__wrapped__
        return cache._load(key, lambda _key: fn(*args, **kwargs), None)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return _BoundCached(self, instance, self._cache_of(instance))

    def _cache_of(self, instance: Any) -> Cache:
        try:
            slots = vars(instance)
        except TypeError:
            raise TypeError(
                f"@cached on {type(instance).__name__}.{self._attr[len('__mapsafe_cached_'):]} needs instances with a __dict__ "
                "to keep each instance's cache in; this class has none (__slots__?)"
            ) from None
        cache = slots.get(self._attr)
        if cache is None:
            # One dict op: of two threads racing here, both use the cache that won.
            cache = slots.setdefault(self._attr, Cache(self._maxsize, **self._options))
        return cache

    # lru_cache's helpers, on the function's own cache.
    def cache_info(self) -> CacheInfo:
        return self.cache.cache_info()

    def cache_clear(self) -> None:
        self.cache.cache_clear()

    def cache_parameters(self) -> dict[str, Any]:
        return {"maxsize": self.cache.maxsize, "typed": self._typed, **self._options}

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Forget the result for these arguments; True if one was cached."""
        return self.cache.invalidate(self._key_of(args, kwargs))

    def __repr__(self) -> str:
        return f"<mapsafe.cached {self.__qualname__} {self.cache!r}>"


def _call(cache: Cache, fn: Callable[..., Any], key: Any, args: tuple, kwargs: dict) -> Any:
    value = cache._hit(key)
    if value is not MISSING:
        return value
    return cache._load(key, lambda _key: fn(*args, **kwargs), None)


class _BoundCached:
    """A cached method bound to one instance, with that instance's cache."""

    __slots__ = ("_function", "_instance", "cache")

    def __init__(self, function: CachedFunction, instance: Any, cache: Cache) -> None:
        self._function = function
        self._instance = instance
        self.cache = cache

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._function
        instance = self._instance
        return _call(
            self.cache, fn.__wrapped__, fn._key_of(args, kwargs), (instance, *args), kwargs
        )

    def cache_info(self) -> CacheInfo:
        return self.cache.cache_info()

    def cache_clear(self) -> None:
        self.cache.cache_clear()

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        return self.cache.invalidate(self._function._key_of(args, kwargs))

    @property
    def __wrapped__(self) -> Any:
        return self._function.__wrapped__.__get__(self._instance)

    def __repr__(self) -> str:
        return f"<bound mapsafe.cached {self._function.__qualname__} of {self._instance!r}>"
