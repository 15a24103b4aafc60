"""pytest plugin: `pytest --mapsafe-race` (not implemented yet)."""
