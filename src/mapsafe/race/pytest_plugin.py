"""pytest plugin: `pytest --mapsafe-race` fails each test during which a dict race was found."""

from __future__ import annotations

import fnmatch
import os
import sys
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_load_initial_conftests"]

# The key under which an xdist worker hands its counts to the controller.
_WORKEROUTPUT_KEY = "mapsafe_race"


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
    if not config.getoption("mapsafe_race", False):
        return
    started = config.stash.get(_STARTED_KEY, None)
    if _is_xdist_controller(config):
        # The workers run the tests, each under its own detector; the
        # controller only adds up what they found.
        if started is not None:
            started.stop()
        config.pluginmanager.register(_ControllerPlugin(), "mapsafe-race")
        return
    plugin = _RacePlugin(config, started)
    config.pluginmanager.register(plugin, "mapsafe-race")
    unseen = plugin._started.unseen_modules()
    if unseen:
        # Imported before any plugin could start (an ini filterwarnings entry
        # naming a warning class of the package does that): not instrumented.
        shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"mapsafe race: {len(unseen)} module(s) were imported before the detector started and are "
                f"not instrumented: {shown}"
            ),
            stacklevel=2,
        )


def _is_xdist_controller(config: Any) -> bool:
    # xdist's own test for distribution mode (which it skips for
    # --collect-only); its pytest_cmdline_main has already set these from -n
    # by the time pytest_configure runs.
    return (
        not hasattr(config, "workerinput")
        and not config.getoption("collectonly", False)
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
    )


class _Counts:
    """What the terminal summary reports: tests failed by races, distinct races, races outside tests."""

    def __init__(self) -> None:
        self.failed: set = set()  # node ids of the tests that raced
        self.sites: set = set()  # the site pairs of every race, in the session or any worker
        self.outside: list = []  # full reports of races found outside any test
        self.forgotten = 0  # accesses dropped to keep history bounded (race:history)
        self.history = 0  # that bound

    def to_json(self) -> dict:
        return {
            "failed": sorted(self.failed),
            "sites": sorted([list(a), list(b)] for a, b in self.sites),
            "outside": self.outside,
            "forgotten": self.forgotten,
            "history": self.history,
        }

    def merge(self, doc: dict) -> None:
        self.failed.update(doc["failed"])
        self.sites.update((tuple(a), tuple(b)) for a, b in doc["sites"])
        self.outside.extend(doc["outside"])
        self.forgotten += doc.get("forgotten", 0)
        self.history = doc.get("history", 0)

    def summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("=", "mapsafe race")
        for text in self.outside:
            terminalreporter.write(text)
        terminalreporter.write_line(
            f"{len(self.failed)} test(s) failed by data races; "
            f"{len(self.sites)} distinct data race(s) in this session"
            + (f" ({len(self.outside)} outside any test)" if self.outside else "")
        )
        if self.forgotten:
            from .report import format_summary

            terminalreporter.write(format_summary(0, self.forgotten, self.history))

    def exit_status(self, session: Any) -> None:
        # A race outside every test fails no test, so it must fail the run.
        if self.outside and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


class _ControllerPlugin:
    """Under pytest-xdist's controller: adds up the workers' counts; runs no detector."""

    def __init__(self) -> None:
        self.counts = _Counts()

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        doc = getattr(node, "workeroutput", {}).get(_WORKEROUTPUT_KEY)
        if doc is not None:
            self.counts.merge(doc)

    def pytest_sessionfinish(self, session: Any) -> None:
        self.counts.exit_status(session)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.counts.summary(terminalreporter)


class _Finding:
    """One race as a test's report shows it: in full, or as a reference to where it first was."""

    __slots__ = ("race", "when", "previous", "first")

    def __init__(self, race: Any, when: str, previous: Any, first: str | None) -> None:
        self.race = race
        self.when = when  # the phase it was found in: "setup", "call" or "teardown"
        self.previous = previous  # (nodeid, when) of the previous access, or None outside tests
        self.first = first  # node id of the test with the full report; None: this is it


