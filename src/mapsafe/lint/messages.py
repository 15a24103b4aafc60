"""One class per kind of lint finding: a code, a message template and its arguments."""

from __future__ import annotations

__all__ = [
    "Finding",
    "SyntaxErrorFinding",
    "MutationDuringIteration",
    "UnprotectedSharedWrite",
    "UnprotectedSharedIteration",
    "CheckThenAct",
    "InconsistentLocking",
    "UnboundedMemoCache",
    "InternalErrorFinding",
    "RULES",
    "rule_for",
]


class Finding:
    """One finding at one place; subclasses fix the code, template and rule metadata.

    Rules only create these; reporters (report_text, report_json,
    report_sarif) turn them into text. ``line`` and ``col`` are 1-based,
    ``col`` counts characters (not bytes), and ``end_*`` is exclusive like
    the AST's.
    """

    code = "MS"
    name = "finding"  # a stable kebab-case name, used as the SARIF rule name
    severity = "warning"  # "error", "warning" or "note"
    template = "%s"
    summary = ""  # one line: what the rule finds (SARIF shortDescription)
    explanation = ""  # why it matters and how to fix it (SARIF fullDescription/help)
    # Off unless --select (or lint:select) names it: a rule whose findings on real code are
    # mostly judgement calls the linter cannot make (MS301 cannot see that a key space is bounded).
    opt_in = False

    __slots__ = ("path", "line", "col", "end_line", "end_col", "args", "trace")

    def __init__(self, path: str, line: int, col: int, end_line: int, end_col: int, *args: object) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.end_line = end_line
        self.end_col = end_col
        self.args = args
        # For thread findings: the calls from the thread's start to this line,
        # as (step, path, line): the entry, each call on the way, the access.
        self.trace: tuple[tuple[str, str, int], ...] = ()

    @property
    def path_text(self) -> str:
        """'Poller.run (thread via ...) at svc.py:40 → Store.refresh at svc.py:52 → store.py:88', or ''."""
        if not self.trace:
            return ""
        *calls, last = self.trace
        return " → ".join([*(f"{step} at {path}:{line}" for step, path, line in calls), last[0]])

    @property
    def message(self) -> str:
        return self.template % self.args

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.col, self.code)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return (self.code, self.path, self.line, self.col, self.message) == (
            other.code,
            other.path,
            other.line,
            other.col,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.path, self.line, self.col))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}:{self.line}:{self.col}: {self.code} {self.message}>"


class SyntaxErrorFinding(Finding):
    code = "MS000"
    name = "syntax-error"
    severity = "error"
    template = "cannot parse this file: %s; no other rule could check it"
    summary = "The file is not valid Python, so it could not be checked."
    explanation = (
        "mapsafe lint parses each file with the running Python's parser. A file that does not "
        "parse gets this one finding and no others. Fix the syntax error, or exclude the file."
    )


class MutationDuringIteration(Finding):
    code = "MS101"
    name = "dict-mutated-during-iteration"
    severity = "error"
    template = (
        "%r changes its keys (%s) inside the loop over it at line %d, which raises RuntimeError "
        "or skips keys; iterate over a copy such as %s"
    )
    summary = "A dict's key set is changed inside a loop that iterates that same dict."
    explanation = (
        "Adding or removing keys while iterating a dict (or its keys(), items() or values() view) "
        "raises 'RuntimeError: dictionary changed size during iteration', or, when the size ends up "
        "the same, silently skips or repeats keys. Iterate over a copy (list(d), dict(d), d.copy(), "
        "sorted(d)), collect the changes and apply them after the loop, or stop the loop right after "
        "the change with break or return. Updating the value of the key being visited is fine."
    )


class UnprotectedSharedWrite(Finding):
    code = "MS201"
    name = "unprotected-shared-dict-write"
    severity = "warning"
    template = (
        "unprotected write to shared dict %r from thread code (%s), and %s: "
        "guard every use with one lock, or use mapsafe.SyncMap"
    )
    summary = ("Thread code writes a shared dict without a lock while another thread walks it or "
               "checks-then-acts on it.")
    explanation = (
        "A single dict operation is atomic, but nothing orders this write against the other "
        "thread's walk (which may raise RuntimeError or skip keys while it happens) or between its "
        "check and its act (whose update is then lost). Another thread's single reads and writes are "
        "not at risk. Protect every access with the same threading.Lock, or replace the dict with "
        "mapsafe.SyncMap / LockedMap, whose operations are safe to share."
    )


