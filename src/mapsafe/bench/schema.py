"""Versioned JSON for bench results: write, read, and validate with the stdlib."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .advisor import Advice
from .results import UNITS, BenchResult, Cell, Header, ImplStatus

__all__ = ["SCHEMA", "VERSION", "SchemaError", "to_json", "from_json", "validate", "write", "read", "SCHEMA_FILE"]

SCHEMA = "mapsafe-bench"
# Bump on any change an older reader would misread. 2: cells have a `unit`
# (the cache workloads' rounds are not ops/s); version 1 files are still
# read, every cell in ops/s.
VERSION = 2
READS = (1, 2)
SCHEMA_FILE = Path(__file__).with_name("bench.schema.json")  # the same rules as JSON Schema


class SchemaError(UsageError):
    """A results file is not mapsafe bench JSON of a version this mapsafe reads."""

    slug = "bench-schema"
    hint = "give two files that 'mapsafe bench --json FILE' wrote"


def to_json(result: BenchResult, advice: Advice | None = None) -> dict[str, Any]:
    """The document for ``result``; ``advice`` is included for readers, never read back."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "header": asdict(result.header),
        "implementations": [asdict(s) for s in result.implementations],
        "cells": [
            {
                "workload": c.workload,
                "param": c.param,
                "threads": c.threads,
                "impl": c.impl,
                "rounds": list(c.rounds),
                "p50_ns": c.p50_ns,
                "p99_ns": c.p99_ns,
                "max_ns": c.max_ns,
                "peak_bytes": c.peak_bytes,
                "failures": list(c.failures),
                "unit": c.unit,
            }
            for c in result.cells
        ],
        "interrupted": result.interrupted,
    }
    if advice is not None:
        doc["advice"] = asdict(advice)
        for x in doc["advice"]["crossovers"]:
            x["ratios"] = {str(k): v for k, v in x["ratios"].items()}  # JSON keys are strings
    return doc


# -- validation ---------------------------------------------------------------

_NUM = (int, float)


def _is(value: Any, kinds: tuple[type, ...], nullable: bool = False) -> bool:
    if value is None:
        return nullable
    if isinstance(value, bool):  # bool is an int subclass, but never a count here
        return bool in kinds
    return isinstance(value, kinds)


def _need(obj: Any, where: str, fields: dict[str, tuple[tuple[type, ...], bool]]) -> None:
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: expected an object, got {type(obj).__name__}")
    for name, (kinds, nullable) in fields.items():
        if name not in obj:
            raise SchemaError(f"{where}: missing field {name!r}")
        if not _is(obj[name], kinds, nullable):
            want = " or ".join(k.__name__ for k in kinds) + (" or null" if nullable else "")
            raise SchemaError(f"{where}.{name}: expected {want}, got {obj[name]!r:.60}")


def validate(doc: Any) -> None:
    """Raise SchemaError naming the first field that is wrong."""
    if not isinstance(doc, dict):
        raise SchemaError(f"expected a JSON object at the top, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA:
        raise SchemaError(f"not a mapsafe bench result (schema is {doc.get('schema')!r}, expected {SCHEMA!r})")
    version = doc.get("version")
    if isinstance(version, bool) or version not in READS:
        raise SchemaError(f"unsupported bench schema version {version!r} "
                          f"(this mapsafe reads {', '.join(map(str, READS))})")
    _need(doc, "$", {"header": ((dict,), False), "implementations": ((list,), False), "cells": ((list,), False),
                     "interrupted": ((bool,), False)})
    _need(doc["header"], "$.header", {
        "python": ((str,), False), "gil": ((str,), False), "cpus": ((int,), False), "date": ((str,), False),
        "platform": ((str,), False), "mapsafe": ((str,), False), "options": ((dict,), False),
    })
    for i, s in enumerate(doc["implementations"]):
        _need(s, f"$.implementations[{i}]",
              {"name": ((str,), False), "available": ((bool,), False), "reason": ((str,), False)})
    for i, c in enumerate(doc["cells"]):
        where = f"$.cells[{i}]"
        _need(c, where, {
            "workload": ((str,), False), "param": (_NUM, True), "threads": ((int,), False), "impl": ((str,), False),
            "rounds": ((list,), False), "p50_ns": (_NUM, True), "p99_ns": (_NUM, True), "max_ns": (_NUM, True),
            "peak_bytes": ((int,), True), "failures": ((list,), False),
        })
        if c["threads"] < 1:
            raise SchemaError(f"{where}.threads: must be at least 1, got {c['threads']}")
        if not c["rounds"] or not all(_is(x, _NUM) and x >= 0 for x in c["rounds"]):
            raise SchemaError(f"{where}.rounds: expected a non-empty list of non-negative numbers")
        if not all(isinstance(f, str) for f in c["failures"]):
            raise SchemaError(f"{where}.failures: expected a list of strings")
        if version >= 2:
            _need(c, where, {"unit": ((str,), False)})
        if "unit" in c and c["unit"] not in UNITS:
            raise SchemaError(f"{where}.unit: expected one of {', '.join(UNITS)}, got {c['unit']!r:.60}")


def from_json(doc: Any) -> BenchResult:
    """The result in ``doc``, after validating it."""
    validate(doc)
    header = Header(**{k: doc["header"][k] for k in Header.__dataclass_fields__})
    impls = [ImplStatus(s["name"], s["available"], s["reason"]) for s in doc["implementations"]]
    cells = [
        Cell(
            c["workload"], None if c["param"] is None else float(c["param"]), c["threads"], c["impl"],
            [float(x) for x in c["rounds"]], c["p50_ns"], c["p99_ns"], c["max_ns"], c["peak_bytes"],
            list(c["failures"]), c.get("unit", "ops/s"),  # version 1 measured only ops/s
        )
        for c in doc["cells"]
    ]
    return BenchResult(header, impls, cells, doc["interrupted"])


# -- files --------------------------------------------------------------------


def write(path: str | os.PathLike[str], result: BenchResult, advice: Advice | None = None) -> None:
    """Write atomically: a reader never sees half a file."""
    target = Path(path)
    text = json.dumps(to_json(result, advice), indent=1, sort_keys=False) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            # mkstemp makes the file 0600; give it the mode open() would: an existing
            # file's own, else 0666 less the umask.
            os.fchmod(fd, _mode_for(target))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # set and restore at once: the bench writes its file from one thread
    os.umask(mask)
    return mask


def read(path: str | os.PathLike[str]) -> BenchResult:
    """Read and validate a results file; every problem is a SchemaError/UsageError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not a UTF-8 text file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return from_json(doc)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
