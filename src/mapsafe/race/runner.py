"""Run a script or module as __main__ under the detector, as plain `python` would."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import DataRaceError, UsageError
from . import helpers, hooks, kinds, runtime
from .report import Frames, format_race, format_summary, write_json
from .rewrite import RaceImportHook, compile_instrumented
from .shadow import HISTORY
from .suppress import Suppressions

__all__ = ["Options", "Session"]

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
# Frames python itself leaves out of tracebacks of a script's errors: runpy's,
# and the import system's (python drops those for errors raised while importing).
_RUNPY = (
    "<frozen runpy>",
    os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "runpy.py"),
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
)


@dataclass
class Options:
    """Resolved `mapsafe race` settings (see mapsafe.config rows race:*)."""

    exitcode: int = 66
    include: list = field(default_factory=list)
    suppress: str = ""
    strip_path_prefix: str = ""
    halt_on_error: bool = False
    json: str = ""
    history: int = HISTORY


def _hidden(filename: str) -> bool:
    return filename.startswith(_HERE) or filename in _RUNPY


def strip_traceback(exc: BaseException | None, seen: set | None = None) -> None:
    """Remove the detector's own frames from ``exc`` and its chained exceptions."""
    seen = set() if seen is None else seen
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        entries = []
        tb = exc.__traceback__
        while tb is not None:
            if not _hidden(tb.tb_frame.f_code.co_filename):
                entries.append(tb)
            tb = tb.tb_next
        new = None
        for entry in reversed(entries):
            new = types.TracebackType(new, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
        exc.__traceback__ = new
        if exc.__cause__ is not None:
            strip_traceback(exc.__cause__, seen)
        exc = exc.__context__


class Session:
    """One detector run: set up, run the target, wait for threads, report."""

    def __init__(self, options: Options, stderr: Any = None) -> None:
        self.options = options
        self.stderr = stderr or sys.stderr
        self.suppressions = Suppressions.load(options.suppress) if options.suppress else Suppressions()
        self.frames = Frames(options.strip_path_prefix)
        self.detector = self._new_detector()
        self.hook: RaceImportHook | None = None
        self.pid = os.getpid()  # the process this session runs in; a forked child changes it
        self._real_exit = os._exit  # the unpatched os._exit, for _halt (_start takes it again before patching)

    def _new_detector(self) -> runtime.Detector:
        return runtime.Detector(
            self._print_race,
            halt_on_error=self.options.halt_on_error,
            halt=self._halt,
            history=self.options.history,
            suppressed=self.suppressions,
            warn=lambda msg: self.stderr.write(msg + "\n"),
        )

    def _print_race(self, race: Any) -> None:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        text = format_race(race, self.frames)
        if self.forked:
            text = text.replace("WARNING: DATA RACE", f"WARNING: DATA RACE (in child process {os.getpid()})", 1)
        self.stderr.write(text)
        self.stderr.flush()

    def _halt(self, race: Any) -> None:
        """--halt-on-error, at the first race (already printed): give the
        summary and the --json report, then end the process with the race
        exit status, as Go's -race halt does. Not an exception: a program
        that catches RuntimeError, or any exception, must not swallow it.
        No user code runs from here on (no finally, no atexit handler), and
        the other threads stop where they are."""
        try:
            self._flush()
            status = self.options.exitcode if self._report() is not None else 2
            self._flush()
        except BaseException:  # the process ends anyway; the race is already on stderr
            status = self.options.exitcode
        self._real_exit(status)

    @property
    def forked(self) -> bool:
        return self.pid != self._parent_pid

    _parent_pid = os.getpid()

    def _after_fork_in_child(self) -> None:
        """os.fork() returned in the child. The parent's other threads are gone
        there, and a detector lock one of them held stays held for good: the
        child's first access would hang. So the child drops the parent's
        detector, with its history (the processes share no memory from now
        on, so no race can span them), and starts one of its own."""
        if helpers.active_detector() is None:  # this session is over
            return
        self.pid = os.getpid()
        self.detector = self._new_detector()
        helpers.start(self.detector)

    # -- targets ---------------------------------------------------------

    def run_script(self, path: str, args: list) -> int:
        """``python PATH``: a file, or a directory holding ``__main__.py`` (as python runs one)."""
        if path == "-":
            return self.run_source(sys.stdin.buffer.read(), "<stdin>", "-", args)
        main = path
        if os.path.isdir(path):
            main = os.path.join(path, "__main__.py")
            if not os.path.isfile(main):
                raise UsageError(f"can't find '__main__' module in {path!r}")
        elif not os.path.isfile(path):
            raise UsageError(f"can't open file {path!r}: no such file")
        try:
            with open(main, "rb") as fh:
                source = fh.read()
        except OSError as exc:
            raise UsageError(f"can't open file {main!r}: {exc.strerror}") from None
        # sys.path[0] is the script's directory, or the directory itself.
        directory = os.path.realpath(path) if main != path else os.path.dirname(os.path.realpath(path))
        # __file__ as python 3.9+ reports it: absolute for a script, as given for a directory's __main__.py.
        return self.run_source(source, os.path.abspath(main) if main == path else main, path, args, directory)

    def run_source(self, source: bytes | str, filename: str, argv0: str, args: list,
                   directory: str | None = None) -> int:
        """Run ``source`` as __main__, as python runs a script (``directory`` set) or ``-c``/stdin
        (``directory`` None: sys.path[0] is '' and modules in the current directory are instrumented)."""
        self._start([directory or os.getcwd()])
        sys.argv[:] = [argv0, *args]
        sys.path[0] = directory if directory is not None else ""
        try:
            code = compile_instrumented(source, filename)
        except (SyntaxError, ValueError) as exc:
            # As python does: the error, without a traceback, exit status 1.
            import traceback

            self._flush()
            traceback.print_exception(type(exc), exc, None)
            return self._finish(1)
        module = types.ModuleType("__main__")
        module.__dict__.update(__cached__=None, __spec__=None, __loader__=None)
        if directory is not None:
            module.__file__ = filename  # python sets no __file__ for -c or stdin
        module.__dict__.update(helpers.HELPERS)
        sys.modules["__main__"] = module
        return self._finish(self._call(lambda: exec(code, module.__dict__)))

    def run_module(self, name: str, args: list) -> int:
        import runpy

        sys.path[0] = os.getcwd()
        top = name.partition(".")[0]
        if not name or any(not part.isidentifier() for part in name.split(".")):
            raise UsageError(f"bad module name {name!r}")
        try:
            top_spec = importlib.machinery.PathFinder.find_spec(top, sys.path)
        except (ImportError, ValueError):
            top_spec = None
        roots = []
        if top_spec is not None and top_spec.origin and os.path.isfile(top_spec.origin):
            roots.append(os.path.dirname(top_spec.origin))
        self._start(roots)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            self._stop()
            raise UsageError(f"no module named {name!r}")
        if spec.origin and os.path.isfile(spec.origin) and self.hook is not None:
            self.hook.roots += (os.path.join(os.path.dirname(os.path.realpath(spec.origin)), ""),)
        sys.argv[:] = [spec.origin or name, *args]
        return self._finish(
            self._call(
                lambda: runpy.run_module(name, init_globals=dict(helpers.HELPERS), run_name="__main__", alter_sys=True)
            )
        )

    # -- plumbing --------------------------------------------------------

    def _start(self, roots: list) -> None:
        hooks.install()
        self._parent_pid = os.getpid()
        helpers.start(self.detector)
        os.register_at_fork(after_in_child=self._after_fork_in_child)
        self._real_exit = os._exit
        os._exit = self._child_exit(os._exit)
        self.hook = RaceImportHook(roots, self.options.include)
        self.hook.install()
        default = threading.excepthook

        def excepthook(args: Any) -> None:
            strip_traceback(args.exc_value)
            tb = args.exc_value.__traceback__ if args.exc_value is not None else args.exc_traceback
            default(threading.ExceptHookArgs((args.exc_type, args.exc_value, tb, args.thread)))

        threading.excepthook = excepthook

    def _stop(self) -> None:
        if self.hook is not None:
            self.hook.uninstall()

    def _flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def _call(self, body: Callable[[], Any]) -> int:
        """Run the program; its exit status as `python` would give it."""
        try:
            body()
            status = 0
        except SystemExit as exc:
            status = self._exit_status(exc.code)
        except KeyboardInterrupt as exc:
            self._print_exception(exc)
            status = 130
        except BaseException as exc:  # the user's own exception: print it as python would
            self._print_exception(exc)
            status = self.options.exitcode if isinstance(exc, DataRaceError) else 1
        self._wait_for_threads()
        return status

    def _print_exception(self, exc: BaseException) -> None:
        strip_traceback(exc)
        self._flush()
        sys.excepthook(type(exc), exc, exc.__traceback__)

    def _exit_status(self, code: Any) -> int:
        if code is None:
            return 0
        if isinstance(code, int) and not isinstance(code, bool):
            return code & 0xFF if code >= 0 else code % 256
        self._flush()
        print(code, file=sys.stderr)
        return 1

    def _wait_for_threads(self) -> None:
        """What the interpreter does at exit, in its order, done before the
        report so that it includes every race: threading's own exit hooks
        (the executors' wake-ups of their idle workers), the join of every
        non-daemon thread, then the atexit handlers. Each runs once: at the
        real exit, threading finds itself shut down and atexit has nothing
        left to run. An exception raised meanwhile (a signal handler's
        ``sys.exit()``, a Ctrl-C) is ignored and printed, as python's own
        shutdown does, and the exit status stays the program's."""
        import atexit

        try:
            threading._shutdown()
        except BaseException as exc:
            strip_traceback(exc)
            self._flush()
            import traceback

            if sys.version_info < (3, 13):  # 3.13 prints the traceback alone
                sys.stderr.write(f"Exception ignored in: {threading!r}\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        atexit._run_exitfuncs()

    def _finish(self, status: int) -> int:
        races = self._report()
        if races is None:
            return status or 2
        if races and status == 0:
            return self.options.exitcode
        return status

    def _report(self) -> list | None:
        """Close the detector and give the summary and the --json report: the
        races found, or None when the report could not be written."""
        races = self.detector.close()
        forgotten = self.detector.shadow.forgotten()
        self._flush()
        suppressed = self.detector.suppressed_count
        if races or forgotten or suppressed:
            self.stderr.write(format_summary(len(races), forgotten, self.options.history, suppressed,
                                             self.options.suppress))
        for name in kinds.untracked():
            self.stderr.write(f"mapsafe race: not tracked: {name} objects, a mutable mapping or set the detector "
                              "cannot see inside: races on them are not reported\n")
        self.stderr.flush()
        if self.options.json:
            # A forked child writes its own report, FILE.PID, never the parent's FILE.
            path = f"{self.options.json}.{os.getpid()}" if self.forked else self.options.json
            try:
                write_json(path, races, self.frames, self.detector.suppressed_count, forgotten)
            except OSError as exc:
                self.stderr.write(f"mapsafe race: error: cannot write the --json report {path}: {exc.strerror} "
                                  "(the races above are all there is of it)\n")
                return None
        return races

    def _child_exit(self, real_exit: Callable[[int], Any]) -> Callable[[int], Any]:
        """``os._exit`` for the program: in a forked child (multiprocessing's
        fork workers end this way, skipping every exit hook) the child's
        report is given first. The exit status is left as the program gave it."""

        def _exit(status: int, /) -> Any:
            if self.forked and helpers.active_detector() is self.detector:
                try:
                    self._report()
                except BaseException:  # the child is exiting: never stop it
                    pass
            return real_exit(status)

        return _exit
