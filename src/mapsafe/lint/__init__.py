"""mapsafe lint (see cli.py in this package)."""
