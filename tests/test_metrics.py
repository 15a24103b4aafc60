"""mapsafe.metrics: scrapes of a real exposition server, OpenTelemetry's in-memory reader, and no locks taken."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import mapsafe
from mapsafe._core import hold_all
from mapsafe.metrics import PrometheusCollector, register_otel
from mapsafe.metrics._figures import METRICS

JOIN = 30.0  # hang limit for joins and HTTP calls; never a pass criterion

PROM = {m.key: m.prometheus + ("_total" if m.kind == "counter" else "") for m in METRICS}  # key -> sample name
OTEL = {m.key: m.otel for m in METRICS}


class Clock:
    """A Cache's injectable clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- scenarios: a map after known operations, and exactly what it must export ---------------
# Each returns (map, expected), expected being metric key -> {shard or None: value}.
# A metric a map does not keep is absent from expected, and must be absent from the export.


def _lock(acquisitions, contended=0, wait=0.0, shard=None):
    return {"lock_acquisitions": {shard: acquisitions}, "lock_contended": {shard: contended},
            "lock_wait_seconds": {shard: wait}}


def syncmap_stats():
    m = mapsafe.SyncMap(stats=True)
    for i in range(5):
        m[f"k{i}"] = i  # one lock acquisition each
    for i in range(7):
        assert m[f"k{i % 5}"] == i % 5  # 7 hits, lock-free
    for _ in range(3):
        assert m.get("absent") is None  # 3 misses
    # A wait counted by the lock itself (what an RWLock's condition wait
    # calls), so that acquisitions, contended and wait time all differ.
    m._lock.add_wait(0.25)
    return m, {"size": {None: 5}, "hits": {None: 7}, "misses": {None: 3}, **_lock(5, 1, 0.25)}


def syncmap_plain():
    m = mapsafe.SyncMap()
    for i in range(5):
        m[f"k{i}"] = i
    for i in range(7):
        m.get(f"k{i % 5}")
    m.get("absent")
    return m, {"size": {None: 5}}


def lockedmap_stats():
    m = mapsafe.LockedMap(stats=True)
    for i in range(5):
        m[f"k{i}"] = i
    for i in range(7):
        assert m.get(f"k{i % 5}") == i % 5
    for _ in range(3):
        assert m.get("absent") is None
    with m.write() as d:  # takes the RWLock's write lock, not the profiled mutex: not counted
        d["k5"] = 5
    m._lock.add_wait(0.5)
    # Every store and get takes the profiled mutex once: 5 + 10.
    return m, {"size": {None: 6}, "hits": {None: 7}, "misses": {None: 3}, **_lock(15, 1, 0.5)}


def lockedmap_plain():
    m = mapsafe.LockedMap({"a": 1, "b": 2})
    m.get("a")
    m.get("absent")
    return m, {"size": {None: 2}}


def shardedmap_stats():
    # Small ints hash to themselves: key i lives in shard i % 4.
    m = mapsafe.ShardedMap(shards=4, stats=True)
    for i in range(5):
        m[i] = i  # shards 0, 1, 2, 3, 0: one acquisition of that shard's lock each
    for i in range(7):
        assert m.get(i % 5) == i % 5
    for _ in range(3):
        assert m.get(99) is None
    m._shards[2].lock.add_wait(0.5)
    expected = {"size": {"0": 2, "1": 1, "2": 1, "3": 1}, "hits": {None: 7}, "misses": {None: 3},
                "lock_acquisitions": {"0": 2, "1": 1, "2": 1, "3": 1},
                "lock_contended": {"0": 0, "1": 0, "2": 1, "3": 0},
                "lock_wait_seconds": {"0": 0.0, "1": 0.0, "2": 0.5, "3": 0.0}}
    return m, expected


def shardedmap_plain():
    m = mapsafe.ShardedMap(shards=2)
    for i in range(5):
        m[i] = i
    m.get(1)
    return m, {"size": {"0": 3, "1": 2}}


def shardedmap_bounded():
    # maxsize 4 over 2 shards: 2 entries each. Shard 0 gets keys 0, 2, 4, 6
    # and evicts two (no reads, so CLOCK evicts the oldest); shard 1 gets 1, 3.
    m = mapsafe.ShardedMap(shards=2, maxsize=4)
    for i in (0, 1, 2, 3, 4, 6):
        m[i] = i
    return m, {"size": {"0": 2, "1": 2}, "evictions": {"0": 2, "1": 0}, "expirations": {"0": 0, "1": 0}}


