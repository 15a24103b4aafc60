"""The README is what a newcomer runs first: its commands are CI's, and its quickstart prints what it shows.

The quickstart's commands are run here exactly as a reader types them, from the
repository's root, and compared with the README's ``console`` blocks: the lint
output line by line, the race report's shape (its addresses and counts change
from run to run), the fixed program's output and every exit status.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def console(text: str) -> list[tuple[str, str]]:
    """Each ``$ command`` of the console blocks in *text*, with the output shown under it."""
    pairs: list[tuple[str, str]] = []
    for block in fenced(text, "console"):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            pairs.append((command, output))
    return pairs


def run(command: str) -> subprocess.CompletedProcess[str]:
    # `mapsafe X` as the reader types it, through the installed interpreter's module.
    argv = command.split()
    assert argv[0] == "mapsafe", command
    return subprocess.run([sys.executable, "-m", "mapsafe", *argv[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_set_up_is_exactly_two_commands_and_ci_runs_them() -> None:
    blocks = fenced(section("Set up"), "bash")
    assert len(blocks) == 1, "the Set up section has one command block"
    commands = blocks[0].strip().splitlines()
    assert commands == ['python3 -m pip install -e ".[test]"', "python3 -m pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # Every regular lane runs the two commands verbatim (pip's quiet flags aside).
    assert re.search(r'python3 -m pip install "\$\{pip_quiet\[@\]\}" -e "\.\[test\]" &&\s*\n\s*python3 -m pytest\n', ci)


def test_every_relative_link_resolves() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(#[^)\s]*)?\)", README)
    local = [(target, anchor) for target, anchor in links if "://" not in target]
    assert local, "the README links to its docs"
    for target, anchor in local:
        path = ROOT / target
        assert path.exists(), f"README links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                     for h in re.findall(r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)}
            assert anchor[1:] in slugs, f"{target} has no heading for {anchor}"


def quickstart_commands() -> list[tuple[str, str]]:
    pairs = console(section("Quickstart"))
    assert [c for c, _ in pairs] == [
        "mapsafe race examples/lost_update.py", "echo $?",
        "mapsafe lint examples/", "echo $?",
        "mapsafe race examples/quickstart.py", "echo $?",
    ], "the quickstart's commands changed: update this test with them"
    return pairs


def test_quickstart_lint_prints_what_the_readme_shows() -> None:
    pairs = quickstart_commands()
    shown, status = pairs[2][1], pairs[3][1].strip()
    proc = run(pairs[2][0])
    assert proc.stdout == shown
    assert str(proc.returncode) == status == "1"


def test_quickstart_race_report_has_the_readme_shape() -> None:
    pairs = quickstart_commands()
    shown, status = pairs[0][1], pairs[1][1].strip()
    proc = run(pairs[0][0])
    assert str(proc.returncode) == status == "66"

    def shape(text: str) -> list[str]:
        # Addresses and the program's lost-update count differ between runs.
        text = re.sub(r"0x[0-9a-f]+", "0x?", text)
        text = re.sub(r"Thread-\d+", "Thread-?", text)
        # Whether the other thread still runs when the race is seen is timing too.
        text = re.sub(r"\((running|finished)\) created at:", "(?) created at:", text)
        return [re.sub(r"total: \d+", "total: ?", line) for line in text.splitlines()]

    shown_lines = shape(shown)
    # The README shows stderr (the report) followed by the program's stdout.
    assert shape(proc.stderr) == shown_lines[:-1]
    assert shape(proc.stdout) == shown_lines[-1:]


def test_quickstart_fix_prints_what_the_readme_shows() -> None:
    pairs = quickstart_commands()
    shown, status = pairs[4][1], pairs[5][1].strip()
    proc = run(pairs[4][0])
    assert proc.stdout == shown and proc.stderr == ""
    assert str(proc.returncode) == status == "0"
    # And the code the README shows is that file's code, its module docstring aside.
    (code,) = fenced(section("Quickstart"), "python")
    source = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    body = tree.body[1] if ast.get_docstring(tree) else tree.body[0]
    assert source.splitlines(keepends=True)[body.lineno - 1:] == code.splitlines(keepends=True)


def test_the_getting_started_page_has_the_same_quickstart() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    ours = section("Quickstart").replace("](docs/", "](")
    assert page.split("## Quickstart\n", 1)[1].strip() == ours.strip()


@pytest.mark.parametrize("command", ["mapsafe lint --list-rules", "mapsafe bench --list", "mapsafe race --help"])
def test_the_tool_screens_commands_run(command: str) -> None:
    proc = run(command)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