class UnprotectedSharedIteration(Finding):
    code = "MS202"
    name = "unprotected-shared-dict-iteration"
    severity = "error"
    template = (
        "iterating shared dict %r without a lock can raise RuntimeError, because %s: "
        "hold the lock that guards its writes, or iterate a snapshot taken under it"
    )
    summary = "A dict is iterated without a lock while another thread may change it."
    explanation = (
        "Iterating a dict while another thread adds or removes keys raises 'RuntimeError: "
        "dictionary changed size during iteration' at random. Hold the lock that guards the writes "
        "for the whole loop, or copy the dict under that lock and iterate the copy. "
        "mapsafe.SyncMap and LockedMap iterate a point-in-time snapshot and never raise."
    )


class CheckThenAct(Finding):
    code = "MS203"
    name = "shared-dict-check-then-act"
    severity = "error"
    template = "%s on shared dict %r without a lock loses updates, because %s; %s"
    summary = "Check-then-act or read-modify-write on a shared dict without a lock."
    explanation = (
        "'if k not in d: d[k] = v', 'd[k] = d.get(k, 0) + 1' and 'd[k] += 1' are two dict "
        "operations: another thread can run between them, and one of the two updates is lost. "
        "Use one atomic operation (d.setdefault(k, v); mapsafe's compute_if_absent or merge), or "
        "hold a lock around both steps."
    )


class InconsistentLocking(Finding):
    code = "MS204"
    name = "shared-dict-inconsistent-locking"
    severity = "error"
    template = (
        "shared dict %r is guarded by %s here but by %s at %s, and another thread runs that code: "
        "two different locks do not exclude each other; guard every use with the same lock"
    )
    summary = ("Two uses of one shared dict, in different threads, hold different locks, and one can "
               "break the other.")
    explanation = (
        "A lock only protects a dict if every thread that uses the dict holds the same lock. Here "
        "two uses hold different locks, so they can run at the same time (Eraser's lockset rule), "
        "and one of them writes what the other walks or checks-then-acts on. "
        "Pick one lock for the dict and take it everywhere, or use mapsafe.SyncMap / LockedMap."
    )


class UnboundedMemoCache(Finding):
    code = "MS301"
    name = "unbounded-memo-cache"
    severity = "warning"
    opt_in = True  # 0 of 6 true on 11 real trees: their key spaces were bounded in practice
    template = (
        "module-level %s %r memoizes %s() but nothing ever evicts from it, so it grows without "
        "bound; use a bounded cache such as @mapsafe.cached(maxsize=...), mapsafe.Cache(maxsize=...), "
        "functools.lru_cache(maxsize=...) or mapsafe.ShardedMap(maxsize=..., ttl=...)"
    )
    summary = (
        "A module-level dict (or mapsafe.Cache(maxsize=None)) used as a memo cache that is never "
        "evicted, cleared or size-checked."
    )
    explanation = (
        "A module-level dict that stores a computed value under a key made from a function's "
        "arguments, and is never popped, cleared or size-checked, keeps every distinct argument "
        "alive for the life of the process: a memory leak under varied input. So does a "
        "mapsafe.Cache built with maxsize=None and no max_weight=, ttl= or tti=. Bound it with "
        "@mapsafe.cached(maxsize=...) or mapsafe.Cache(maxsize=...), which also load each key at "
        "most once, or with functools.lru_cache(maxsize=...) or mapsafe.ShardedMap(maxsize=..., ttl=...)."
    )


class InternalErrorFinding(Finding):
    code = "MS900"
    name = "internal-error"
    severity = "error"
    template = "internal error in %s while checking this file: %s (please report it; other rules still ran)"
    summary = "A mapsafe lint rule crashed on this file; its findings for the file are missing."
    explanation = (
        "This is a bug in mapsafe, not in the checked code. The other rules' findings for the file "
        "are still reported. Set MAPSAFE_DEBUG=1 to see the traceback, and please report it."
    )


# Every kind of finding, in code order: the rule table reporters and --select read.
RULES: tuple[type[Finding], ...] = (
    SyntaxErrorFinding,
    MutationDuringIteration,
    UnprotectedSharedWrite,
    UnprotectedSharedIteration,
    CheckThenAct,
    InconsistentLocking,
    UnboundedMemoCache,
    InternalErrorFinding,
)

_BY_CODE = {rule.code: rule for rule in RULES}


def rule_for(code: str) -> type[Finding]:
    """The finding class with this code; KeyError(code) if there is none."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise KeyError(code) from None
