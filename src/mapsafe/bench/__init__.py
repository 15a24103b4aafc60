"""mapsafe bench (see cli.py in this package)."""
