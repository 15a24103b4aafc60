"""mapsafe bench: concurrent maps measured side by side, checked, and compared."""

__all__: list[str] = []
