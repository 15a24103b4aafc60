"""The flake8 plugin: registered under the MS prefix, reports the same findings, honours flake8's noqa."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest

from mapsafe.lint.flake8_plugin import MapsafeFlake8

pytest.importorskip("flake8")

SOURCE = textwrap.dedent("""\
    import threading
    d = {"a": 1}
    for k in d:
        del d[k]
    for k in d:
        del d[k]  # noqa: MS101
    hits = {}
    def work(key):
        hits["total"] += 1
    for i in range(4):
        threading.Thread(target=work, args=(i,)).start()
""")


def test_plugin_class_yields_flake8_tuples():
    plugin = MapsafeFlake8(ast.parse(SOURCE), "x.py", SOURCE.splitlines(keepends=True))
    results = list(plugin.run())
    # flake8 applies noqa itself, so the plugin reports line 6 too; columns are 0-based.
    assert [(line, col, text.split()[0]) for line, col, text, _ in results] == [
        (4, 8, "MS101"), (6, 8, "MS101"), (9, 4, "MS203"),
    ]
    assert all(kind is MapsafeFlake8 for *_, kind in results)


def test_flake8_select_ms_in_a_subprocess(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(SOURCE)
    proc = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "MS", str(path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    found = [line.split(":", 3)[1:3] + [line.split(": ", 1)[1].split()[0]] for line in proc.stdout.splitlines()]
    assert found == [["4", "9", "MS101"], ["9", "5", "MS203"]]
    assert "several threads at once" in proc.stdout


def test_flake8_clean_file_exits_0(tmp_path):
    path = tmp_path / "clean.py"
    path.write_text("d = {}\nfor k in list(d):\n    del d[k]\n")
    proc = subprocess.run([sys.executable, "-m", "flake8", "--select", "MS", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
