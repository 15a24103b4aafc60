"""Summarise ThreadSanitizer logs: distinct warnings, split into mapsafe's (_speedups.c) and the rest.

Usage: tsan_summary.py LOGDIR   (reads LOGDIR/tsan.*, one file per process)

A warning is mapsafe's when a frame of one of its stacks (the racing accesses, the mutexes
taken, not where a thread or a heap block was created) is in _speedups.c; otherwise it is
CPython's, the stdlib's or another extension's. Two reports are the same warning when they
are of the same kind and each stack has the same top frame and the same first _speedups.c
frame: TSan deduplicates within a process only, and every child process logs its own.

Exit status: 1 if any warning is mapsafe's, else 0.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

OURS = "_speedups.c"
SEPARATOR = "=================="
SUMMARY = "SUMMARY: ThreadSanitizer: "
WARNING = re.compile(r"^WARNING: ThreadSanitizer: (?P<kind>.+?)(?: \(pid=(?P<pid>\d+)\))?\s*$")
SECTION = re.compile(r"^  (?P<header>\S.*?):?\s*$")
MATCHED = re.compile(r"^ThreadSanitizer: Matched \d+ suppressions")  # print_suppressions=1
MATCH = re.compile(r"^(?P<hits>\d+) (?P<rule>\w+:\S+)$")
FRAME = re.compile(r"^    #(?P<n>\d+) (?P<rest>.*)$")
# Sections that say where something was made, not what raced or deadlocked.
CONTEXT = re.compile(r"^(Thread T\d+|Main thread|Location is|Mutex M\d+ (\(.*\) )?created at|Cycle in lock order)")
SOURCE_ROOT = re.compile(r"/\S*?/((?:src/mapsafe|Modules|Objects|Python|Include|Lib|Parser)/)")
ADDRESSES = re.compile(r" (?:at )?0x[0-9a-f]+| \(mutexes:[^)]*\)| (?:by|in) (?:main )?thread(?: T\d+)?")


@dataclass(frozen=True)
class Frame:
    func: str
    where: str  # file:line:col, or the module+offset when unsymbolised

    @property
    def ours(self) -> bool:
        return OURS in self.where

    def short(self) -> str:
        return f"{self.func} {shorten(self.where)}"


def shorten(text: str) -> str:
    """Paths from the checkout's or CPython's source root on, e.g. Objects/dictobject.c:12:3."""
    return SOURCE_ROOT.sub(r"\1", text)


@dataclass
class Stack:
    header: str  # e.g. "Write of size 8 at 0x7b04 by thread T3"
    frames: list[Frame] = field(default_factory=list)

    @property
    def access(self) -> str:
        """The header without addresses and thread ids, e.g. "Write of size 8"."""
        return ADDRESSES.sub("", self.header).strip()

    @property
    def first_ours(self) -> Frame | None:
        return next((f for f in self.frames if f.ours), None)


@dataclass
class Report:
    kind: str
    file: str
    stacks: list[Stack]  # racing accesses and mutex acquisitions only
    summary: str

    @property
    def ours(self) -> bool:
        return any(s.first_ours for s in self.stacks)

    def key(self) -> tuple:
        return (self.kind,) + tuple(
            (s.access, s.frames[0] if s.frames else None, s.first_ours) for s in self.stacks
        )


def parse_frame(rest: str) -> Frame:
    rest = re.sub(r" \(BuildId: [0-9a-f]+\)$", "", rest)
    module = ""
    m = re.search(r" \(([^()]*)\)$", rest)
    if m:
        module, rest = m.group(1), rest[: m.start()]
    func, _, where = rest.partition(" ")
    if not where or where == "<null>":
        where = module
    return Frame(func, where)


def parse(path: Path, suppressed: Counter) -> list[Report]:
    """The reports in one log; adds the suppressions it says matched to `suppressed`."""
    reports, current, stack, in_matched = [], None, None, False
    for line in path.read_text(errors="replace").splitlines():
        if MATCHED.match(line):
            in_matched = True
            continue
        m = MATCH.match(line) if in_matched else None
        if m:
            suppressed[m["rule"]] += int(m["hits"])
            continue
        in_matched = False
        m = WARNING.match(line)
        if m:
            # Some kinds (signal-unsafe call, destroy of a locked mutex) give their first stack
            # straight under the warning, without a header.
            stack = Stack(m["kind"])
            current = Report(m["kind"], path.name, [stack], "")
            continue
        if current is None:
            continue
        if line.startswith(SUMMARY):
            current.summary = line.removeprefix(SUMMARY)
            continue
        if line == SEPARATOR:
            reports.append(finish(current))
            current = stack = None
            continue
        m = FRAME.match(line)
        if m:
            if stack is not None:
                stack.frames.append(parse_frame(m["rest"]))
            continue
        m = SECTION.match(line)
        if m:
            header = m["header"].rstrip(":")
            stack = None if CONTEXT.match(header) else Stack(header)
            if stack is not None:
                current.stacks.append(stack)
    if current is not None:  # a process killed mid-report
        reports.append(finish(current))
    return reports


def finish(report: Report) -> Report:
    """Drop the headerless first stack if the report had none."""
    if not report.stacks[0].frames and report.stacks[0].header == report.kind:
        del report.stacks[0]
    return report


def render(warnings: dict[tuple, list[Report]], nfiles: int, nreports: int, suppressed: Counter) -> str:
    ours = [rs for rs in warnings.values() if rs[0].ours]
    theirs = [rs for rs in warnings.values() if not rs[0].ours]
    out = [
        f"TSan: {nreports} reports in {nfiles} log files; {len(warnings)} distinct warnings: "
        f"{len(ours)} in mapsafe's C code ({OURS}), {len(theirs)} elsewhere (CPython, stdlib, other extensions)."
    ]
    if suppressed:
        out.append(
            f"Suppressed by CPython's list: {sum(suppressed.values())} reports ("
            + ", ".join(f"{n} {rule}" for rule, n in suppressed.most_common())
            + ")."
        )
    if ours:
        out += ["", f"== in {OURS} (mapsafe's; these fail the lane)"]
        for i, rs in enumerate(ours, 1):
            r = rs[0]
            out.append(f"[{i}] {shorten(r.summary)}  ({len(rs)} reports; first in {r.file})")
            for s in r.stacks:
                out.append(f"    {s.access}:")
                for f in s.frames:
                    out.append(f"      {f.short()}")
                    if f.ours:  # the rest are its callers in CPython
                        break
                if not s.frames:
                    out.append("      (stack not restored; a larger MAPSAFE_TSAN_HISTORY may find it)")
                elif s.first_ours is None:
                    out.append(f"      (no {OURS} frame)")
    if theirs:
        out += ["", "== elsewhere (no _speedups.c frame: not mapsafe's)"]
        kinds = Counter(r[0].kind for r in theirs)
        for i, rs in enumerate(theirs, 1):
            out.append(f"[{i}] {shorten(rs[0].summary)}  ({len(rs)} reports)")
            tops = (f"{s.access}: {s.frames[0].short() if s.frames else '(stack not restored)'}" for s in rs[0].stacks)
            out.append("    " + " | ".join(tops))
        out.append("    by kind: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: tsan_summary.py LOGDIR", file=sys.stderr)
        return 2
    files = sorted(Path(argv[1]).glob("tsan.*"))
    warnings: dict[tuple, list[Report]] = {}
    nreports = 0
    suppressed: Counter = Counter()
    for path in files:
        for report in parse(path, suppressed):
            nreports += 1
            warnings.setdefault(report.key(), []).append(report)
    print(render(warnings, len(files), nreports, suppressed))
    return 1 if any(rs[0].ours for rs in warnings.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
