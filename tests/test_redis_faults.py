"""RedisMap under faults on a real server: a SIGKILL mid-run, restarts, a busy script, stalled and dropped replies."""

from __future__ import annotations

import operator
import socket
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from _redis_proxy import Proxy
from _redis_server import start_or_fail
from mapsafe import MISSING
from mapsafe.redis import RedisMap, RedisTimeout, RedisUnavailable

BOUND = 30.0  # seconds: an operation still running past this is a hang, and fails the test


@pytest.fixture
def server():
    running = start_or_fail()
    yield running
    running.stop()


@pytest.fixture
def durable_server():
    running = start_or_fail(persistent=True)
    yield running
    running.stop()


def _raw(server) -> redis.Redis:
    """A plain client straight to ``server``, for setting up and checking what the map did; it never retries."""
    return redis.Redis(port=server.port, socket_timeout=BOUND, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def proxy(server):
    running = Proxy(server.port).start()
    yield running
    running.close()


def _bounded(fn, *args, limit: float = BOUND, **kwargs):
    """``fn(*args, **kwargs)``'s result, or the exception it raised; fails the test if it runs past ``limit``."""
    outcome = []

    def run():
        try:
            outcome.append(fn(*args, **kwargs))
        except BaseException as exc:  # returned to the test, which says what it expected
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} still running after {limit:g}s")
    return outcome[0]


def _increment(key, old):
    return 1 if old is MISSING else old + 1


def _errorstat(client: redis.Redis, code: str) -> int:
    """How many ``code`` error replies the server sent since it started or CONFIG RESETSTAT."""
    return client.info("errorstats").get(f"errorstat_{code}", {}).get("count", 0)


# -- SIGKILL in the middle of a run --------------------------------------------

def _until_failure(op, acked: list, failures: list, stop: threading.Event) -> None:
    """Run ``op()`` until it raises, keeping each result; one failure ends the thread.

    Stopping at the first failure keeps the check tight: an operation that
    raised may or may not have been applied, so each thread leaves at most
    one update unaccounted for.
    """
    while not stop.is_set():
        try:
            result = op()
        except BaseException as exc:
            failures.append(exc)
            return
        acked.append(result)


