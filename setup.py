"""Builds the optional C core (mapsafe._speedups); everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled, pip installs the
pure-Python core, and `import mapsafe` says so with a RuntimeWarning.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mapsafe._speedups",
            ["src/mapsafe/_speedups.c"],
            optional=True,
        )
    ]
)
