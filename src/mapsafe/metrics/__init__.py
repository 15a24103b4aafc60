"""mapsafe.metrics: maps' counters for Prometheus and OpenTelemetry (the ``mapsafe[metrics]`` extra)."""

from ._otel import register_otel
from ._prometheus import PrometheusCollector

__all__ = ["PrometheusCollector", "register_otel"]