class _Started:
    """The detector, started: its import hook installed and its patches made.

    Started from ``pytest_load_initial_conftests`` (before pytest imports the
    initial conftest.py files, and whatever they import), or at the latest
    from ``pytest_configure``.
    """

    def __init__(self, config: Any) -> None:
        from .. import config as msconfig
        from . import helpers, hooks, runtime
        from .report import Frames
        from .rewrite import RaceImportHook, _InstrumentingLoader
        from .suppress import Suppressions

        cfg = msconfig.load(["race"], pyproject=_pyproject(config))
        self.frames = Frames(cfg.race_strip_path_prefix, str(config.rootpath))
        self.history = cfg.race_history
        self.detector = runtime.Detector(
            # The timeline tells tests apart by slot number: slots are never reused.
            None, history=self.history, reuse_slots=False,
            suppressed=Suppressions.load(cfg.race_suppress) if cfg.race_suppress else Suppressions(),
        )
        from _pytest import fixtures, python

        from . import shadow

        # Stacks end where pytest calls the test or fixture function (unittest
        # test methods included), and where the import system runs a test
        # module's body (collection).
        import unittest.case

        from _pytest import unittest as pytest_unittest

        shadow.STOP_FILES.update(
            (python.__file__, fixtures.__file__, pytest_unittest.__file__, unittest.case.__file__,
             "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
        )
        hooks.install()
        helpers.start(self.detector)
        self._suppressions = self.detector.suppressed
        os.register_at_fork(after_in_child=self._after_fork_in_child)
        self.hook = RaceImportHook([str(config.rootpath)], cfg.race_include)
        self.hook.install()
        patterns = list(config.getini("python_files")) + ["conftest.py"]
        namespace = getattr(config, "known_args_namespace", None)

        def assertion_rewrite(tree: Any, source: bytes, path: str) -> None:
            # Keep pytest's assertion rewriting for the test modules we instrument.
            # (Read from the early namespace: config.option is filled in later.)
            mode = getattr(config.option, "assertmode", None) or getattr(namespace, "assertmode", "rewrite")
            if mode == "rewrite" and any(fnmatch.fnmatch(os.path.basename(path), p) for p in patterns):
                from _pytest.assertion.rewrite import rewrite_asserts

                rewrite_asserts(tree, source, path, config)

        _InstrumentingLoader.pre_rewrite = staticmethod(assertion_rewrite)
        self._loader = _InstrumentingLoader
        self._include = cfg.race_include

    def _after_fork_in_child(self) -> None:
        """A test forked (a process pool, os.fork): the child must not inherit a
        detector lock held by a thread that no longer exists there. It gets a
        detector of its own, which prints what it finds to stderr."""
        from . import helpers, runtime
        from .report import format_race

        if helpers.active_detector() is not self.detector:
            return
        frames = self.frames

        def sink(race: Any) -> None:
            text = format_race(race, frames)
            label = f"WARNING: DATA RACE (in child process {os.getpid()})"
            sys.stderr.write(text.replace("WARNING: DATA RACE", label, 1))

        helpers.start(runtime.Detector(
            sink, history=self.history, reuse_slots=False, suppressed=self._suppressions
        ))

    def unseen_modules(self) -> list:
        """Modules the hook would instrument that were imported before it started."""
        from . import helpers

        out = []
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None)
            # The loader puts the helpers in every module it instruments.
            if origin and origin.endswith(".py") and helpers.NAMESPACE not in getattr(module, "__dict__", {}):
                if self.hook.wanted(name, origin) and not _is_plugin_module(name):
                    out.append(name)
        return sorted(out)

    def stop(self) -> None:
        from . import helpers

        self.hook.uninstall()
        self._loader.pre_rewrite = None
        helpers.stop()


def _is_plugin_module(name: str) -> bool:
    return name == "conftest" or name.endswith(".conftest") or name.startswith(("mapsafe", "_pytest", "pytest"))


_STARTED_KEY = pytest.StashKey["_Started"]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> None:
    # As early as a plugin can start: before pytest imports the initial
    # conftest.py files, which often import the package under test.
    if getattr(early_config.known_args_namespace, "mapsafe_race", False):
        early_config.stash[_STARTED_KEY] = _Started(early_config)