def shardedmap_ttl():
    m = mapsafe.ShardedMap(shards=2, ttl=0.01)
    for i in (0, 1, 2):
        m[i] = i
    time.sleep(0.05)  # past the ttl (monotonic): every entry has expired
    assert m.get(0) is None and m.get(2) is None  # each read removes its expired entry
    # Shard 1 still holds key 1, expired but not yet removed: size counts it.
    return m, {"size": {"0": 0, "1": 1}, "evictions": {"0": 0, "1": 0}, "expirations": {"0": 2, "1": 0}}


def cache():
    clock = Clock()
    c = mapsafe.Cache(maxsize=3, ttl=10, clock=clock)
    for i in range(5):
        c.put(f"k{i}", i)  # two evicted for size
    present = list(c.as_map())
    assert len(present) == 3
    for i in range(7):
        assert c.get_if_present(present[i % 3]) is not None
    for _ in range(3):
        assert c.get_if_present("absent") is None
    clock.now = 11.0
    assert c.cleanup() == 3  # three expired
    c.put("new", 1)
    return c, {"size": {None: 1}, "hits": {None: 7}, "misses": {None: 3},
               "evictions": {None: 2}, "expirations": {None: 3}}


SCENARIOS = {f.__name__: f for f in (syncmap_stats, syncmap_plain, lockedmap_stats, lockedmap_plain,
                                     shardedmap_stats, shardedmap_plain, shardedmap_bounded, shardedmap_ttl,
                                     cache)}


# -- a real exposition server ------------------------------------------------------------------


def parse(text: str) -> tuple[dict, dict]:
    """(samples, types) of an exposition: sample name -> {(map, shard or None): value}, family -> type."""
    samples: dict = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            assert set(s.labels) <= {"map", "shard"}, s
            samples.setdefault(s.name, {})[(s.labels["map"], s.labels.get("shard"))] = s.value
    return samples, types


def of_map(samples: dict, name: str) -> dict:
    """What ``samples`` hold for map ``name``, as metric key -> {shard or None: value}."""
    out = {}
    for key, sample_name in PROM.items():
        values = {shard: v for (m, shard), v in samples.get(sample_name, {}).items() if m == name}
        if values:
            out[key] = values
    return out


@pytest.fixture
def exposition():
    """A fresh registry served on loopback: yields (registry, scrape), scrape() returning the text."""
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=JOIN) as response:
            assert response.status == 200
            return response.read().decode()

    try:
        yield registry, scrape
    finally:
        server.shutdown()
        server.server_close()
        thread.join(JOIN)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scrape_exports_exactly_what_the_map_counts(exposition, scenario):
    registry, scrape = exposition
    m, expected = SCENARIOS[scenario]()
    registry.register(PrometheusCollector(maps={scenario: m}))
    samples, types = parse(scrape())
    assert of_map(samples, scenario) == expected
    for metric in METRICS:
        if metric.key in expected:
            assert types[metric.prometheus] == metric.kind


def test_several_maps_in_one_scrape_keep_their_labels(exposition):
    registry, scrape = exposition
    built = {name: build() for name, build in SCENARIOS.items()}
    registry.register(PrometheusCollector(maps={name: m for name, (m, _) in built.items()}))
    samples, _ = parse(scrape())
    for name, (_, expected) in built.items():
        assert of_map(samples, name) == expected, name


def test_no_map_with_stats_exports_only_what_exists(exposition):
    registry, scrape = exposition
    registry.register(PrometheusCollector(maps={"a": mapsafe.SyncMap({"x": 1}), "b": mapsafe.LockedMap()}))
    samples, types = parse(scrape())
    assert samples == {"mapsafe_size": {("a", None): 1.0, ("b", None): 0.0}}
    assert types == {"mapsafe_size": "gauge"}


def test_sample_text_format():
    # The exposition's own words (and the README's sample): names, labels, HELP and TYPE lines.
    registry = CollectorRegistry()
    m = mapsafe.ShardedMap(shards=2, stats=True)
    m[0] = "a"
    registry.register(PrometheusCollector(maps={"sessions": m}))
    text = generate_latest(registry).decode()
    assert '# TYPE mapsafe_lock_acquisitions_total counter\n' in text
    assert 'mapsafe_lock_acquisitions_total{map="sessions",shard="0"} 1.0\n' in text
    assert 'mapsafe_lock_acquisitions_total{map="sessions",shard="1"} 0.0\n' in text
    assert 'mapsafe_misses_total{map="sessions"} 0.0\n' in text
    assert '# TYPE mapsafe_size gauge\nmapsafe_size{map="sessions",shard="0"} 1.0\n' in text


def test_one_registry_refuses_two_collectors_of_the_same_names():
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(maps={"a": mapsafe.SyncMap()}))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(PrometheusCollector(maps={"b": mapsafe.SyncMap()}))


