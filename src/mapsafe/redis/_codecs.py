"""How RedisMap turns keys and values into bytes: canonical JSON, msgpack, signed pickle, or a user codec."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import pickle
from typing import Any

from ..errors import PayloadError

__all__ = ["Serializer", "JSONSerializer", "MsgpackSerializer", "SignedPickleSerializer", "serializer_for",
           "encode_key", "decode_key"]

_NESTING_LIMIT = 500  # deeper than this is refused as "circular or too deep", before json recurses

_SCALARS = (str, int, float, bool, type(None))


def _describe(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _check_plain(value: Any, what: str, depth: int = 0) -> None:
    """Refuse what JSON would store inexactly, naming the type.

    ``json.dumps`` turns tuples into lists, int dict keys into strings and an
    IntEnum into an int, so a value read back would not equal the value
    stored. Refusing them is what keeps "nothing is lost" true.
    """
    if depth > _NESTING_LIMIT:
        raise ValueError(f"{what} is nested more than {_NESTING_LIMIT} deep, or is circular")
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} {value!r} cannot be stored as JSON (only finite floats can)")
    elif kind in _SCALARS:
        pass
    elif kind is list:
        for item in value:
            _check_plain(item, what, depth + 1)
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{what} has a dict key of type {_describe(key)}; JSON stores only str keys "
                                "(it would come back as a str)")
            _check_plain(item, what, depth + 1)
    elif kind is tuple:
        raise TypeError(f"{what} contains a tuple, which JSON would give back as a list; store a list")
    else:
        raise TypeError(f"{what} of type {_describe(value)} is not serializable by the json serializer "
                        "(it stores None, bool, int, float, str, list and dict with str keys)")


class Serializer:
    """The codec protocol: ``name``, ``dumps(obj) -> bytes`` and ``loads(bytes) -> obj``.

    ``name`` is written to the map's metadata key, so two processes that
    open one map with different codecs are told so at once. ``dumps`` must
    raise TypeError or ValueError for what it cannot encode, and should be
    canonical (equal values give equal bytes): compare-and-swap compares
    bytes on the server.
    """

    name = "serializer"

    def dumps(self, value: Any) -> bytes:  # pragma: no cover - protocol
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:  # pragma: no cover - protocol
        raise NotImplementedError


class JSONSerializer(Serializer):
    """Canonical JSON (sorted keys, no spaces, UTF-8): equal values are equal bytes. The default."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        _check_plain(value, "value")
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, check_circular=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class MsgpackSerializer(Serializer):
    """msgpack (the ``msgpack`` package): compact, binary, bytes values allowed; tuples refused as for JSON."""

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise ImportError("serializer='msgpack' needs the msgpack package: pip install 'mapsafe[redis]'") from None
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        try:
            # strict_types: a tuple is not packed as a list (it would come back as one).
            data: bytes = self._msgpack.packb(value, strict_types=True, use_bin_type=True)
            return data
        except TypeError:
            raise TypeError(f"value of type {_describe(value)} (or something inside it) is not serializable "
                            "by the msgpack serializer") from None
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"value of type {_describe(value)} cannot be packed by msgpack: {exc}") from None

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


class SignedPickleSerializer(Serializer):
    """pickle, every payload signed with HMAC-SHA256 and checked before it is unpickled.

    Do not use it unless every writer is trusted with the key: anyone
    holding it can make every reader run code. Unpickling unsigned data
    from a shared server is how several Redis-backed libraries became
    remote-code-execution CVEs, so mapsafe refuses pickle without a key.
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValueError("hmac_key must be bytes of at least 16 bytes (e.g. secrets.token_bytes(32))")
        self._key = bytes(key)
        # The metadata names the key by a digest of it, so a reader with a
        # different key is refused at open, not at its first read.
        self.name = "pickle+hmac-sha256:" + hmac.new(self._key, b"mapsafe key id", hashlib.sha256).hexdigest()[:16]

    def dumps(self, value: Any) -> bytes:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"value of type {_describe(value)} cannot be pickled: {exc}") from None
        return hmac.new(self._key, data, hashlib.sha256).digest() + data

    def loads(self, data: bytes) -> Any:
        mac, body = data[:32], data[32:]
        if len(mac) < 32 or not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise PayloadError("a pickle payload failed its HMAC check; it was not unpickled")
        return pickle.loads(body)


def serializer_for(serializer: Any, hmac_key: Any) -> Serializer:
    """The Serializer that RedisMap's ``serializer=`` and ``hmac_key=`` arguments name."""
    if serializer == "json":
        codec: Serializer = JSONSerializer()
    elif serializer == "msgpack":
        codec = MsgpackSerializer()
    elif serializer == "pickle":
        if hmac_key is None:
            raise ValueError("serializer='pickle' needs hmac_key=: unsigned pickles from a shared server "
                             "let any writer run code in every reader")
        return SignedPickleSerializer(hmac_key)
    elif isinstance(serializer, str):
        raise ValueError(f"serializer must be 'json', 'msgpack', 'pickle' or a codec object, not {serializer!r}")
    else:
        missing = [attr for attr in ("name", "dumps", "loads") if not hasattr(serializer, attr)]
        if missing:
            raise TypeError(f"serializer of type {_describe(serializer)} lacks {', '.join(missing)} "
                            "(a codec needs name, dumps and loads)")
        if not isinstance(serializer.name, str) or not serializer.name:
            raise TypeError("serializer.name must be a non-empty str (it is written to the map's metadata)")
        codec = serializer
    if hmac_key is not None:
        raise ValueError("hmac_key= is only for serializer='pickle'")
    return codec


def _check_key(key: Any, depth: int = 0) -> None:
    kind = type(key)
    if kind is tuple and depth < _NESTING_LIMIT:
        for item in key:
            _check_key(item, depth + 1)
    elif kind is float:
        if not math.isfinite(key):
            raise ValueError(f"RedisMap key {key!r} is not allowed (only finite floats)")
    elif kind not in _SCALARS:
        hash(key)  # an unhashable key raises the TypeError dict raises
        raise TypeError(f"RedisMap keys are str, int, float, bool, None or tuples of them, not {_describe(key)}")


def encode_key(key: Any) -> bytes:
    """A key's Redis field name: canonical JSON whatever the value codec, so equal keys are one field.

    Unlike a dict, 1, 1.0 and True are three keys here: their JSON differs.
    """
    _check_key(key)
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode()


def _tuples(value: Any) -> Any:
    return tuple(_tuples(item) for item in value) if type(value) is list else value


def decode_key(field: bytes) -> Any:
    try:
        return _tuples(json.loads(field))
    except ValueError:
        raise PayloadError(f"field {field[:80]!r} is not a RedisMap key (was it written by something else?)") from None