class _RacePlugin:
    """Runs the detector for the whole session and attributes races to tests.

    A race belongs to the test phase during which it was reported (the
    current access); its previous access is placed by epoch (see
    ``attribution.Timeline``). Races found in setup are shown on the call
    report, so the test still runs; races in teardown fail the teardown.
    """

    def __init__(self, config: Any, started: "_Started | None" = None) -> None:
        from .attribution import Timeline

        self.config = config
        started = started or _Started(config)
        self.detector = started.detector
        self.frames = started.frames
        self._started = started
        self.timeline = Timeline(self.detector)
        # All of the following is touched only by the thread running pytest's hooks.
        self.taken = 0  # races before this index in detector.races have been attributed
        self.first: dict = {}  # site pair -> node id of the test that showed it in full
        self.pending: dict = {}  # node id -> findings from a passed setup, shown on its call report
        self.counts = _Counts()

    # -- phases ----------------------------------------------------------
    #
    # tryfirst wrappers: the phase begins before any other plugin's part of
    # it, and our report change is the last word on the outcome (after
    # skipping's xfail handling, so a racy xfail test still fails).

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: Any) -> Any:
        self._sweep_outside()
        # De-duplication is per test: the detector reports a site pair again
        # in each test that hits it; self.first decides full report or reference.
        with self.detector.lock:
            self.detector.seen.clear()
        self.timeline.begin((item.nodeid, "setup"))
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        self.timeline.begin((item.nodeid, "call"))
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Any:
        self.timeline.begin((item.nodeid, "teardown"))
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        report = yield
        nodeid = item.nodeid
        findings = self.pending.pop(nodeid, []) + self._take(nodeid, call.when)
        if findings and call.when == "setup" and report.passed:
            self.pending[nodeid] = findings  # shown once the test itself has run
        elif findings:
            self.counts.failed.add(nodeid)
            _fail(report, self._describe(nodeid, findings))
        return report

    def _take(self, nodeid: str, when: str) -> list:
        """The races reported since the last call, as findings of this phase."""
        with self.detector.lock:
            races = self.detector.races[self.taken:]
        self.taken += len(races)
        out = []
        for race in races:
            pair = race.site_pair()
            self.counts.sites.add(pair)
            first = self.first.setdefault(pair, nodeid)
            previous = self.timeline.label_of(race.previous.tid, race.previous.clk)
            out.append(_Finding(race, when, previous, None if first == nodeid else first))
        return out

    def _sweep_outside(self) -> None:
        """Races reported between tests (collection, a stray thread) belong to no test."""
        from .report import format_race

        with self.detector.lock:
            races = self.detector.races[self.taken:]
        self.taken += len(races)
        for race in races:
            self.counts.sites.add(race.site_pair())
            self.counts.outside.append(
                "mapsafe race: data race outside any test (during collection or between tests)\n"
                + format_race(race, self.frames)
            )

    # -- reports ---------------------------------------------------------

    def _describe(self, nodeid: str, findings: list) -> str:
        from .report import format_race, format_summary

        lines = [f"mapsafe race: {len(findings)} data race(s) while running {nodeid}\n"]
        for f in findings:
            during = "" if f.when == "call" else f" (during {f.when})"
            spans = ""
            if f.previous is None:
                spans = "the previous access was outside any test (during collection or between tests)"
            elif f.previous[0] != nodeid:
                spans = (
                    f"this race spans tests: the previous access was in {f.previous[0]} ({f.previous[1]}), "
                    f"the current one in {nodeid} ({f.when})"
                )
            if f.first is not None:
                a, b = (f"{self.frames.path(file)}:{line}" for file, line in f.race.site_pair())
                lines.append(
                    f"same race as reported in {f.first} (site {a} / {b}){during}"
                    + (f"; {spans}" if spans else "") + "\n"
                )
                continue
            if during:
                lines.append(f"During {f.when} (a fixture):\n")
            lines.append(format_race(f.race, self.frames))
            if spans:
                lines.append(spans[0].upper() + spans[1:] + ".\n")
        lines.append(format_summary(len(findings)))
        return "".join(lines)

    # -- session ---------------------------------------------------------

    def pytest_sessionfinish(self, session: Any) -> None:
        self._sweep_outside()
        self.counts.exit_status(session)
        self.counts.forgotten, self.counts.history = self.detector.shadow.forgotten(), self._started.history
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller adds these up
            workeroutput[_WORKEROUTPUT_KEY] = self.counts.to_json()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.counts.summary(terminalreporter)

    def pytest_unconfigure(self, config: Any) -> None:
        self._started.stop()


def _fail(report: Any, text: str) -> None:
    """Make ``report`` a failure that shows ``text``, keeping any failure it already had."""
    if report.failed and report.longrepr is not None:
        report.longrepr = _WithRaces(report.longrepr, text)
        return
    try:
        raise pytest.fail.Exception(text, pytrace=False)
    except pytest.fail.Exception:
        # A real exception's repr: its reprcrash gives the short summary line.
        report.longrepr = pytest.ExceptionInfo.from_current().getrepr(style="value")
    report.outcome = "failed"
    if hasattr(report, "wasxfail"):  # a racy xfail test fails like any other
        del report.wasxfail


class _WithRaces:
    """A failure's own repr, then the race reports."""

    def __init__(self, original: Any, text: str) -> None:
        self.original = original
        self.text = text

    @property
    def reprcrash(self) -> Any:
        # The short summary keeps naming the test's own error. There is
        # deliberately no reprtraceback: xdist then sends str(self) whole.
        return getattr(self.original, "reprcrash", None)

    def toterminal(self, tw: Any) -> None:
        if hasattr(self.original, "toterminal"):
            self.original.toterminal(tw)
        else:
            tw.line(str(self.original))
        tw.line("")
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return f"{self.original}\n\n{self.text}"


def _pyproject(config: Any) -> Any:
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None
