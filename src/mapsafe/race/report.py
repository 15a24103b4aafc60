"""Reporters: races as Go-style text blocks, and as JSON."""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

from .consequence import classify
from .shadow import Access, Race, _short_repr

__all__ = ["Frames", "format_race", "format_summary", "race_to_dict", "write_json"]

SEPARATOR = "=================="

# Frames from these files are detector or threading plumbing, not the user's code.
_STDLIB = os.path.dirname(os.path.abspath(os.__file__))
_HIDDEN = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ""),  # mapsafe itself
    os.path.join(_STDLIB, "threading.py"),
    os.path.join(_STDLIB, "runpy.py"),
    os.path.join(_STDLIB, "concurrent", ""),
    "<frozen runpy>",
)


class Frames:
    """Turns remembered (code, line) pairs into displayable (path, line, function)."""

    def __init__(self, strip_prefix: str = "", cwd: str | None = None) -> None:
        self.strip_prefix = strip_prefix
        self.cwd = os.path.join(cwd or os.getcwd(), "")

    def path(self, filename: str) -> str:
        if self.strip_prefix and filename.startswith(self.strip_prefix):
            return filename[len(self.strip_prefix):]
        if filename.startswith(self.cwd):
            return filename[len(self.cwd):]
        return filename

    def resolve(self, frames: Iterable) -> list:
        out = []
        for code, line in frames:
            filename = code.co_filename
            if filename.startswith(_HIDDEN):
                continue
            out.append((self.path(filename), line or 0, code.co_name))
        return out

    def site(self, frames: tuple) -> str:
        resolved = self.resolve(frames)
        return f"{resolved[0][0]}:{resolved[0][1]}" if resolved else "?"


def _key_of(acc: Access) -> str:
    try:
        return _short_repr(acc.key)
    except Exception:  # a user __repr__ must not break reporting
        return f"<{type(acc.key).__name__} object>"


def _describe(acc: Access) -> str:
    """'Write of key 'hits'' / 'Read of all keys (len())' ..."""
    kind = "Write" if acc.write else "Read"
    key = _key_of(acc)
    if acc.whole == "clear":
        return f"Write of all keys ({acc.op})"
    if acc.whole == "keys":
        return f"Read of all keys ({acc.op})"
    if acc.whole == "values":
        return f"Read of all keys and values ({acc.op})"
    return f"{kind} of key {key} ({acc.op})"


def _thread_label(race: Race, tid: int) -> str:
    info = race.threads.get(tid)
    return info.name if info is not None else f"#{tid}"


def _finalizer_lines(acc: Access, frames: Frames) -> list:
    """'In a finalizer (__del__ of Conn), of the object created at:' and its stack."""
    fin = acc.final
    if fin is None:
        return []
    site = frames.resolve(fin.site)
    if not site:
        return [f"  (in a finalizer: {fin.how}; {fin.site_kind} an unknown site)"]
    return [f"  (in a finalizer: {fin.how}, {fin.site_kind}:)"] + [f"    {p}:{n} in {f}" for p, n, f in site]


def format_race(race: Race, frames: Frames) -> str:
    """One Go-style block: both accesses with stacks, then where the threads came from."""
    cur, prev = race.current, race.previous
    where = "created at" if race.created_seen else "first seen at"
    lines = [SEPARATOR, "WARNING: DATA RACE"]
    prep = "to" if cur.write else "from"
    lines.append(
        f"{_describe(cur)} {prep} {race.map_type} {race.dict_id:#x} ({where} {frames.site(race.created)}) "
        f"by thread {_thread_label(race, cur.tid)}:"
    )
    lines += [f"  {p}:{n} in {f}" for p, n, f in frames.resolve(cur.frames)]
    lines += _finalizer_lines(cur, frames)
    desc = _describe(prev)
    lines.append(f"Previous {desc[0].lower()}{desc[1:]} by thread {_thread_label(race, prev.tid)}:")
    lines += [f"  {p}:{n} in {f}" for p, n, f in frames.resolve(prev.frames)]
    lines += _finalizer_lines(prev, frames)
    for tid in dict.fromkeys((cur.tid, prev.tid)):
        info = race.threads.get(tid)
        if info is None or not info.created:
            continue
        state = "running" if info.running else "finished"
        lines.append(f"Thread {info.name} ({state}) created at:")
        lines += [f"  {p}:{n} in {f}" for p, n, f in frames.resolve(info.created)]
    consequence = classify(race)
    lines.append(f"Consequence: {consequence.text}")
    lines.append(f"Fix: {consequence.fix}")
    lines.append(SEPARATOR)
    return "\n".join(lines) + "\n"


def format_summary(count: int, forgotten: int = 0, history: int = 0, suppressed: int = 0,
                   suppressions: str = "") -> str:
    """The closing lines: the races found, those a suppressions file hid, and
    the accesses forgotten to keep memory bounded (races with those can have
    been missed)."""
    text = f"Found {count} data race(s)\n" if count else ""
    if suppressed:
        text += f"mapsafe race: {suppressed} race(s) suppressed by {suppressions}\n"
    if forgotten:
        text += (
            f"mapsafe race: {forgotten} earlier accesses were forgotten: a map outgrew {history} key states "
            "(--history); races with them can have been missed\n"
        )
    return text


def _access_to_dict(acc: Access, race: Race, frames: Frames) -> dict:
    info = race.threads.get(acc.tid)
    return {
        "thread": info.name if info is not None else None,
        "thread_running": info.running if info is not None else None,
        "thread_created_at": [
            {"file": p, "line": n, "function": f} for p, n, f in frames.resolve(info.created)
        ]
        if info is not None
        else [],
        "operation": acc.op,
        "finalizer": None
        if acc.final is None
        else {
            "how": acc.final.how,
            "site_kind": acc.final.site_kind,
            "site": [{"file": p, "line": n, "function": f} for p, n, f in frames.resolve(acc.final.site)],
        },
        "key": None if acc.whole else _key_of(acc),
        "write": acc.write,
        "whole_dict": bool(acc.whole),
        "frames": [{"file": p, "line": n, "function": f} for p, n, f in frames.resolve(acc.frames)],
    }


def race_to_dict(race: Race, frames: Frames) -> dict[str, Any]:
    """The machine-readable form of one race (the schema is in docs/race/internals.md, "JSON report")."""
    key = race.key_repr
    if key is None:
        scope = "whole-dict"
    elif race.current.whole or race.previous.whole:
        scope = "key-vs-whole-dict"
    else:
        scope = "key"
    consequence = classify(race)
    return {
        "kind": consequence.kind,
        "consequence": consequence.text,
        "fix": consequence.fix,
        "scope": scope,
        "key": key,
        "map_type": race.map_type,
        "dict": {
            "id": f"{race.dict_id:#x}",
            "created_at": [{"file": p, "line": n, "function": f} for p, n, f in frames.resolve(race.created)],
            "creation_known": race.created_seen,
        },
        "current": _access_to_dict(race.current, race, frames),
        "previous": _access_to_dict(race.previous, race, frames),
    }


def write_json(path: str, races: list, frames: Frames, suppressed: int = 0, forgotten: int = 0) -> None:
    doc = {
        "version": 2,
        "count": len(races),
        "suppressed": suppressed,
        "forgotten": forgotten,
        "races": [race_to_dict(r, frames) for r in races],
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
