"""mapsafe race (see cli.py in this package)."""
