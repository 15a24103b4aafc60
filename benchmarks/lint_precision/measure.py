"""Benchmark: `mapsafe lint` precision sample and thread-entry coverage on real thread-heavy trees.

For each tree: run the linter as a child process (CPU seconds of the child
from wait4's rusage, wall seconds, lines of Python), count findings per rule,
and compare the thread-start sites a grep finds with the entries the linter's
ThreadModel resolved. Then draw a seeded sample of findings, stratified by
rule, for a person to judge by reading the code.

    python benchmarks/lint_precision/measure.py [--sample N] [--out DIR] TREE...
    python benchmarks/lint_precision/measure.py --score sample_judged.md

A TREE is a folder; if it holds a file COMMIT, its first line is reported as
the tree's commit. Judged verdicts are rows of sample_judged.md whose verdict
column is TP or FP; --score prints precision per rule from them.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

SEED = 2026
# The thread-start sites a reviewer would grep for.
SITE_RE = re.compile(r"Thread\(|Timer\(|\.submit\(|ThreadPoolExecutor|threading\.Thread|add_done_callback|"
                     r"run_in_executor|to_thread|^\s*class\s+\w+\s*\(.*\b(?:Thread|Timer)\b")
_CLASS_RE = re.compile(r"^\s*class\s+(\w+)\s*\((.*)")
_THREAD_BASE_RE = re.compile(r"(?:^|[\s,(.])(?:threading\.)?(Thread|Timer)\s*[,)]")
_CALL_RE = re.compile(r"(?<![\w.])(?:threading\.)?(?:Thread|Timer)\(|\.submit\(|add_done_callback\(|"
                      r"run_in_executor\(|to_thread\(")


# -- running the linter ---------------------------------------------------------------

def run_lint(tree: str) -> tuple[list[dict], float, float, int]:
    """(findings, child CPU s, wall s, exit code) of `python -m mapsafe lint . --format json` in ``tree``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSAFE_")}  # no stray config
    # Cold runs only: a warm .mapsafe_cache/ would time the cache, not the linter (and litter the tree).
    helptext = subprocess.run([sys.executable, "-m", "mapsafe", "lint", "--help"], capture_output=True, text=True)
    no_cache = ["--no-cache"] if "--no-cache" in helptext.stdout else []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "mapsafe", "lint", ".", "--format", "json", *no_cache],
                                 cwd=tree, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        data = out.read()
    findings = json.loads(data) if data.strip() else []
    return findings, usage.ru_utime + usage.ru_stime, wall, child.returncode


# -- thread entries as the linter resolves them --------------------------------------

def read_tree(tree: str) -> list[tuple[str, str]]:
    """(path relative to the tree, source) for every file the linter would check."""
    from mapsafe.lint.checker import _read
    from mapsafe.lint.discover import iter_python_files

    here = os.getcwd()
    os.chdir(tree)  # the linter's paths are relative to its cwd; ours must match them
    try:
        out = []
        for path, problem in iter_python_files(["."]):
            if problem is None:
                source, _ = _read(path)
                if source is not None:
                    out.append((path, source))
        return out
    finally:
        os.chdir(here)


def thread_model(tree: str, files: list[tuple[str, str]]):
    """(ThreadModel, {path: ast.Module}) built exactly as lint_paths builds it."""
    from mapsafe.lint.checker import _parse
    from mapsafe.lint.program import Program
    from mapsafe.lint.threads import ThreadModel

    here = os.getcwd()
    os.chdir(tree)  # module names come from relative paths, as in the linter's run
    try:
        indexes, trees, first_id = [], {}, 0
        for path, source in files:
            one = _parse(source, path, first_id)
            if one.index is None:
                continue
            first_id += len(one.index.scopes)
            indexes.append(one.index)
            trees[path] = one.index
        return ThreadModel(Program(indexes)), trees
    finally:
        os.chdir(here)


# -- grep'd thread-start sites --------------------------------------------------------

