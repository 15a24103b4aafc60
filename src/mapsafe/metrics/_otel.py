"""register_otel: mapsafe maps' counters as OpenTelemetry observable instruments."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ._extra import require
from ._figures import METRICS, Checked, check_maps, read

__all__ = ["register_otel"]


def register_otel(meter: Any, *, maps: Any) -> list[Any]:
    """Observable instruments on ``meter`` reporting the maps' counters; returns them.

    The same figures, from the same lock-free reads, as PrometheusCollector:
    one observable counter per counter (``mapsafe.lock.acquisitions``,
    ``mapsafe.lock.contended``, ``mapsafe.lock.wait`` in seconds,
    ``mapsafe.hits``, ``mapsafe.misses``, ``mapsafe.evictions``,
    ``mapsafe.expirations``) and an observable gauge ``mapsafe.size``, with
    attributes ``map`` and, for a ShardedMap's per-shard figures, ``shard``.
    OpenTelemetry's Prometheus naming turns these into PrometheusCollector's
    names. Call it once per meter with every map: OpenTelemetry keeps the
    first instrument of a name, so a second call's maps would not report.
    """
    observation = require("mapsafe.metrics.register_otel", "opentelemetry.metrics", "opentelemetry-api").Observation
    for method in ("create_observable_counter", "create_observable_gauge"):
        if not callable(getattr(meter, method, None)):
            raise TypeError(f"meter must be an OpenTelemetry Meter (metrics.get_meter(...)), "
                            f"got {type(meter).__name__}, which has no {method}()")
    checked = check_maps(maps)
    instruments = []
    for metric in METRICS:
        create = meter.create_observable_counter if metric.kind == "counter" else meter.create_observable_gauge
        callback = _observer(checked, metric.key, observation)
        instruments.append(create(metric.otel, callbacks=[callback], unit=metric.otel_unit, description=metric.help))
    return instruments


def _observer(maps: Checked, key: str, observation: type) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> list[Any]:
        return [
            observation(f.value, {"map": f.map} if f.shard is None else {"map": f.map, "shard": f.shard})
            for f in read(maps)
            if f.metric == key
        ]

    return observe
