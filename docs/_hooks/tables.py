"""MkDocs hook: the tables that code owns, rendered from that code at build time.

A page holds a marker; the build replaces it, so the site can never show a stale table:
``<!-- mapsafe:config-table -->`` (every option, from mapsafe.config.OPTIONS) and
``<!-- mapsafe:contract-table -->`` (what each map operation guarantees, from mapsafe.contract) and
``<!-- mapsafe:rule MS201 -->`` (a lint rule's name, severity and the text its reports carry,
from mapsafe.lint.messages.RULES).
"""

from __future__ import annotations

import re
from typing import Any


def _config_table() -> str:
    from mapsafe import config

    rows = ["| option | `pyproject.toml` | environment | flag | default |", "|---|---|---|---|---|"]
    for opt in config.OPTIONS:
        flag = "--" + opt.name.replace("_", "-")
        if opt.default is True:  # a switch that is on by default is turned off by --no-NAME
            flag = "--no-" + opt.name.replace("_", "-")
        rows.append(f"| {opt.help} | `[tool.mapsafe.{opt.section}]` `{opt.name}` | `{opt.env}` | "
                    f"`mapsafe {opt.section} {flag}` | `{opt.default!r}` |")
    return "\n".join(rows) + "\n"


def _contract_table() -> str:
    from mapsafe import contract

    return contract.render_markdown()


def _rule(code: str) -> str:
    from mapsafe.lint.messages import rule_for

    rule = rule_for(code)
    default = "off unless selected (`--select " + code + "`)" if rule.opt_in else "on"
    # The summary is the rule's one line (--list-rules, SARIF's shortDescription); the page's own
    # text says more than the explanation SARIF carries, so that is not repeated here.
    return (f"**{rule.summary}**\n\n"
            f"Name `{rule.name}` · severity **{rule.severity}** · default **{default}**\n")


RULE_MARKER = re.compile(r"<!-- mapsafe:rule (MS\d{3}) -->")

MARKERS = {
    "<!-- mapsafe:config-table -->": _config_table,
    "<!-- mapsafe:contract-table -->": _contract_table,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, render in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return RULE_MARKER.sub(lambda m: _rule(m.group(1)), markdown)
