"""`--redis URL`: the server the RedisMap rows run on, checked before a run and named without its password."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import RedisUnavailable, UsageError

__all__ = ["Server", "TIMEOUT", "NO_REDIS", "redact", "check"]

TIMEOUT = 5.0  # seconds to connect and for each reply: RedisMap's default, used by both rows and the probe
NO_REDIS = 'the RedisMap rows need redis-py, which is not installed (pip install "mapsafe[redis]")'


@dataclass(frozen=True)
class Server:
    """A server that answered: its URL, the URL as shown (no password), and its version."""

    url: str
    shown: str
    version: str

    def describe(self) -> str:
        return f"{self.shown} (Redis {self.version})"


def redact(url: str) -> str:
    """``url`` with any password (``:pw@`` or ``?password=``) as ``***``: it goes into tables, JSON and messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    if password:
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}")
    if any(name == "password" for name, _ in query):
        parts = parts._replace(query=urlencode([(n, "***" if n == "password" else v) for n, v in query], safe="*"))
    return urlunsplit(parts)


def _bad_database(url: str) -> str:
    """Why the database part of a redis:// URL is wrong, or "" (redis-py quietly uses 0 for ``/abc``)."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    if parts.scheme in ("redis", "rediss") and db and not db.isdigit():
        return f"the database must be a number, as in redis://host:6379/0, not {db!r}"
    return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check(url: str, where: str) -> Server:
    """The server at ``url`` and its version; UsageError or RedisUnavailable, naming the URL, if it cannot be used.

    ``where`` names the setting in messages ("--redis", or the config key
    and its source). Retries are off, as in RedisMap: a closed port fails
    at once, an address that does not answer after TIMEOUT seconds.
    """
    shown = redact(url)
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        import mapsafe.redis  # noqa: F401  (the RedisMap row's own import, checked before the run)
    except ImportError:
        raise UsageError(f"{where}: {NO_REDIS}") from None
    try:
        why = _bad_database(url)
        client = None if why else redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                                       retry=Retry(NoBackoff(), 0))
    except ValueError as exc:
        why = _one_line(exc)
    if why or client is None:
        raise UsageError(f"{where}: {shown!r} is not a Redis URL: {why}") from None
    try:
        client.ping()
        try:
            version = str(client.info("server").get("redis_version", "unknown"))
        except redis.exceptions.ResponseError:  # INFO renamed or refused (a managed server): it still answered
            version = "unknown"
    except redis.exceptions.RedisError as exc:
        raise RedisUnavailable(f"{where} {shown}: the server cannot be used: {_one_line(exc)}") from None
    finally:
        client.close()
    return Server(url, shown, version)