def test_sigkill_mid_run_keeps_every_acknowledged_update_and_applies_none_twice(durable_server):
    m = RedisMap(durable_server.url, "crash", timeout=5.0)
    ops = {
        "merge": lambda: m.merge("merge", 1, operator.add),  # one HINCRBY script
        "compute": lambda: m.compute("compute", _increment),  # read, then CAS
    }
    per_key = 2  # threads per operation
    acked = {key: [[] for _ in range(per_key)] for key in ops}
    failures = {key: [[] for _ in range(per_key)] for key in ops}
    stop = threading.Event()
    threads = [threading.Thread(target=_until_failure, args=(ops[key], acked[key][i], failures[key][i], stop),
                                daemon=True) for key in ops for i in range(per_key)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + BOUND
        while sum(len(done) for lists in acked.values() for done in lists) < 400:
            assert time.monotonic() < deadline, "the threads did not get 400 updates done"
            assert not any(fail for lists in failures.values() for fail in lists), failures
            time.sleep(0.01)
        durable_server.kill()  # SIGKILL, with every thread mid-run
        for thread in threads:
            thread.join(BOUND)
        assert not any(thread.is_alive() for thread in threads), "a thread did not see the server die"
    finally:
        stop.set()

    durable_server.restart()  # same port: the AOF (fsync always) is replayed
    summary = []
    for key in ops:
        errors = [exc for fail in failures[key] for exc in fail]
        assert len(errors) == per_key  # each thread ended by exactly one failure...
        for exc in errors:  # ...which says the server went away, in mapsafe's terms
            assert isinstance(exc, RedisUnavailable), f"{key}: {type(exc).__name__}: {exc}"
        results = [value for done in acked[key] for value in done]
        total = m.get(key, 0)  # the map reconnects by itself after the restart
        # Each acknowledged update returned the value it made, so they are
        # distinct, and all survived the crash; the total counts those, plus
        # at most the updates whose call raised. A lost acknowledged write
        # makes total < acked; one applied twice (a retry) makes it exceed the bound.
        assert len(set(results)) == len(results)
        assert max(results) <= total
        assert len(results) <= total <= len(results) + len(errors), (key, len(results), total, len(errors))
        summary.append(f"{key}: acked={len(results)} raised={len(errors)} total={total}")
    assert m.merge("merge", 1, operator.add) == m["merge"]  # and it works again
    print(f"\nSIGKILL on Redis {durable_server.version}: " + "; ".join(summary))
    m.close()


# -- restarts and SCRIPT FLUSH: the scripts reload --------------------------------

def test_scripts_reload_after_a_restart(server):
    m = RedisMap(server.url, "restart")
    assert m.load_or_store("k", 1) == (1, False)
    assert m.merge("n", 1, operator.add) == 1
    server.restart()  # not persistent: the data and the script cache are gone
    raw = _raw(server)
    assert _errorstat(raw, "NOSCRIPT") == 0
    # The first EVALSHA of each script gets NOSCRIPT; redis-py loads the script and runs it once.
    assert m.load_or_store("k", 2) == (2, False)
    assert _errorstat(raw, "NOSCRIPT") == 1
    assert m.compare_and_swap("k", 2, 3) is True
    assert _errorstat(raw, "NOSCRIPT") == 2
    assert m.merge("n", 1, operator.add) == 1  # run once: the NOSCRIPT attempt changed nothing
    assert _errorstat(raw, "NOSCRIPT") == 3
    assert (m["k"], m["n"]) == (3, 1)
    m.close()


@pytest.mark.parametrize("layout", ["hash", "keys"])
def test_scripts_reload_after_script_flush(server, layout):
    m = RedisMap(server.url, f"flush-{layout}", layout=layout)
    calls = [  # every script of the layout, with what it returns on the state the previous ones left
        ("load_or_store", lambda: m.load_or_store("a", 1), (1, False)),
        ("cas", lambda: m.compare_and_swap("a", 1, 2), True),
        ("swap", lambda: m.swap("a", 3), (2, True)),
        ("cad", lambda: m.compare_and_delete("a", 3), True),
        ("incr", lambda: m.merge("n", 5, operator.add), 5),
        ("getdel", lambda: m.pop("n"), 5),
    ]
    if layout == "hash" and m._field_ttl:  # a per-entry ttl on the hash layout is the "set" script
        calls.append(("set", lambda: m.store("t", 1, ttl=60), None))
    used = {op for op, _, _ in calls if op in m._scripts}
    for _, call, _ in calls:  # load every script once
        call()
    raw = _raw(server)
    raw.config_resetstat()
    raw.script_flush()
    for op, call, expected in calls:
        assert call() == expected, op
    assert _errorstat(raw, "NOSCRIPT") == len(used)  # each script missed once, then was loaded
    assert all(raw.script_exists(*(m._scripts[op].sha for op in used)))
    assert ("a" in m, "n" in m) == (False, False)
    m.close()


# -- a long script on another client: BUSY, then SCRIPT KILL --------------------

_SPIN = """
local start = redis.call('TIME')
while true do
  local now = redis.call('TIME')
  if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1]) * 1000000 then return 'done' end
end
"""  # ARGV[1]: seconds to spin; a bound, in case SCRIPT KILL never comes


def _set_script_time_limit(client: redis.Redis, ms: int) -> None:
    """After ``ms`` of a script, the server answers others with BUSY (busy-reply-threshold; lua-time-limit before 7)."""
    try:
        client.config_set("busy-reply-threshold", ms)
    except redis.exceptions.ResponseError:
        client.config_set("lua-time-limit", ms)


def _spin_in_background(server, seconds: float) -> tuple[threading.Thread, list]:
    outcome: list = []

    def spin():
        try:
            outcome.append(_raw(server).eval(_SPIN, 0, seconds))
        except redis.exceptions.RedisError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("threshold_ms, map_timeout", [(100, 5.0), (1000, 0.2)], ids=["busy-reply", "socket-timeout"])
def test_a_long_script_elsewhere_times_the_map_out_until_script_kill(server, threshold_ms, map_timeout):
    """busy-reply: the server answers BUSY before the map's timeout; socket-timeout: the map gives up first."""
    m = RedisMap(server.url, "busy", timeout=map_timeout)
    assert m.merge("n", 1, operator.add) == 1  # the incr script is loaded before the server is held
    raw = _raw(server)
    _set_script_time_limit(raw, threshold_ms)
    spinner, spun = _spin_in_background(server, 20)
    probe = redis.Redis(port=server.port, socket_timeout=0.1, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + BOUND
    while True:  # until the script holds the server: PING times out, or gets BUSY
        assert time.monotonic() < deadline and spinner.is_alive(), f"the script never held the server: {spun}"
        try:
            probe.ping()
        except (redis.exceptions.TimeoutError, redis.exceptions.ResponseError):
            break
        time.sleep(0.01)
    probe.close()

    raised = [_bounded(m.merge, "n", 1, operator.add), _bounded(m.get, "n")]
    for exc in raised:
        assert isinstance(exc, RedisTimeout), repr(exc)
    assert raw.script_kill() is True  # served once the threshold has passed
    spinner.join(BOUND)
    assert not spinner.is_alive()
    assert isinstance(spun[0], redis.exceptions.ResponseError) and "kill" in str(spun[0]).lower(), spun
    # The map works again, and the merge that timed out was never applied:
    # the server does not run a command it answered BUSY to, nor one it never read.
    assert m.merge("n", 1, operator.add) == 2
    print(f"\n{threshold_ms}ms threshold, map timeout {map_timeout:g}s on Redis {server.version}: "
          + "; ".join(f"{type(exc).__name__}: {exc}" for exc in raised))
    m.close()


# -- the network: a stalled connection, a reply lost --------------------------------

@pytest.mark.parametrize("requests, applied", [(True, 0), (False, 1)], ids=["stall-both-ways", "stall-replies"])
def test_a_stalled_connection_raises_redis_timeout(server, proxy, requests, applied):
    m = RedisMap(proxy.url, "stall", timeout=0.5)
    raw = _raw(server)
    assert m.merge("n", 1, operator.add) == 1
    proxy.stall(requests=requests, replies=True)
    exc = _bounded(m.merge, "n", 1, operator.add)
    assert isinstance(exc, RedisTimeout), repr(exc)
    if applied:  # the request reached the server; wait for it to be counted (bounded), then check it is once
        deadline = time.monotonic() + BOUND
        while raw.hget(m._hash, b'"n"') == b"1" and time.monotonic() < deadline:
            time.sleep(0.01)
    proxy.resume()  # the stalled connection is closed: what it still held is never delivered
    assert m.merge("n", 1, operator.add) == 2 + applied
    assert proxy.accepted == 2  # the map opened a new connection after the timeout
    print(f"\n{'both ways' if requests else 'replies only'} on Redis {server.version}: {type(exc).__name__}, "
          f"stalled merge applied {applied}x, counter {m['n']}")
    m.close()


def _opened_from(kind: str, proxy: Proxy):
    """The argument to open a map through the proxy: its URL, or a redis.Redis with redis-py's default retries."""
    if kind == "url":
        return proxy.url
    client = redis.Redis(port=proxy.port)
    assert client.get_retry().get_retries() > 0  # redis-py's default: it would retry a lost reply
    return client


@pytest.mark.parametrize("kind", ["url", "client"])
def test_a_dropped_reply_raises_and_the_command_ran_once(server, proxy, kind):
    source = _opened_from(kind, proxy)
    m = RedisMap(source, "drop", timeout=5.0)
    raw = _raw(server)
    assert m.merge("warm", 1, operator.add) == 1  # the incr script is loaded: a NOSCRIPT reply is not what gets dropped
    proxy.drop_reply_to(b"dropme")
    exc = _bounded(m.merge, "dropme", 1, operator.add)
    assert isinstance(exc, RedisUnavailable), repr(exc)
    assert proxy.dropped == 1
    assert raw.hget(m._hash, b'"dropme"') == b"1"  # applied once: the map did not send it again
    assert m.merge("dropme", 1, operator.add) == 2
    if kind == "client":
        assert source.get_retry().get_retries() > 0  # the caller's client is left as it was
        source.close()
    print(f"\ndropped reply ({kind}) on Redis {server.version}: {type(exc).__name__}, applied 1x, "
          f"{proxy.dropped} reply dropped")
    m.close()


def test_the_proxy_catches_a_retrying_client(server, proxy):
    """The control for the test above: redis-py with its default retries sends the command again."""
    client = redis.Redis(port=proxy.port)
    proxy.drop_reply_to(b"dropme")
    assert client.hincrby("h", "dropme", 1) == 2  # the first HINCRBY ran, its reply was lost, the retry ran too
    assert proxy.dropped == 1
    client.close()


# -- nothing there ------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once this closes: connecting is refused


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/0",
    "redis://127.0.0.1:notaport/0",
    "redis://127.0.0.1:99999/0",
    "redis://127.0.0.1:6379/0?socket_timeout=soon",
    "",
])
def test_a_bad_url_raises_redis_unavailable(url):
    exc = _bounded(RedisMap, url, "m")
    assert type(exc) is RedisUnavailable and "bad Redis URL" in str(exc), repr(exc)


def test_a_closed_port_raises_redis_unavailable():
    exc = _bounded(RedisMap, f"redis://127.0.0.1:{_closed_port()}/0", "m", timeout=5.0)
    assert type(exc) is RedisUnavailable, repr(exc)  # refused at once: not a timeout


def test_a_server_that_never_answers_raises_redis_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel completes connects; nobody reads
        exc = _bounded(RedisMap, f"redis://127.0.0.1:{silent.getsockname()[1]}/0", "m", timeout=0.3)
    assert type(exc) is RedisTimeout, repr(exc)


def test_a_server_gone_after_opening_raises_redis_unavailable(server):
    m = RedisMap(server.url, "gone", timeout=2.0)
    m["k"] = 1
    server.kill()
    for call, args in [(m.get, ("k",)), (m.merge, ("n", 1, operator.add)), (m.load_or_store, ("k", 2))]:
        exc = _bounded(call, *args)
        assert type(exc) is RedisUnavailable, f"{call.__name__}: {exc!r}"
    m.close()