def _string_lines(tree: ast.Module | None) -> set[int]:
    """Lines inside string constants that span lines (docstrings, text blocks): grep hits there start nothing."""
    lines: set[int] = set()
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.end_lineno > node.lineno:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def read_noise(path: str) -> list[tuple[str, re.Pattern, re.Pattern, str]]:
    """Reviewed grep hits that are not thread starts: 'tree | path regex | line regex | why' per line."""
    out = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith("#"):
                    tree, where, text, why = (part.strip() for part in line.split(" | ", 3))
                    out.append((tree, re.compile(where), re.compile(text), why))
    return out


def grep_sites(files: list[tuple[str, str]], trees: dict, subclasses: set[str], name: str,
               noise: list) -> tuple[list[dict], collections.Counter]:
    """Thread-start sites: calls that hand a function to a thread, and `class X(Thread)` lines.

    Grep hits that start nothing (imports, comments, strings, pool
    construction, base __init__ calls, isinstance, reviewed noise such as a
    form's .submit()) are counted as skipped, not as sites.
    """
    sites, skipped = [], collections.Counter()
    for path, source in files:
        in_strings = _string_lines(trees.get(path))
        for number, text in enumerate(source.splitlines(), 1):
            if not SITE_RE.search(text):
                continue
            stripped = text.strip()
            why = next((w for t, p, r, w in noise if t == name and p.search(path) and r.search(text)), None)
            if why:
                skipped[f"reviewed: {why}"] += 1
                continue
            if number in in_strings:
                skipped["inside a string or docstring"] += 1
                continue
            called = re.search(r"(\w+)\(", stripped)
            if called and called.group(1) in subclasses and not stripped.startswith("class "):
                skipped["call of a Thread subclass (its class line is the site)"] += 1
                continue
            match = _CLASS_RE.match(text)
            if match:
                if _THREAD_BASE_RE.search("(" + match.group(2)):
                    sites.append({"path": path, "line": number, "kind": "subclass", "text": stripped,
                                  "name": match.group(1)})
                else:
                    skipped["class with another base"] += 1
                continue
            if stripped.startswith("#"):
                skipped["comment"] += 1
            elif stripped.startswith(("import ", "from ")):
                skipped["import"] += 1
            elif stripped.startswith("def "):
                skipped["def"] += 1
            elif _CALL_RE.search(text):
                sites.append({"path": path, "line": number, "kind": "call", "text": stripped})
            elif re.search(r"\w+Thread\(", text):
                skipped["call of a Thread subclass (its class line is the site)"] += 1
            elif "ThreadPoolExecutor" in text:
                skipped["pool construction or annotation"] += 1
            else:
                skipped["other mention (isinstance, Thread.__init__, docstring)"] += 1
    return sites, skipped


def _enclosing(tree: ast.Module, line: int) -> ast.AST | None:
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= node.end_lineno:
            if best is None or node.lineno > best.lineno:
                best = node
    return best


def _target_of(call: ast.Call) -> ast.AST | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    keywords = {k.arg: k.value for k in call.keywords}
    if name == "Thread":
        return keywords.get("target") or (call.args[1] if len(call.args) > 1 else None)
    if name == "Timer":
        return keywords.get("function") or (call.args[1] if len(call.args) > 1 else None)
    if name == "run_in_executor":
        return call.args[1] if len(call.args) > 1 else None
    return call.args[0] if call.args else keywords.get("fn")


