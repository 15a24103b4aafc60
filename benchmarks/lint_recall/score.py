"""Benchmark: recall of `mapsafe lint` on real, publicly fixed shared-dict bugs.

Each manifest entry names a repository, a buggy commit, its fix and the racing
lines at the buggy commit. For every entry this script extracts the .py files of
both trees from a local mirror, runs `python -m mapsafe lint TREE --format json`
on each, and scores:

  found       some relevant finding covers a racing line (within --tolerance)
              at the buggy commit; relevant means MS2xx for thread-race entries
              and MS101 for single-thread ones;
  gone at fix no relevant finding covers those lines any more at the fixed
              commit (lines are carried over with a diff of the two files).

It prints recall per kind and the fixed-commit silence rate (entries gone at
fix, out of those found). Stdlib only.

    python3 benchmarks/lint_recall/score.py [--manifest FILE] [--only NAME[,NAME]] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
DEFAULT_MANIFEST = HERE / "manifest.toml"
DEFAULT_MIRRORS = Path(os.environ.get("LINT_RECALL_MIRRORS", "/work/.mirror"))
DEFAULT_TOLERANCE = 2  # lines either side of a racing line; see README.md

EXIT_OK = 0
EXIT_USAGE = 2

KINDS = ("thread-race", "single-thread")
# Which finding codes count for each kind: a prefix match on the code.
RELEVANT = {"thread-race": ("MS2",), "single-thread": ("MS101",)}
LINT_EXIT_CODES = (0, 1, 66)  # no findings / findings / races found
_HEX40 = re.compile(r"[0-9a-f]{40}")
_SIDES = ("buggy", "fixed")


class ManifestError(Exception):
    """The manifest cannot be read or an entry is malformed."""


@dataclass
class Site:
    path: str
    lines: list[int]


@dataclass
class Bug:
    name: str
    repo: str
    buggy: str
    fixed: str
    kind: str
    shape: list[str]
    description: str
    evidence: str
    sites: list[Site]

    @property
    def mirror_name(self) -> str:
        return self.repo.replace("/", "+")


@dataclass
class Result:
    bug: Bug
    status: str = "scored"  # "scored", or "skipped" with `problem` saying why
    problem: str = ""
    found: bool = False
    gone_at_fix: bool = False
    hits_buggy: list[dict] = field(default_factory=list)  # relevant findings on racing lines
    hits_fixed: list[dict] = field(default_factory=list)  # ... on the carried-over lines
    seconds: float = 0.0


# ------------------------------------------------------------------ manifest


def load_manifest(path: Path) -> list[Bug]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"manifest {path} is not valid TOML: {exc}") from None
    bugs, seen = [], set()
    for i, raw in enumerate(data.get("bug", []), 1):
        where = f"{path.name}: bug #{i} ({raw.get('name', '?')})"
        for key in ("name", "repo", "buggy", "fixed", "kind", "description", "evidence", "site"):
            if key not in raw:
                raise ManifestError(f"{where}: missing field {key!r}")
        if raw["kind"] not in KINDS:
            raise ManifestError(f"{where}: kind must be one of {', '.join(KINDS)}, got {raw['kind']!r}")
        for key in ("buggy", "fixed"):
            if not _HEX40.fullmatch(raw[key]):
                raise ManifestError(f"{where}: {key} must be a 40-hex commit, got {raw[key]!r}")
        if raw["name"] in seen:
            raise ManifestError(f"{where}: duplicate name {raw['name']!r}")
        seen.add(raw["name"])
        sites = []
        for s in raw["site"]:
            if not s.get("path") or not s.get("lines") or not all(isinstance(n, int) and n > 0 for n in s["lines"]):
                raise ManifestError(f"{where}: each site needs a path and positive line numbers")
            sites.append(Site(s["path"], list(s["lines"])))
        bugs.append(Bug(raw["name"], raw["repo"], raw["buggy"], raw["fixed"], raw["kind"],
                        list(raw.get("shape", [])), raw["description"], raw["evidence"], sites))
    if not bugs:
        raise ManifestError(f"{path.name}: no [[bug]] entries")
    return bugs


# ------------------------------------------------------------------ trees


def _git(git_dir: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, **kw)


def missing_in_mirror(bug: Bug, mirrors: Path) -> str:
    """Why this entry cannot be scored from the mirror, or '' when it can."""
    git_dir = mirrors / bug.mirror_name / "repo"
    if not git_dir.is_dir():
        return f"no mirror of {bug.repo} at {git_dir}: run `fetch github:{bug.repo}` first"
    for side in _SIDES:
        commit = getattr(bug, side)
        if _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            return f"{side} commit {commit[:12]} is not in the mirror of {bug.repo}: run `fetch github:{bug.repo}` again"
    return ""


def extract_python_files(git_dir: Path, commit: str, dest: Path) -> list[str]:
    """Write the commit's regular *.py files under dest; return the paths that could not be read.

    Only .py blobs are read (ls-tree, then one cat-file --batch), so a mirror that
    lacks some large data file still scores, and links or odd paths in a
    third-party tree cannot write outside dest.
    """
    listing = _git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit)
    if listing.returncode != 0:
        last = (listing.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"git ls-tree {commit[:12]} failed: {last}")
    wanted: list[tuple[str, PurePosixPath]] = []
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw_name = record.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        name = PurePosixPath(raw_name.decode("utf-8", errors="surrogateescape"))
        if kind == "blob" and mode in ("100644", "100755") and name.suffix == ".py" and ".." not in name.parts:
            wanted.append((sha, name))
    batch = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                           input=b"".join(sha.encode() + b"\n" for sha, _ in wanted), capture_output=True)
    out, pos, unreadable = batch.stdout, 0, []
    for sha, name in wanted:
        eol = out.index(b"\n", pos)
        header = out[pos:eol].split()
        pos = eol + 1
        if len(header) != 3:  # "<sha> missing": the mirror lacks this blob
            unreadable.append(str(name))
            continue
        size = int(header[2])
        target = dest.joinpath(*name.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out[pos:pos + size])
        pos += size + 1
    return unreadable


# ------------------------------------------------------------------ linting


def _clean_env() -> dict[str, str]:
    # MAPSAFE_* settings of whoever runs the benchmark must not change the result.
    return {k: v for k, v in os.environ.items() if not k.startswith("MAPSAFE_")}


def lint_tree(workdir: Path, side: str) -> list[dict]:
    """Findings of `mapsafe lint` on workdir/side, with paths relative to that tree.

    The linter runs with workdir as cwd, which holds no pyproject.toml, so neither
    our config nor the third-party project's can change what it reports.
    """
    cmd = [sys.executable, "-m", "mapsafe", "lint", side, "--format", "json"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=_clean_env())
    if proc.returncode not in LINT_EXIT_CODES:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"mapsafe lint exited {proc.returncode} on the {side} tree: {last}")
    try:
        findings = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"mapsafe lint printed invalid JSON for the {side} tree: {exc}") from None
    prefix = side + "/"
    for f in findings:
        path = str(f.get("path", "")).replace(os.sep, "/")
        f["path"] = path[len(prefix):] if path.startswith(prefix) else path
    return findings


# ------------------------------------------------------------------ scoring


def carry_lines(old: list[str], new: list[str], lines: list[int]) -> list[tuple[int, int]]:
    """Map 1-based lines of `old` to (lo, hi) spans of `new` through a line diff.

    An unchanged line maps to itself; a replaced line maps to the whole
    replacement; a deleted line maps to the point where it was.
    """
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    spans = []
    for line in lines:
        i = line - 1
        for tag, i1, i2, j1, j2 in ops:
            if i1 <= i < i2:
                if tag == "equal":
                    spans.append((j1 + (i - i1) + 1,) * 2)
                elif tag == "replace":
                    spans.append((j1 + 1, max(j2, j1 + 1)))
                else:  # delete
                    spans.append((max(j1, 1), j1 + 1))
                break
        else:
            spans.append((line, line))  # beyond the end of old: keep as is
    return spans


def _relevant(finding: dict, kind: str) -> bool:
    return str(finding.get("code", "")).startswith(RELEVANT[kind])


def hits(findings: list[dict], kind: str, path: str, spans: list[tuple[int, int]], tol: int) -> list[dict]:
    """Relevant findings in `path` whose line span meets a span widened by tol."""
    out = []
    for f in findings:
        if f.get("path") != path or not _relevant(f, kind):
            continue
        start = int(f.get("line", 0))
        end = max(int(f.get("end_line", start) or start), start)
        if any(start <= hi + tol and end >= lo - tol for lo, hi in spans):
            out.append(f)
    return out


def _read_lines(path: Path) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


def score_bug(bug: Bug, mirrors: Path, tol: int) -> Result:
    result = Result(bug)
    problem = missing_in_mirror(bug, mirrors)
    if problem:
        result.status, result.problem = "skipped", problem
        return result
    git_dir = mirrors / bug.mirror_name / "repo"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lint_recall-") as tmp:
        work = Path(tmp)
        try:
            findings = {}
            for side in _SIDES:
                extract_python_files(git_dir, getattr(bug, side), work / side)
                findings[side] = lint_tree(work, side)
        except RuntimeError as exc:
            result.status, result.problem = "skipped", str(exc)
            return result
        for site in bug.sites:
            exact = [(n, n) for n in site.lines]
            result.hits_buggy += hits(findings["buggy"], bug.kind, site.path, exact, tol)
            old = _read_lines(work / "buggy" / site.path)
            new = _read_lines(work / "fixed" / site.path)
            if old is None or new is None:
                result.status = "skipped"
                result.problem = f"{site.path} is missing or unreadable at the {'buggy' if old is None else 'fixed'} commit"
                return result
            carried = carry_lines(old, new, site.lines)
            result.hits_fixed += hits(findings["fixed"], bug.kind, site.path, carried, tol)
    result.found = bool(result.hits_buggy)
    result.gone_at_fix = result.found and not result.hits_fixed
    result.seconds = time.perf_counter() - start
    return result


def totals(results: list[Result]) -> dict:
    scored = [r for r in results if r.status == "scored"]
    out: dict[str, object] = {}
    for kind in KINDS:
        of_kind = [r for r in scored if r.bug.kind == kind]
        out[kind] = {"found": sum(r.found for r in of_kind), "scored": len(of_kind),
                     "recall": _ratio(sum(r.found for r in of_kind), len(of_kind))}
    found = [r for r in scored if r.found]
    out["silence_at_fix"] = {"gone": sum(r.gone_at_fix for r in found), "found": len(found),
                             "rate": _ratio(sum(r.gone_at_fix for r in found), len(found))}
    out["skipped"] = len(results) - len(scored)
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


# ------------------------------------------------------------------ reporting


def _codes(fs: list[dict]) -> str:
    return ",".join(sorted({f"{f['code']}@{f['line']}" for f in fs})) or "-"


def render_text(results: list[Result], tot: dict, tol: int) -> str:
    lines = [f"mapsafe lint recall on {len(results)} real bugs (tolerance ±{tol} lines)", ""]
    width = max(len(r.bug.name) for r in results)
    for r in results:
        if r.status != "scored":
            lines.append(f"{r.bug.name:<{width}}  {r.bug.kind:<13}  SKIPPED  {r.problem}")
            continue
        verdict = "found " if r.found else "MISSED"
        fix = ("silent" if r.gone_at_fix else "still flagged") if r.found else "-"
        lines.append(f"{r.bug.name:<{width}}  {r.bug.kind:<13}  {verdict}  fix: {fix:<13}  "
                     f"hits: {_codes(r.hits_buggy)}  shape: {','.join(r.bug.shape)}")
    lines.append("")
    for kind in KINDS:
        t = tot[kind]
        pct = "n/a" if t["recall"] is None else f"{t['recall']:.0%}"
        lines.append(f"recall {kind:<13} {t['found']}/{t['scored']} ({pct})")
    s = tot["silence_at_fix"]
    pct = "n/a" if s["rate"] is None else f"{s['rate']:.0%}"
    lines.append(f"silent at fix        {s['gone']}/{s['found']} of the found ({pct})")
    if tot["skipped"]:
        lines.append(f"skipped              {tot['skipped']} (see above)")
    return "\n".join(lines) + "\n"


def render_json(results: list[Result], tot: dict, tol: int) -> str:
    entries = []
    for r in results:
        entries.append({
            "name": r.bug.name, "repo": r.bug.repo, "kind": r.bug.kind, "shape": r.bug.shape,
            "status": r.status, "problem": r.problem or None, "found": r.found,
            "gone_at_fix": r.gone_at_fix, "hits_buggy": r.hits_buggy, "hits_fixed": r.hits_fixed,
            "seconds": round(r.seconds, 2),
        })
    return json.dumps({"tolerance": tol, "entries": entries, "totals": tot}, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="default: manifest.toml here")
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS,
                        help="folder of <owner>+<name>/repo git dirs (default: %(default)s, or $LINT_RECALL_MIRRORS)")
    parser.add_argument("--only", default="", help="comma-separated entry names to score")
    parser.add_argument("--tolerance", type=int, default=DEFAULT_TOLERANCE,
                        help="lines either side of a racing line that still count (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), help="entries scored at once")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error("--tolerance must be 0 or more")
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    try:
        bugs = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"score.py: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {b.name for b in bugs})
        if unknown:
            print(f"score.py: --only names no entry: {', '.join(unknown)}", file=sys.stderr)
            return EXIT_USAGE
        bugs = [b for b in bugs if b.name in wanted]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda b: score_bug(b, args.mirrors, args.tolerance), bugs))
    tot = totals(results)
    out = render_json(results, tot, args.tolerance) if args.json else render_text(results, tot, args.tolerance)
    sys.stdout.write(out)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
