"""Builds the optional C cores; everything else is in pyproject.toml.

mapsafe._speedups holds the maps' hot paths, mapsafe.race._racecore the
race detector's per-operation dispatch. Both are optional: where they
cannot be compiled, pip installs the pure-Python cores, and `import
mapsafe` says so with a RuntimeWarning.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("mapsafe._speedups", ["src/mapsafe/_speedups.c"], optional=True),
        Extension("mapsafe.race._racecore", ["src/mapsafe/race/_racecore.c"], optional=True),
    ]
)