def reason_unresolved(site: dict, model, indexes: dict, trees: dict) -> str:
    """A first guess at why no entry sits on this site; a person checks the ones reported."""
    index = indexes.get(site["path"])
    if index is None:
        return "file does not parse (Python 2?)"
    if site["kind"] == "subclass":
        info = next((c for c in model.program.classes if c.name == site["name"]
                     and model.path_of(c.scope) == site["path"]), None)
        if info is None:
            return "class not indexed"
        if not (model.program.external_bases(info) & {"threading.Thread", "dummy_threading.Thread"}):
            return "base is not threading.Thread (Timer, or a name the linter did not resolve)"
        return "subclass without its own run() (runs its target)"
    tree = trees[site["path"]]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == site["line"]
             and re.search(r"Thread|Timer|submit|add_done_callback|run_in_executor|to_thread",
                           ast.unparse(n.func))]
    if not calls:
        return "no call on that line (text in a string, or call split over lines)"
    call = calls[0]
    receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
    if isinstance(call.func, ast.Attribute) and call.func.attr == "submit":
        text = ast.unparse(receiver)
        if re.search(r"process|proc", text, re.I):
            return f"submit to a process pool ({text})"
        if not re.search(r"executor|pool", text, re.I):
            return f"submit() on an object not known as a thread pool ({text})"
    target = _target_of(call)
    if target is None:
        return "no target (Thread() with no target, or *args/**kwargs)"
    func = _enclosing(tree, site["line"])
    params = set()
    if func is not None:
        a = func.args
        params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p is not None}
    text = ast.unparse(target)
    if isinstance(target, ast.Lambda):
        return "target is a lambda"
    if isinstance(target, ast.Name) and target.id == "self":
        return "target is a callable object (target=self, its __call__)"
    if isinstance(target, ast.Name) and target.id in params:
        wrapper = func is not None and any(f" in {func.name}()" in e.how or f".{func.name}()" in e.how
                                           for e in model.entries)
        return f"target is a parameter ({text}){'; wrapper, entries at its callers' if wrapper else ''}"
    if isinstance(target, ast.Name):
        return f"target is a name the linter did not resolve to a function ({text})"
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id == "self":
            return f"self attribute not resolved to a method ({text})"
        return f"attribute of an object of unknown type ({text})"
    if isinstance(target, ast.Call):
        return f"target is a call's result ({text[:40]})"
    if isinstance(target, ast.Subscript):
        return f"target is an item of a container ({text[:40]})"
    return f"target is {type(target).__name__} ({text[:40]})"


def coverage(tree: str, files: list[tuple[str, str]], noise: list) -> dict:
    model, indexes = thread_model(tree, files)
    trees = {}
    for path, source in files:
        if path in indexes:
            try:
                trees[path] = ast.parse(source)
            except (SyntaxError, ValueError):
                pass
    subclasses = {e.how.split()[-1] for e in model.entries if e.how.startswith("Thread subclass ")}
    sites, skipped = grep_sites(files, trees, subclasses, os.path.basename(os.path.normpath(tree)), noise)
    at = {(e.path, e.line) for e in model.entries}
    # A wrapper's own start (`def spawn(fn): Thread(target=fn)`) is resolved when its callers'
    # arguments became entries: the linter knows the code it runs.
    at |= {getattr(e, "via", None) for e in model.entries} - {None}
    by_kind = collections.Counter(e.how.split(" in ")[0] for e in model.entries)
    unresolved = []
    for site in sites:
        site["resolved"] = (site["path"], site["line"]) in at
        if not site["resolved"]:
            site["reason"] = reason_unresolved(site, model, indexes, trees)
            unresolved.append(site)
    return {"sites": len(sites), "resolved": sum(s["resolved"] for s in sites), "entries": len(model.entries),
            "entries_off_grep": len(at - {(s["path"], s["line"]) for s in sites}),
            "entry_kinds": dict(by_kind), "skipped": dict(skipped), "unresolved": unresolved,
            "parsed": len(indexes), "files": len(files)}


# -- sampling and scoring -------------------------------------------------------------

def stratified_sample(findings: list[dict], size: int, rng: random.Random) -> list[dict]:
    """Proportional to each rule's share, at least min(3, its count) per rule; largest remainder."""
    by_code: dict[str, list[dict]] = collections.defaultdict(list)
    for f in findings:
        by_code[f["code"]].append(f)
    if size >= len(findings):
        return sorted(findings, key=lambda f: (f["code"], f["tree"], f["path"], f["line"]))
    want = {c: min(3, len(v)) for c, v in by_code.items()}
    left = size - sum(want.values())
    share = {c: len(v) / len(findings) * size for c, v in by_code.items()}
    for c in sorted(by_code, key=lambda c: -(share[c] - int(share[c]))):
        want[c] = max(want[c], min(len(by_code[c]), int(share[c])))
    left = size - sum(want.values())
    for c in sorted(by_code, key=lambda c: (-(share[c] - int(share[c])), c)):
        if left <= 0:
            break
        if want[c] < len(by_code[c]):
            want[c] += 1
            left -= 1
    sample = []
    for c in sorted(by_code):
        pool = sorted(by_code[c], key=lambda f: (f["tree"], f["path"], f["line"], f["message"]))
        sample.extend(rng.sample(pool, want[c]))
    return sample


