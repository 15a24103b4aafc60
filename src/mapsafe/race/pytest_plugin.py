"""pytest plugin: `pytest --mapsafe-race` fails each test during which a dict race was found."""

from __future__ import annotations

import fnmatch
import os
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("mapsafe")
    group.addoption(
        "--mapsafe-race",
        action="store_true",
        default=False,
        help="run tests under the mapsafe dict race detector; a race fails the test that was running",
    )


def pytest_configure(config: Any) -> None:
    # Nothing is imported or patched unless the option is given: the plugin
    # is loaded (by entry point) in every pytest run.
    if config.getoption("mapsafe_race", False):
        config.pluginmanager.register(_RacePlugin(config), "mapsafe-race")


class _RacePlugin:
    """Runs the detector for the whole session and attributes races to tests."""

    def __init__(self, config: Any) -> None:
        from .. import config as msconfig
        from . import helpers, hooks, runtime
        from .report import Frames
        from .rewrite import RaceImportHook, _InstrumentingLoader
        from .suppress import Suppressions

        cfg = msconfig.load(["race"], pyproject=_pyproject(config))
        self.frames = Frames(cfg.race_strip_path_prefix, str(config.rootpath))
        self.detector = runtime.Detector(
            None, suppressed=Suppressions.load(cfg.race_suppress) if cfg.race_suppress else Suppressions()
        )
        from _pytest import fixtures, python

        from . import shadow

        # Stacks end where pytest calls the test or fixture function.
        shadow.STOP_FILES.update((python.__file__, fixtures.__file__))
        hooks.install()
        helpers.start(self.detector)
        self.hook = RaceImportHook([str(config.rootpath)], cfg.race_include)
        self.hook.install()
        patterns = list(config.getini("python_files")) + ["conftest.py"]

        def assertion_rewrite(tree: Any, source: bytes, path: str) -> None:
            # Keep pytest's assertion rewriting for the test modules we instrument.
            if config.getoption("assertmode") == "rewrite" and any(
                fnmatch.fnmatch(os.path.basename(path), p) for p in patterns
            ):
                from _pytest.assertion.rewrite import rewrite_asserts

                rewrite_asserts(tree, source, path, config)

        _InstrumentingLoader.pre_rewrite = staticmethod(assertion_rewrite)
        self._loader = _InstrumentingLoader

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        before = len(self.detector.races)
        result = yield
        found = self.detector.races[before:]
        if found:
            from .report import format_race, format_summary

            text = "".join(format_race(r, self.frames) for r in found)
            raise pytest.fail.Exception(
                f"mapsafe race: {len(found)} data race(s) while running {item.nodeid}\n{text}"
                + format_summary(len(found)),
                pytrace=False,
            )
        return result

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        races = self.detector.races
        if races:
            terminalreporter.write_sep("=", "mapsafe race")
            terminalreporter.write_line(f"Found {len(races)} data race(s) in this session")

    def pytest_unconfigure(self, config: Any) -> None:
        from . import helpers

        self.hook.uninstall()
        self._loader.pre_rewrite = None
        helpers.stop()


def _pyproject(config: Any) -> Any:
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None