# -- collect() takes no lock --------------------------------------------------------------------


def _holding_every_lock(m, fn) -> None:
    """``fn()`` holding every lock of ``m`` that a writer, or its stats(), could take."""
    if isinstance(m, mapsafe.LockedMap):
        # The RWLock's write lock (readers and len() wait for it), and its
        # mutex, which every short operation and stats() take.
        with m.write(), m._lock:
            fn()
    elif isinstance(m, mapsafe.ShardedMap):
        hold_all(m._all_locks, fn)  # the callback lock, then every shard's
    else:
        with m._lock:
            fn()


def _held_elsewhere(m) -> bool:
    """True if this thread can take no lock of ``m`` now (so another thread holds them all)."""
    locks = list(m._all_locks) if isinstance(m, mapsafe.ShardedMap) else [m._lock]
    for lock in locks:
        if lock.acquire(False):
            lock.release()
            return False
    return not isinstance(m, mapsafe.LockedMap) or m.lock._writer is not None


@pytest.mark.parametrize("scenario", ["syncmap_stats", "lockedmap_stats", "shardedmap_stats", "shardedmap_bounded",
                                      "cache"])
def test_scrape_completes_while_another_thread_holds_every_lock_of_the_map(exposition, scenario):
    # The bug this guards against: calling stats(), which locks (LockedMap's
    # mutex, each of ShardedMap's shards, the Cache's lock), from collect():
    # a scrape would then wait behind a long write() block or a compute
    # callback, and make the writers queued behind it wait for the scrape.
    registry, scrape = exposition
    m, expected = SCENARIOS[scenario]()
    registry.register(PrometheusCollector(maps={"m": m}))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(JOIN)

    scraped: list[str] = []
    holding = threading.Thread(target=_holding_every_lock, args=(m, hold))
    scraper = threading.Thread(target=lambda: scraped.append(scrape()))
    holding.start()
    try:
        assert held.wait(JOIN)
        assert _held_elsewhere(m)  # the locks really are held, so the scrape below could not take them
        scraper.start()
        scraper.join(JOIN)
        assert not scraper.is_alive(), "the scrape waited for a lock the holder thread holds"
        assert _held_elsewhere(m)  # and the holder still holds them: the scrape finished during the hold
    finally:
        release.set()
        holding.join(JOIN)
        if scraper.ident is not None:
            scraper.join(JOIN)
    if "lock_acquisitions" in expected:  # the holder's own acquisition of each profiled lock
        expected["lock_acquisitions"] = {shard: n + 1 for shard, n in expected["lock_acquisitions"].items()}
    assert of_map(parse(scraped[0])[0], "m") == expected


@pytest.mark.parametrize("kind", ["SyncMap", "LockedMap", "ShardedMap", "Cache"])
def test_scrapes_during_writes_rise_and_end_exact(kind):
    # 4 writers store disjoint keys while a thread scrapes without pause.
    # Each scrape's figures are values the counters really had, so with
    # only inserts they never fall; the last scrape, after the writers,
    # is exact.
    threads, per_thread = 4, 500
    if kind == "Cache":
        m = mapsafe.Cache(None)
        put = m.put
    else:
        m = getattr(mapsafe, kind)(stats=True)
        put = m.__setitem__
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(maps={"m": m}))

    def totals() -> tuple[float, float]:
        samples, _ = parse(generate_latest(registry).decode())
        acquisitions = samples.get("mapsafe_lock_acquisitions_total", {}).values()
        return sum(samples["mapsafe_size"].values()), sum(acquisitions)

    start, stop = threading.Barrier(threads + 1), threading.Event()
    seen: list[tuple[float, float]] = []

    def writer(t: int) -> None:
        start.wait(JOIN)
        for i in range(per_thread):
            put((t, i), i)

    def scraper() -> None:
        start.wait(JOIN)
        while not stop.is_set():
            seen.append(totals())

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    watcher = threading.Thread(target=scraper)
    for w in [*workers, watcher]:
        w.start()
    for w in workers:
        w.join(JOIN)
    stop.set()
    watcher.join(JOIN)
    assert not any(w.is_alive() for w in [*workers, watcher])
    assert seen, "the scraper never scraped"
    assert seen == sorted(seen, key=lambda pair: pair[0]) and seen == sorted(seen, key=lambda pair: pair[1])
    n = threads * per_thread
    size, acquisitions = totals()
    assert size == n
    assert acquisitions == (0 if kind == "Cache" else n)  # one per store; a Cache does not count its lock


# -- OpenTelemetry -------------------------------------------------------------------------------


