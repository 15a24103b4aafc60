"""PrometheusCollector: mapsafe maps' counters as a prometheus_client custom collector."""

from __future__ import annotations

from typing import Any, Iterator

from ._extra import require
from ._figures import METRICS, check_maps, read

__all__ = ["PrometheusCollector"]


class PrometheusCollector:
    """A prometheus_client collector for mapsafe maps: ``registry.register(PrometheusCollector(maps={...}))``.

    ``maps`` maps a name (the ``map`` label) to a SyncMap, LockedMap,
    ShardedMap or Cache. Each scrape exports what each map counts, per
    shard for a ShardedMap's lock, size, evictions and expirations (label
    ``shard``); it never exports a zero for a counter the map does not keep
    (lock and hit/miss counters need ``stats=True``; a Cache always counts
    hits and misses, never its lock).

    ``collect()`` takes no lock of any map, so a scrape never waits for a
    writer, or makes one wait; the price is that figures read a moment
    apart may be a few operations stale with respect to each other. Use
    one collector per registry for all maps: two would export the same
    metric names, which the registry refuses. Several scrapes may run at
    once; the collector holds only its immutable list of maps (and keeps
    them alive).
    """

    __slots__ = ("_maps", "_core")

    def __init__(self, *, maps: Any) -> None:
        self._core = require("mapsafe.metrics.PrometheusCollector", "prometheus_client.core", "prometheus_client")
        self._maps = check_maps(maps)  # (name, map, reader) triples; set once

    def _families(self) -> dict[str, Any]:
        core = self._core
        out = {}
        for metric in METRICS:
            cls = core.CounterMetricFamily if metric.kind == "counter" else core.GaugeMetricFamily
            out[metric.key] = cls(metric.prometheus, metric.help, unit=metric.unit)
        return out

    def describe(self) -> list[Any]:
        """The metric families, without samples: what the registry checks names against."""
        return list(self._families().values())

    def collect(self) -> Iterator[Any]:
        """One family per metric that some map keeps, with a sample per map (and shard)."""
        families = self._families()
        suffix = {metric.key: "_total" if metric.kind == "counter" else "" for metric in METRICS}
        for figure in read(self._maps):
            labels = {"map": figure.map} if figure.shard is None else {"map": figure.map, "shard": figure.shard}
            family = families[figure.metric]
            family.add_sample(family.name + suffix[figure.metric], labels, figure.value)
        return (family for family in families.values() if family.samples)

    def __repr__(self) -> str:
        return f"<mapsafe.metrics.PrometheusCollector maps={[name for name, _, _ in self._maps]}>"
