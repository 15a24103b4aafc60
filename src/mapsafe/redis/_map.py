"""RedisMap: SyncMap's API on a Redis server, for maps shared by processes and machines."""

from __future__ import annotations

import math
import operator
import random
import time
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

import redis

from ..errors import ContentionError, MapMismatchError, PayloadError
from ..mapbase import K, V
from ..sentinels import DELETE, MISSING
from . import _scripts
from ._client import Translate, client_for
from ._codecs import JSONSerializer, decode_key, encode_key, serializer_for

__all__ = ["RedisMap"]

T = TypeVar("T")

if TYPE_CHECKING:
    from ..sentinels import Delete, Missing

_FORMAT = "1"  # the layout version written to the metadata key
_DEFAULT = object()  # "ttl= not given": use the map's default
_SCAN_COUNT = 500  # HSCAN/SCAN COUNT hint: entries per round trip
_BACKOFF_BASE = 0.0005  # seconds: the first retry waits up to this; doubles each retry
_BACKOFF_CAP = 0.02  # seconds: no retry waits longer than this


def _ttl_ms(ttl: object, what: str = "ttl") -> int:
    """Seconds (int or float, > 0) to whole milliseconds, rounded up; None is 0 (no expiry)."""
    if ttl is None:
        return 0
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(ttl).__name__}")
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"{what} must be > 0 seconds and finite, not {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisMap(MutableMapping[K, V]):
    """A map that lives in a Redis server, with SyncMap's API: share a dict between processes.

    Do not use it for a map that one process owns: every operation is a
    network round trip (tens of microseconds on loopback, against tens of
    nanoseconds for SyncMap). Use it when several processes or machines
    must see one map: session tables, counters, feature flags, work claims.

    Guarantees are the server's, not the client's:
      - single-key operations (``m[k]``, ``m[k] = v``, ``load_or_store``,
        ``swap``, ``compare_and_swap``, ``compare_and_delete``,
        ``load_and_delete``, ``pop``) are one command or one Lua script,
        atomic on the server; a write happens before every read that
        observes it, in any process;
      - ``compute``, ``compute_if_absent``, ``compute_if_present`` and
        ``merge`` run the function here, then commit with a compare-and-swap
        of the bytes they read; if another write landed first they read and
        run the function again, with backoff, up to ``max_retries`` times,
        then raise ContentionError. So the function may run more than once
        (unlike SyncMap, where it runs once): keep it pure. ``merge`` with
        ``operator.add`` and an int is one HINCRBY;
      - compare-and-swap compares the serialized bytes, which the default
        canonical JSON makes the same as comparing values;
      - iteration (``iter``, ``keys``, ``items``, ``values``, ``range``) uses
        HSCAN or SCAN: weakly consistent (an entry present throughout is
        seen, one written meanwhile may or may not be) and never yields a
        key twice in one pass. ``snapshot()`` is point in time on the hash
        layout (one HGETALL), weakly consistent on the keys layout;
      - a lost connection raises RedisUnavailable (RedisTimeout past
        ``timeout``); the operation ran at most once, as mapsafe never
        retries a command.

    Layouts: ``"hash"`` (the default) keeps the map in one Redis hash,
    with per-entry expiry by hash-field TTL where the server has it (Redis
    7.4 and later). A map with a ``ttl`` on an older server uses
    ``"keys"``: one string key per entry, under the map's prefix, each
    with its own expiry; there ``len()`` and ``clear()`` walk the keys with
    SCAN. Every key of a map has the hash tag ``{name}``, so a map lives
    in one Redis Cluster slot. The metadata key records the serializer
    and layout; opening a map with another serializer raises
    MapMismatchError.

    Safe to share between threads: it holds one connection pool and no
    per-call state. Keys are str, int, float, bool, None or tuples of
    them (stored as canonical JSON, so 1, 1.0 and True are three keys).
    """

    def __init__(self, client_or_url: Any, name: str, *, serializer: Any = "json", ttl: float | None = None,
                 hmac_key: bytes | None = None, timeout: float = 5.0, max_retries: int = 64,
                 layout: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        if "{" in name or "}" in name:
            raise ValueError(f"name {name!r} must not contain '{{' or '}}': "
                             "the name is the map's Redis Cluster hash tag")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"max_retries must be an int >= 1, not {max_retries!r}")
        if layout not in (None, "hash", "keys"):
            raise ValueError(f"layout must be 'hash', 'keys' or None (choose), not {layout!r}")
        # Everything below is set once here and only read afterwards, so any
        # thread may use the map with no lock of mapsafe's.
        self._ttl = _ttl_ms(ttl)  # default expiry in ms, 0 for none
        self._codec = serializer_for(serializer, hmac_key)
        self._json_ints = type(self._codec) is JSONSerializer  # stored ints are decimal text: HINCRBY works
        self.name = name
        self._max_retries = max_retries
        self._client, where = client_for(client_or_url, float(timeout))
        self._translate = Translate(where, float(timeout))
        tag = f"mapsafe:{{{name}}}"
        self._hash = f"{tag}:h".encode()  # the data, on the hash layout
        self._prefix = f"{tag}:e:".encode()  # entry keys' prefix, on the keys layout
        self._pattern = _glob_escape(f"{tag}:e:") + "*"
        self._meta = f"{tag}:meta"
        with self._translate:
            self._field_ttl = self._has_field_ttl(f"{tag}:probe")
            chosen = layout or ("keys" if self._ttl and not self._field_ttl else "hash")
            if chosen == "hash" and self._ttl and not self._field_ttl:
                raise ValueError(f"the hash layout cannot expire entries on this server ({where} has no hash-field "
                                 "TTL, which needs Redis 7.4): use layout='keys' or no ttl")
            stored = self._client.register_script(_scripts.META)(keys=[self._meta],
                                                               args=[self._codec.name, chosen, _FORMAT])
        self.layout = self._settle_layout(chosen, layout, stored)  # "hash" or "keys"
        scripts = _scripts.HASH if self.layout == "hash" else _scripts.KEYS
        self._scripts = {op: self._client.register_script(text) for op, text in scripts.items()}

    def _has_field_ttl(self, probe: str) -> bool:
        """Whether the server has hash-field TTL: HPEXPIRE on a key that never exists changes nothing.

        Asking for the command itself is not enough: Valkey reports an old
        redis_version, and redis-py's COMMAND INFO parser fails on the
        reply an old server gives for an unknown command.
        """
        try:
            self._client.execute_command("HPEXPIRE", probe, 1, "FIELDS", 1, "probe")
        except redis.exceptions.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                return False
            raise
        return True

    def _settle_layout(self, chosen: str, asked: str | None, stored: list[bytes]) -> str:
        """The layout to use, given the metadata another opener may have written first."""
        if not stored:
            return chosen
        meta = {stored[i].decode(): stored[i + 1].decode() for i in range(0, len(stored), 2)}
        if meta.get("format") != _FORMAT:
            raise MapMismatchError(f"RedisMap {self.name!r} was written in format {meta.get('format')!r}; "
                                   f"this mapsafe reads format {_FORMAT}")
        if meta.get("serializer") != self._codec.name:
            raise MapMismatchError(f"RedisMap {self.name!r} was created with serializer {meta.get('serializer')!r}, "
                                   f"not {self._codec.name!r}: its values would not decode")
        existing = meta.get("layout")
        if existing == chosen:
            return chosen
        usable = existing == "keys" or (existing == "hash" and (not self._ttl or self._field_ttl))
        if asked is None and usable and existing is not None:
            return existing  # an automatic choice follows the map as it was made
        raise MapMismatchError(f"RedisMap {self.name!r} was created with layout {existing!r}, "
                               f"which cannot serve layout {chosen!r}"
                               + (" with a ttl on this server" if self._ttl else ""))

    # -- encoding ------------------------------------------------------------

    def _dumps(self, value: V) -> bytes:
        try:
            data = self._codec.dumps(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"RedisMap {self.name!r}: {exc}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"serializer {self._codec.name!r} returned {type(data).__name__}, not bytes")
        return data

    def _loads(self, data: bytes, field: bytes) -> V:
        try:
            value: V = self._codec.loads(data)
            return value
        except PayloadError as exc:
            raise PayloadError(f"RedisMap {self.name!r}, key {field.decode(errors='replace')}: {exc}") from None
        except Exception as exc:
            raise PayloadError(f"RedisMap {self.name!r}, key {field.decode(errors='replace')}: the stored bytes are "
                               f"not {self._codec.name!r} ({type(exc).__name__}: {exc})") from None

    def _ttl_of(self, ttl: Any) -> int:
        if ttl is _DEFAULT:
            return self._ttl
        ms = _ttl_ms(ttl)
        if ms and self.layout == "hash" and not self._field_ttl:
            raise ValueError(f"RedisMap {self.name!r}: a per-entry ttl on the hash layout needs hash-field TTL "
                             "(Redis 7.4); create the map with ttl= to use the keys layout")
        return ms

    def _where(self, field: bytes) -> tuple[list[bytes], list[bytes]]:
        """``(keys, leading args)`` addressing one entry in a script call."""
        if self.layout == "hash":
            return [self._hash], [field]
        return [self._prefix + field], []

    # -- single-key reads ----------------------------------------------------

    def _get_raw(self, field: bytes) -> bytes | None:
        with self._translate:
            if self.layout == "hash":
                return self._client.hget(self._hash, field)
            return self._client.get(self._prefix + field)

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: T, /) -> V | T: ...

    def get(self, key: K, default: Any = None) -> Any:
        field = encode_key(key)
        raw = self._get_raw(field)
        return default if raw is None else self._loads(raw, field)

    def __getitem__(self, key: K) -> V:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        try:
            field = encode_key(key)
        except (TypeError, ValueError):
            return False  # like a dict, a key that cannot be in the map is not in it
        with self._translate:
            if self.layout == "hash":
                return bool(self._client.hexists(self._hash, field))
            return bool(self._client.exists(self._prefix + field))

    def load(self, key: K) -> tuple[V | None, bool]:
        """``(value, True)`` if ``key`` is present, else ``(None, False)``."""
        value = self.get(key, MISSING)
        return (None, False) if value is MISSING else (value, True)

    # -- single-key writes ---------------------------------------------------

    def store(self, key: K, value: V, *, ttl: Any = _DEFAULT) -> None:
        """Set ``key`` to ``value``; ``ttl`` (seconds) overrides the map's default for this entry."""
        field, data, ms = encode_key(key), self._dumps(value), self._ttl_of(ttl)
        with self._translate:
            if self.layout == "keys":
                self._client.set(self._prefix + field, data, px=ms or None)
            elif ms:
                self._scripts["set"](keys=[self._hash], args=[field, data, ms])
            else:
                self._client.hset(self._hash, field, data)

    def __setitem__(self, key: K, value: V) -> None:
        self.store(key, value)

    def load_or_store(self, key: K, value: V, *, ttl: Any = _DEFAULT) -> tuple[V, bool]:
        """``(existing, True)`` if present, else store ``value`` and return ``(value, False)``; one script."""
        field, data, ms = encode_key(key), self._dumps(value), self._ttl_of(ttl)
        keys, args = self._where(field)
        with self._translate:
            reply = self._scripts["load_or_store"](keys=keys, args=[*args, data, ms])
        return (self._loads(reply[1], field), True) if reply[0] else (value, False)

    @overload
    def setdefault(self: RedisMap[K, T | None], key: K, default: None = None) -> T | None: ...
    @overload
    def setdefault(self, key: K, default: V) -> V: ...

    def setdefault(self, key: K, default: Any = None) -> Any:
        return self.load_or_store(key, default)[0]

    def swap(self, key: K, value: V, *, ttl: Any = _DEFAULT) -> tuple[V | None, bool]:
        """Store ``value``; return ``(previous, True)``, or ``(None, False)`` if absent."""
        field, data, ms = encode_key(key), self._dumps(value), self._ttl_of(ttl)
        keys, args = self._where(field)
        with self._translate:
            previous = self._scripts["swap"](keys=keys, args=[*args, data, ms])
        return (None, False) if previous is None else (self._loads(previous, field), True)

    def compare_and_swap(self, key: K, old: V, new: V, *, ttl: Any = _DEFAULT) -> bool:
        """Store ``new`` if the stored bytes equal ``old``'s; False when absent or different."""
        field, old_data, new_data, ms = encode_key(key), self._dumps(old), self._dumps(new), self._ttl_of(ttl)
        return self._cas_raw(field, old_data, new_data, ms)

    def _cas_raw(self, field: bytes, old_data: bytes, new_data: bytes, ms: int) -> bool:
        keys, args = self._where(field)
        with self._translate:
            return bool(self._scripts["cas"](keys=keys, args=[*args, old_data, new_data, ms]))

    def compare_and_delete(self, key: K, old: V) -> bool:
        """Delete ``key`` if the stored bytes equal ``old``'s; False when absent or different."""
        return self._cad_raw(encode_key(key), self._dumps(old))

    def _cad_raw(self, field: bytes, old_data: bytes) -> bool:
        keys, args = self._where(field)
        with self._translate:
            return bool(self._scripts["cad"](keys=keys, args=[*args, old_data]))

    def _getdel(self, field: bytes) -> bytes | None:
        with self._translate:
            if self.layout == "keys":
                return self._client.getdel(self._prefix + field)
            raw: bytes | None = self._scripts["getdel"](keys=[self._hash], args=[field])
            return raw

    def load_and_delete(self, key: K) -> tuple[V | None, bool]:
        """Remove ``key``; ``(old, True)`` if it was present, else ``(None, False)``."""
        field = encode_key(key)
        raw = self._getdel(field)
        return (None, False) if raw is None else (self._loads(raw, field), True)

    @overload
    def pop(self, key: K) -> V: ...
    @overload
    def pop(self, key: K, default: V) -> V: ...
    @overload
    def pop(self, key: K, default: T) -> V | T: ...

    def pop(self, key: K, default: Any = MISSING) -> Any:
        """Remove ``key`` and return its value; ``default`` or KeyError if absent."""
        value, found = self.load_and_delete(key)
        if found:
            return value
        if default is MISSING:
            raise KeyError(key)
        return default

    def delete(self, key: K) -> None:
        """Remove ``key`` if present; an absent key is fine."""
        field = encode_key(key)
        with self._translate:
            if self.layout == "hash":
                self._client.hdel(self._hash, field)
            else:
                self._client.delete(self._prefix + field)

    def __delitem__(self, key: K) -> None:
        field = encode_key(key)
        with self._translate:
            if self.layout == "hash":
                removed = self._client.hdel(self._hash, field)
            else:
                removed = self._client.delete(self._prefix + field)
        if not removed:
            raise KeyError(key)

    def popitem(self) -> tuple[K, V]:
        """Remove and return some ``(key, value)``; KeyError if empty. Which entry is unspecified."""
        for _ in range(self._max_retries):
            for key in self:
                value, found = self.load_and_delete(key)
                if found:
                    return key, value  # type: ignore[return-value]  # found: a V
                break  # another client took it: look again
            else:
                raise KeyError("popitem(): RedisMap is empty")
        raise ContentionError(f"RedisMap {self.name!r}: popitem lost {self._max_retries} races for an entry")

    # -- compound updates ----------------------------------------------------

    def _optimistic(self, key: K, step: Callable[[Any], Any], ttl: Any) -> V | None:
        """Read, ``step(old)`` here, then commit if the entry is still what was read; retry if not.

        ``step`` gets the stored value (or MISSING) and returns the value to
        store, DELETE, or ``_KEEP`` (change nothing). The commit is one
        script comparing the bytes read, so only writes to this very key
        force a retry (a WATCH on the map's hash would retry on a write to
        any key of the map). Returns ``(outcome, value)``.
        """
        field, ms = encode_key(key), self._ttl_of(ttl)
        for attempt in range(self._max_retries):
            raw = self._get_raw(field)
            old = MISSING if raw is None else self._loads(raw, field)
            new: V = step(old)  # or DELETE, or _KEEP
            if new is _KEEP:
                return old  # type: ignore[return-value]  # MISSING only to compute_if_present, which checks
            if new is DELETE:
                if raw is None or self._cad_raw(field, raw):
                    return None
            else:
                data = self._dumps(new)
                if raw is None:
                    keys, args = self._where(field)
                    with self._translate:
                        taken = self._scripts["load_or_store"](keys=keys, args=[*args, data, ms])[0]
                    if not taken:
                        return new
                elif self._cas_raw(field, raw, data, ms):
                    return new
            # Full jitter: contending clients spread out instead of colliding again.
            time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * (2 ** attempt))))
        raise ContentionError(f"RedisMap {self.name!r}: key {key!r} changed under every one of "
                              f"{self._max_retries} attempts to update it")

    def compute(self, key: K, fn: Callable[[K, V | Missing], V | Delete], *, ttl: Any = _DEFAULT) -> V | None:
        """Set ``key`` to ``fn(key, old)`` (``old`` is MISSING if absent); DELETE removes it.

        Returns the new value, or None if the key ends up absent. ``fn`` may
        run more than once (see the class doc); if it raises, nothing is
        written and the exception propagates.
        """
        return self._optimistic(key, lambda old: fn(key, old), ttl)

    def compute_if_absent(self, key: K, factory: Callable[[K], V | Delete], *, ttl: Any = _DEFAULT) -> V | None:
        """The value of ``key``, storing ``factory(key)`` first if absent.

        Of the clients that find the key absent at once, each runs
        ``factory`` and exactly one result is stored; all of them return it.
        """
        field = encode_key(key)
        raw = self._get_raw(field)
        if raw is not None:
            return self._loads(raw, field)

        def step(old: Any) -> Any:
            return factory(key) if old is MISSING else _KEEP

        return self._optimistic(key, step, ttl)

    def compute_if_present(self, key: K, fn: Callable[[K, V], V | Delete], *, ttl: Any = _DEFAULT) -> V | None:
        """If ``key`` is present, set it to ``fn(key, old)``; None if absent or removed."""
        def step(old: Any) -> Any:
            return _KEEP if old is MISSING else fn(key, old)

        result = self._optimistic(key, step, ttl)
        return None if result is MISSING else result

    def merge(self, key: K, value: V, fn: Callable[[V, V], V | Delete], *, ttl: Any = _DEFAULT) -> V | None:
        """Store ``value`` if absent, else ``fn(old, value)``; return the new value.

        With ``operator.add`` and a number (on the json serializer) it is one
        command on the server: HINCRBY/INCRBY for two ints, a script that
        adds and writes the sum as Python's float repr when either is a
        float. Anything else (a stored bool or str, an int sum past 64 bits,
        a sum that is not finite) takes the optimistic path, which applies
        Python's own ``fn``.
        """
        if fn is operator.add and self._json_ints and type(value) in (int, float):
            field, ms = encode_key(key), self._ttl_of(ttl)
            keys, args = self._where(field)
            if type(value) is int and -(2 ** 63) <= value < 2 ** 63:  # type: ignore[operator]  # an int
                try:
                    with self._translate:
                        return self._scripts["incr"](  # type: ignore[no-any-return]  # the new int
                            keys=keys, args=[*args, value, ms, int(self._field_ttl)]  # type: ignore[list-item]
                        )
                except redis.exceptions.ResponseError as exc:
                    # Nothing was written: Redis checks before it changes the value.
                    if "not an integer" not in str(exc) and "overflow" not in str(exc):
                        raise
                    float_sum = "not an integer" in str(exc)  # a float stored, maybe
            else:
                float_sum = type(value) is float
            if float_sum:
                absent = self._dumps(value)  # refuses NaN and infinities before anything is sent
                with self._translate:
                    reply = self._scripts["fadd"](keys=keys, args=[*args, repr(value), absent, ms])
                if reply[0] == 1:
                    return self._loads(reply[1], field)
        return self._optimistic(key, lambda old: value if old is MISSING else fn(old, value), ttl)

    @overload
    def add(self: RedisMap[K, int], key: K, *, ttl: Any = ...) -> int: ...
    @overload
    def add(self, key: K, n: V, *, ttl: Any = ...) -> V: ...

    def add(self, key: K, n: Any = 1, *, ttl: Any = _DEFAULT) -> Any:
        """Add ``n`` to the number stored for ``key`` (absent counts as 0); return the new value."""
        return self.merge(key, n, operator.add, ttl=ttl)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, in one MULTI/EXEC; every value is encoded before anything is sent."""
        pairs = other.items() if isinstance(other, Mapping) else other
        encoded = {}
        for pair in list(pairs) + list(kwargs.items()):
            key, value = pair
            encoded[encode_key(key)] = self._dumps(value)
        if not encoded:
            return
        ms = self._ttl
        with self._translate:
            with self._client.pipeline(transaction=True) as pipe:  # one per call: pipelines are not shared
                if self.layout == "hash":
                    pipe.hset(self._hash, mapping=encoded)
                    if ms:
                        pipe.execute_command("HPEXPIRE", self._hash, ms, "FIELDS", len(encoded), *encoded)
                else:
                    for field, data in encoded.items():
                        pipe.set(self._prefix + field, data, px=ms or None)
                pipe.execute()

    # -- whole-map operations ------------------------------------------------

    def _scan_raw(self) -> Iterator[tuple[bytes, bytes | None]]:
        """(field, raw value) pairs by HSCAN or SCAN, each field once; the value is None if gone meanwhile."""
        seen: set[bytes] = set()
        cursor = 0
        if self.layout == "hash":
            while True:
                with self._translate:
                    cursor, page = self._client.hscan(self._hash, cursor, count=_SCAN_COUNT)
                for field, raw in page.items():
                    if field not in seen:
                        seen.add(field)
                        yield field, raw
                if not cursor:
                    return
        cut = len(self._prefix)
        while True:
            with self._translate:
                cursor, names = self._client.scan(cursor, match=self._pattern, count=_SCAN_COUNT)
                fresh = [name for name in names if name not in seen]
                values = self._client.mget(fresh) if fresh else []
            for name, data in zip(fresh, values):
                seen.add(name)
                yield name[cut:], data
            if not cursor:
                return

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        for field, raw in self._scan_raw():
            if raw is not None:
                yield decode_key(field), self._loads(raw, field)

    def __iter__(self) -> Iterator[K]:
        for field, raw in self._scan_raw():
            if raw is not None:
                yield decode_key(field)

    def keys(self) -> KeysView[K]:
        return KeysView(self)

    def items(self) -> ItemsView[K, V]:
        return _ItemsView(self)

    def values(self) -> ValuesView[V]:
        return _ValuesView(self)

    def range(self, fn: Callable[[K, V], object]) -> None:
        """Call ``fn(key, value)`` for each entry (weakly consistent); stop when it returns ``False``."""
        for key, value in self._iter_items():
            if fn(key, value) is False:
                return

    def snapshot(self) -> dict[K, V]:
        """A ``dict`` copy: point in time on the hash layout (one HGETALL), weakly consistent on keys."""
        if self.layout == "hash":
            with self._translate:
                raw = self._client.hgetall(self._hash)
            return {decode_key(field): self._loads(data, field) for field, data in raw.items()}
        return dict(self._iter_items())

    def __len__(self) -> int:
        """HLEN on the hash layout; on the keys layout a SCAN count (O(n))."""
        if self.layout == "hash":
            with self._translate:
                return int(self._client.hlen(self._hash))
        count = 0
        for _ in self._scan_raw():
            count += 1
        return count

    def clear(self) -> None:
        """Remove every entry: one DEL on the hash layout; on the keys layout SCAN and UNLINK, not atomic."""
        with self._translate:
            if self.layout == "hash":
                self._client.delete(self._hash)
                return
        batch: list[bytes] = []
        for field, _ in self._scan_raw():
            batch.append(self._prefix + field)
            if len(batch) >= _SCAN_COUNT:
                with self._translate:
                    self._client.unlink(*batch)
                batch.clear()
        if batch:
            with self._translate:
                self._client.unlink(*batch)

    def destroy(self) -> None:
        """Remove the map from the server: every entry (as ``clear``) and its metadata key.

        Afterwards the name is free: a new ``RedisMap`` of that name may pick
        another serializer or layout. Do not use it while other processes
        still use the map: their next write recreates entries without the
        metadata, and their checks against it are lost.
        """
        self.clear()
        with self._translate:
            self._client.delete(self._meta)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RedisMap):
            return self.snapshot() == other.snapshot()
        if isinstance(other, Mapping):
            return self.snapshot() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"RedisMap({self._translate.where!r}, {self.name!r}, layout={self.layout!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a RedisMap cannot be pickled: open it by name in the other process "
                        "(RedisMap(url, name)); its data is already shared")

    def close(self) -> None:
        """Close this map's pool connections (the map reconnects if used again)."""
        self._client.connection_pool.disconnect()


_KEEP = object()  # _optimistic's "change nothing" result


class _ItemsView(ItemsView[K, V]):
    _mapping: RedisMap[K, V]  # ItemsView's (typeshed does not list it)

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self._mapping._iter_items()

    def __contains__(self, item: object) -> bool:
        key: Any
        value: Any
        key, value = item  # type: ignore[misc]  # item is a (key, value) pair to look up
        found = self._mapping.get(key, MISSING)
        return found is not MISSING and found == value


class _ValuesView(ValuesView[V]):
    _mapping: RedisMap[Any, V]  # ValuesView's (typeshed does not list it)

    def __iter__(self) -> Iterator[V]:
        for _, value in self._mapping._iter_items():
            yield value