def score(judged: str) -> None:
    rows = collections.defaultdict(collections.Counter)
    causes = collections.Counter()
    with open(judged, encoding="utf-8") as fh:
        for line in fh:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 5 or cells[0] in ("#", "---") or not cells[0].isdigit():
                continue
            code, verdict = cells[2], cells[3].upper()
            if verdict in ("TP", "FP"):
                rows[code][verdict] += 1
                if verdict == "FP":
                    causes[cells[4].split(":")[0]] += 1
    total = collections.Counter()
    for code in sorted(rows):
        tp, fp = rows[code]["TP"], rows[code]["FP"]
        total.update(rows[code])
        print(f"{code}: {tp}/{tp + fp} TP = {tp / (tp + fp):.0%}")
    print(f"all: {total['TP']}/{total['TP'] + total['FP']} TP = {total['TP'] / (total['TP'] + total['FP']):.0%}")
    for cause, n in causes.most_common():
        print(f"  FP cause {n:3}  {cause}")


# -- main -----------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*")
    parser.add_argument("--sample", type=int, default=45, help="findings to sample (default 45)")
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--score", metavar="JUDGED_MD")
    args = parser.parse_args()
    if args.score:
        score(args.score)
        return
    rng = random.Random(SEED)
    here = os.path.dirname(os.path.abspath(__file__))
    head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"mapsafe at {head.stdout.strip()} (working tree may differ), Python {sys.version.split()[0]}")
    everything, report = [], []
    noise = read_noise(os.path.join(os.path.dirname(os.path.abspath(__file__)), "grep_noise.txt"))
    for tree in args.trees:
        name = os.path.basename(os.path.normpath(tree))
        commit = ""
        if os.path.isfile(os.path.join(tree, "COMMIT")):
            with open(os.path.join(tree, "COMMIT")) as fh:
                commit = fh.readline().strip()
        files = read_tree(tree)
        lines = sum(len(source.splitlines()) for _, source in files)
        findings, cpu, wall, rc = run_lint(tree)
        for f in findings:
            f["tree"] = name
        everything.extend(findings)
        cov = coverage(tree, files, noise)
        per_rule = dict(sorted(collections.Counter(f["code"] for f in findings).items()))
        report.append({"tree": name, "commit": commit, "files": len(files), "parsed": cov["parsed"],
                       "lines": lines, "findings": per_rule, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                       "exit": rc, "coverage": cov})
        print(f"{name:32} {commit[:12]:12} files={len(files):5} lines={lines:7} cpu={cpu:6.2f}s wall={wall:6.2f}s "
              f"findings={per_rule} sites={cov['resolved']}/{cov['sites']} entries={cov['entries']}")
    sites = sum(r["coverage"]["sites"] for r in report)
    resolved = sum(r["coverage"]["resolved"] for r in report)
    if sites:
        print(f"thread-entry coverage: {resolved}/{sites} = {resolved / sites:.0%}")
    reasons = collections.Counter(re.sub(r" \(.*", "", s["reason"]) for r in report
                                  for s in r["coverage"]["unresolved"])
    for reason, n in reasons.most_common():
        print(f"  unresolved {n:3}  {reason}")
    sample = stratified_sample(everything, args.sample, rng)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"trees": report, "findings": everything}, fh, indent=1)
    with open(os.path.join(args.out, "sample.json"), "w", encoding="utf-8") as fh:
        json.dump(sample, fh, indent=1)
    with open(os.path.join(args.out, "sample.md"), "w", encoding="utf-8") as fh:
        fh.write(f"# Sample of {len(sample)} of {len(everything)} findings (random.Random({SEED}), by rule)\n\n")
        for i, f in enumerate(sample, 1):
            steps = " → ".join(f"{s['step']} ({s['file']}:{s['line']})" for s in f["call_path"])
            fh.write(f"{i}. **{f['code']}** {f['tree']}/{f['path']}:{f['line']}: {f['message']}\n")
            if steps:
                fh.write(f"   - call_path: {steps}\n")
    print(f"sample: {len(sample)} of {len(everything)} findings -> {args.out}/sample.md")


if __name__ == "__main__":
    main()
