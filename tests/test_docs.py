"""The documentation site builds with ``mkdocs build --strict``, and shows what the code owns.

The site is built once (into a temporary directory, never ``site/``) with
the MkDocs that the test extra installs. Strict mode turns every warning
into a failure: a broken link or anchor, a page missing from the nav, a
snippet that is not there, a docstring that mkdocstrings cannot render.
The tests then read the HTML for the parts that come from code, so the
site can show neither a stale table nor a rule without its page.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapsafe import config, contract
from mapsafe.lint.messages import RULES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Not a skip: the docs extra is part of the test extra, so a missing MkDocs is a broken setup.
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("MkDocs is not installed: the test extra brings it (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def _text(page: Path) -> str:
    return html.unescape(page.read_text(encoding="utf-8"))


def test_every_page_of_the_nav_is_built(site: Path) -> None:
    pages = sorted(p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md") if "_hooks" not in p.parts)
    assert len(pages) >= 30
    for page in pages:
        built = site / (page.parent if page.name == "index.md" else page.with_suffix("")) / "index.html"
        assert built.is_file(), f"{page} was not built"


def test_every_lint_rule_has_a_page_with_its_anchor_and_its_report_text(site: Path) -> None:
    for rule in RULES:
        slug = rule.code.lower()
        page = site / "lint" / slug / "index.html"
        assert page.is_file(), f"{rule.code} has no page"
        text = _text(page)
        assert f'id="{slug}"' in text, f"{rule.code}'s page has no #{slug} anchor (SARIF helpUri points there)"
        assert rule.name in text and rule.summary in text
        assert "mapsafe:rule" not in text, "the rule marker was not replaced"


def test_the_configuration_page_shows_every_option_of_the_table(site: Path) -> None:
    text = _text(site / "configuration" / "index.html")
    assert "mapsafe:config-table" not in text
    for opt in config.OPTIONS:
        assert opt.env in text and opt.help in text, opt.key


def test_every_flag_in_the_configuration_table_is_a_real_flag() -> None:
    # The hook derives each option's flag from its name; the CLI must agree.
    from mapsafe import cli

    helps = {}
    for section in {opt.section for opt in config.OPTIONS}:
        parser = cli.build_parser(section)
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps[section] = {flag for action in subs.choices[section]._actions for flag in action.option_strings}
    for opt in config.OPTIONS:
        flag = "--" + opt.name.replace("_", "-")
        if opt.default is True:
            flag = "--no-" + opt.name.replace("_", "-")
        assert flag in helps[opt.section], f"{opt.key}: mapsafe {opt.section} has no {flag}"


def test_the_semantics_page_shows_the_contract_of_every_operation(site: Path) -> None:
    text = _text(site / "maps" / "semantics" / "index.html")
    assert "mapsafe:contract-table" not in text
    table = text[text.index("<th>happens-before</th>"):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>\s*<td><code>([a-z_]+)</code></td>\s*<td>([a-z]+)</td>", table)
    assert rows == [(op.name, op.kind) for op in contract.OPS]


def test_the_reference_is_rendered_from_the_docstrings(site: Path) -> None:
    import mapsafe

    text = _text(site / "maps" / "reference" / "index.html")
    for name in ("SyncMap", "LockedMap", "ShardedMap", "RWLock", "Cache"):
        first_line = (getattr(mapsafe, name).__doc__ or "").strip().splitlines()[0]
        # ``code`` in a docstring is rendered as <code>code</code>.
        rendered = re.sub(r"``([^`]+)``", r"<code>\1</code>", first_line)
        assert first_line and rendered in text, name


def test_the_plot_and_the_changelog_are_in_the_site(site: Path) -> None:
    assert (site / "bench" / "plot.png").stat().st_size > 10_000
    changelog = _text(site / "changelog" / "index.html")
    first = next(line for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
                 if line.startswith("## ["))
    assert first[3:].split("]")[0].lstrip("[") in changelog


def test_sarif_help_links_land_on_the_rule_pages(site: Path) -> None:
    # `mapsafe lint --docs-url URL` links each SARIF rule to URL/lint/msNNN/#msNNN: that page
    # and that anchor must be in the built site.
    from mapsafe.lint import report_sarif

    log = report_sarif.build([], docs_url="https://docs.example.org/mapsafe")
    for rule in log["runs"][0]["tool"]["driver"]["rules"]:  # type: ignore[index]
        page, anchor = rule["helpUri"].removeprefix("https://docs.example.org/mapsafe/").split("#")
        built = site / page / "index.html"
        assert built.exists(), rule["helpUri"]
        assert f'id="{anchor}"' in built.read_text(encoding="utf-8"), rule["helpUri"]


RULE_EXAMPLE = re.compile(r"<!-- mapsafe:(flagged|clean) -->\n```python\n(.*?)```", re.S)


@pytest.mark.parametrize("rule", [r for r in RULES if r.code != "MS900"], ids=lambda r: r.code)
def test_each_rule_page_has_an_example_the_rule_flags_and_a_fix_it_does_not(rule: type) -> None:
    # MS900 (a rule crashed) has no example: it is a bug in mapsafe.
    from mapsafe.lint.checker import Selection, lint_source

    page = (ROOT / "docs" / "lint" / f"{rule.code.lower()}.md").read_text(encoding="utf-8")
    blocks = RULE_EXAMPLE.findall(page)
    assert [kind for kind, _ in blocks] == ["flagged", "clean"], f"{rule.code}'s page needs an example and a fix"
    (_, flagged), (_, clean) = blocks
    every_rule = Selection(["MS"], [])
    assert rule.code in [f.code for f in lint_source(flagged, "example.py", every_rule)]
    assert [f.code for f in lint_source(clean, "example.py", every_rule)] == []


def test_the_newest_release_in_the_changelog_is_the_package_version() -> None:
    import tomllib

    import mapsafe

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["version"] == mapsafe.__version__
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert releases[0] == ("Unreleased", "")  # Keep a Changelog: the unreleased section first
    assert releases[1][0] == mapsafe.__version__ and releases[1][1], releases[:2]
