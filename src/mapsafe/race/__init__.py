"""The dict race detector behind `mapsafe race` and `pytest --mapsafe-race`."""

__all__: list = []  # everything is reached through the CLI and the pytest plugin