def test_otel_reports_the_same_figures_as_observable_instruments():
    built = {name: build() for name, build in SCENARIOS.items()}
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        instruments = register_otel(provider.get_meter("test"), maps={name: m for name, (m, _) in built.items()})
        assert len(instruments) == len(METRICS)
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    points: dict = {}
    kinds, units = {}, {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                kinds[metric.name], units[metric.name] = metric.data, metric.unit
                for p in metric.data.data_points:
                    attrs = dict(p.attributes)
                    assert set(attrs) <= {"map", "shard"}, attrs
                    points.setdefault(metric.name, {})[(attrs["map"], attrs.get("shard"))] = p.value
    for name, (_, expected) in built.items():
        got = {}
        for key, otel_name in OTEL.items():
            values = {shard: v for (m, shard), v in points.get(otel_name, {}).items() if m == name}
            if values:
                got[key] = values
        assert got == expected, name
    for metric in METRICS:
        data_kind = kinds[metric.otel]
        if metric.kind == "counter":
            assert isinstance(data_kind, Sum) and data_kind.is_monotonic
        else:
            assert isinstance(data_kind, Gauge)
    assert units["mapsafe.lock.wait"] == "s" and units["mapsafe.size"] == "{entry}"


def test_otel_callbacks_read_the_map_at_each_collection():
    m = mapsafe.SyncMap(stats=True)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        register_otel(provider.get_meter("test"), maps={"m": m})

        def size() -> float:
            for resource in reader.get_metrics_data().resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == "mapsafe.size":
                            return metric.data.data_points[0].value
            raise AssertionError("no mapsafe.size point")

        assert size() == 0
        m["a"] = 1
        m["b"] = 2
        assert size() == 2
    finally:
        provider.shutdown()


# -- bad input and the optional extra ----------------------------------------------------------


@pytest.mark.parametrize("make", [lambda maps: PrometheusCollector(maps=maps),
                                  lambda maps: register_otel(MeterProvider().get_meter("t"), maps=maps)],
                         ids=["PrometheusCollector", "register_otel"])
def test_bad_maps_are_refused_naming_what_is_wrong(make):
    m = mapsafe.SyncMap()
    with pytest.raises(TypeError, match=r"maps must be a mapping of names to maps.*got list"):
        make([m])
    with pytest.raises(TypeError, match=r"maps: each name must be a str, got int 1"):
        make({1: m})
    with pytest.raises(ValueError, match=r"maps: a name must not be empty"):
        make({"": m})
    with pytest.raises(TypeError, match=r"maps\['plain'\] must be a mapsafe SyncMap, LockedMap, ShardedMap or "
                                        r"Cache, got dict$"):
        make({"ok": m, "plain": {}})
    with pytest.raises(TypeError, match=r"maps\['cow'\] must be .* got CopyOnWriteMap$"):
        make({"cow": mapsafe.CopyOnWriteMap()})

    @mapsafe.cached(maxsize=4)
    def f(x):
        return x

    with pytest.raises(TypeError, match=r"got CachedFunction \(for a @cached function, pass its \.cache\)"):
        make({"f": f})
    assert make({"f": f.cache}) is not None  # and that is accepted


def test_register_otel_refuses_a_non_meter():
    with pytest.raises(TypeError, match=r"meter must be an OpenTelemetry Meter .*got MeterProvider"):
        register_otel(MeterProvider(), maps={"m": mapsafe.SyncMap()})


def test_maps_is_keyword_only():
    with pytest.raises(TypeError):
        PrometheusCollector({"m": mapsafe.SyncMap()})


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_import_mapsafe_and_mapsafe_metrics_need_neither_library():
    r = _run("""
        import sys
        import mapsafe, mapsafe.metrics
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("prometheus_client", "opentelemetry"))
        print(loaded)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("blocked, call, package", [
    ("prometheus_client", "PrometheusCollector(maps={})", "prometheus_client"),
    ("opentelemetry", "register_otel(None, maps={})", "opentelemetry-api"),
])
def test_a_missing_library_is_one_line_naming_the_extra(blocked, call, package):
    r = _run(f"""
        import sys
        sys.modules[{blocked!r}] = None  # as if not installed
        from mapsafe.metrics import PrometheusCollector, register_otel
        try:
            {call}
        except ImportError as exc:
            print(repr(str(exc)), exc.__suppress_context__)
    """)
    assert r.returncode == 0, r.stderr
    message, suppressed = r.stdout.strip().rsplit(" ", 1)
    assert "\\n" not in message and suppressed == "True"
    assert f"needs {package}" in message and "pip install 'mapsafe[metrics]'" in message
