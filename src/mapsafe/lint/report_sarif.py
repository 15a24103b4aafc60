"""SARIF 2.1.0 report, as GitHub code scanning reads it: rule metadata, results and read errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

from .._version import __version__
from .messages import RULES, Finding

__all__ = ["render", "build"]

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"error": "error", "warning": "warning", "note": "note"}


def _rule(rule: type[Finding], docs_url: str) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.explanation},
        "help": {"text": rule.explanation, "markdown": f"**{rule.code} {rule.name}**\n\n{rule.explanation}"},
        "defaultConfiguration": {"level": _LEVELS[rule.severity]},
        "properties": {"tags": ["concurrency" if rule.code.startswith("MS2") else "correctness"],
                       "precision": "high" if rule.code in ("MS000", "MS101") else "medium"},
    }
    if docs_url:  # the rule's page on the docs site (docs/lint/msNNN.md), anchored at the rule
        page = rule.code.lower()
        entry["helpUri"] = f"{docs_url.rstrip('/')}/lint/{page}/#{page}"
    return entry


def _uri(path: str) -> str:
    return quote(Path(path).as_posix())


def build(findings: Iterable[Finding], errors: Iterable[tuple[str, str]] = (), *,
          docs_url: str = "") -> dict[str, object]:
    """The SARIF log as a dict (render() dumps it).

    *docs_url* is where the docs site is served ('' for nowhere): each rule's
    ``helpUri`` is then its page there. Without it the rules carry their full
    help text only, since a link to a site nobody serves would be a dead one.
    """
    index_of = {rule.code: i for i, rule in enumerate(RULES)}
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index_of[f.code],
            "level": _LEVELS[f.severity],
            "message": {"text": f.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(f.path), "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": f.line, "startColumn": f.col,
                               "endLine": max(f.end_line, f.line), "endColumn": max(f.end_col, 1)},
                }
            }],
        }
        if f.trace:
            result["codeFlows"] = [{"threadFlows": [{"locations": [
                {"location": {"message": {"text": step},
                              "physicalLocation": {"artifactLocation": {"uri": _uri(path), "uriBaseId": "%SRCROOT%"},
                                                   "region": {"startLine": max(line, 1)}}}}
                for step, path, line in f.trace
            ]}]}]
        results.append(result)
    notifications = [
        {"level": "error", "message": {"text": f"{path}: {reason}"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(path), "uriBaseId": "%SRCROOT%"}}}]}
        for path, reason in errors
    ]
    root = Path.cwd().as_uri().rstrip("/") + "/"
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mapsafe",
                "semanticVersion": __version__,
                "version": __version__,
                "rules": [_rule(rule, docs_url) for rule in RULES],
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
            "columnKind": "unicodeCodePoints",
            "invocations": [{"executionSuccessful": not notifications,
                             "toolExecutionNotifications": notifications}],
            "results": results,
        }],
    }


def render(findings: Iterable[Finding], errors: Iterable[tuple[str, str]] = (), *, docs_url: str = "") -> str:
    return json.dumps(build(findings, errors, docs_url=docs_url), indent=2) + "\n"
