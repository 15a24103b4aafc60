"""The CLI's subcommand table and exit codes, and the config table's precedence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mapsafe
from mapsafe import cli, config
from mapsafe.errors import ConfigError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mapsafe", *args], capture_output=True, text=True, timeout=120
    )


def test_only_the_chosen_subcommand_is_imported():
    code = (
        "import sys\n"
        "from mapsafe import cli\n"
        "cli.build_parser('lint')\n"
        "print(sorted(m for m in ('mapsafe.lint.cli', 'mapsafe.race.cli', 'mapsafe.bench.cli') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['mapsafe.lint.cli']"


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mapsafe {mapsafe.__version__} ({mapsafe._core.LABEL})"
    out = run_cli("--help")
    assert out.returncode == 0
    for name in cli.COMMANDS:
        assert name in out.stdout


def test_no_command_is_usage_error(capsys):
    assert cli.main([]) == cli.EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_command_is_one_line_exit_2():
    out = run_cli("frobnicate")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "invalid choice: 'frobnicate'" in out.stderr
    assert "Traceback" not in out.stderr


def test_exit_code_constants():
    assert (cli.EXIT_OK, cli.EXIT_FINDINGS, cli.EXIT_USAGE, cli.EXIT_RACES) == (0, 1, 2, 66)


def run_lint_with(monkeypatch, run) -> int:
    """cli.main(["lint"]) with the lint subcommand's run() replaced by ``run``."""
    parser = cli.build_parser("lint")
    monkeypatch.setattr(cli, "build_parser", lambda command: parser)
    parser._subparsers._group_actions[0].choices["lint"].set_defaults(_run=run)
    monkeypatch.delenv("MAPSAFE_DEBUG", raising=False)
    return cli.main(["lint"])


def test_internal_error_is_one_line(monkeypatch, capsys):
    def boom(args):
        raise KeyError("internal")

    assert run_lint_with(monkeypatch, boom) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("mapsafe lint: internal error: KeyError") and err.count("\n") == 1


def test_rough_edge_13_every_error_is_one_line_in_one_format(monkeypatch, capsys):
    # mapsafe <cmd>: error: <what> (<hint>), whichever command and error kind.
    def bad(args):
        raise ConfigError("bad value for lint.format")

    assert run_lint_with(monkeypatch, bad) == 2
    assert capsys.readouterr().err == "mapsafe lint: error: bad value for lint.format (see 'mapsafe lint --help')\n"

    def prefixed(args):
        raise ConfigError("mapsafe lint: already prefixed")

    assert run_lint_with(monkeypatch, prefixed) == 2
    assert capsys.readouterr().err == "mapsafe lint: error: already prefixed (see 'mapsafe lint --help')\n"
    for args, line in [
        (["race", "--exitcode", "x", "p.py"],
         "mapsafe race: error: argument --exitcode: invalid int value: 'x' (see 'mapsafe race --help')"),
        (["race", "--bogus", "p.py"],
         "mapsafe race: error: unrecognized arguments: --bogus (see 'mapsafe race --help')"),
        (["lint", "--select", "MS999", "p.py"], "mapsafe lint: error: unknown rule code 'MS999' in select (known: "),
        (["bench", "--threads", "0"], "mapsafe bench: error: --threads: thread counts must be 1..512, got 0 (see "),
        (["--bogus"], "mapsafe: error: unrecognized arguments: --bogus (see 'mapsafe --help')"),
    ]:
        out = run_cli(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, (args, out.stderr)
        assert out.stderr.startswith(line) and out.stderr.rstrip().endswith(")"), (args, out.stderr)
        assert "[usage]" not in out.stderr and "[config]" not in out.stderr


def test_import_mapsafe_needs_only_the_stdlib():
    code = (
        "import sys, mapsafe\n"
        "third = [m for m in ('rich', 'matplotlib', 'hypothesis', 'pytest') if m in sys.modules]\n"
        "print(third)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]"


# -- config precedence: defaults < pyproject < environment < flags -----------------------


def write_pyproject(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    return path


def test_defaults(tmp_path):
    cfg = config.load(["lint", "bench"], pyproject=write_pyproject(tmp_path, ""), environ={})
    assert cfg.lint_format == "text" and cfg.bench_threads == [1, 2, 4, 8]
    assert cfg.source["lint_format"] == "default"


def test_precedence(tmp_path):
    path = write_pyproject(
        tmp_path, '[tool.mapsafe.lint]\nformat = "json"\nselect = ["MS1"]\nignore = ["MS301"]\n'
    )
    env = {"MAPSAFE_LINT_SELECT": "MS2,MS3"}
    cfg = config.load(["lint"], {"lint_ignore": ["MS000"], "lint_format": None}, pyproject=path, environ=env)
    assert cfg.lint_format == "json" and cfg.source["lint_format"] == str(path)
    assert cfg.lint_select == ["MS2", "MS3"] and cfg.source["lint_select"] == "MAPSAFE_LINT_SELECT"
    assert cfg.lint_ignore == ["MS000"] and cfg.source["lint_ignore"] == "flag"


def test_unknown_pyproject_key_is_named(tmp_path):
    path = write_pyproject(tmp_path, "[tool.mapsafe.lint]\nselcet = ['MS1']\n")
    with pytest.raises(ConfigError, match="unknown option 'selcet' in \\[tool.mapsafe.lint\\]"):
        config.load(["lint"], pyproject=path, environ={})


def test_unknown_env_var_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown environment variable MAPSAFE_RACE_EXITCDOE"):
        config.load(["race"], pyproject=write_pyproject(tmp_path, ""), environ={"MAPSAFE_RACE_EXITCDOE": "1"})


def test_other_sections_env_vars_are_ignored(tmp_path):
    cfg = config.load(["lint"], pyproject=write_pyproject(tmp_path, ""), environ={"MAPSAFE_RACE_X": "1"})
    assert cfg.lint_format == "text"


@pytest.mark.parametrize(
    "body, message",
    [
        ("[tool.mapsafe.race]\nexitcode = 'x'\n", "bad value for race.exitcode"),
        ("[tool.mapsafe.race]\nhalt_on_error = 3\n", "bad value for race.halt_on_error"),
        ("[tool.mapsafe.bench]\nthreads = []\n", "bad value for bench.threads"),
        ("[tool.mapsafe]\nrace = 3\n", "must be a table"),
        ("[tool.mapsafe.race\n", "cannot read"),
    ],
)
def test_bad_values_are_config_errors(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message.replace(".", "\\.").replace("[", "\\[")):
        config.load(["race", "bench"], pyproject=write_pyproject(tmp_path, body), environ={})


def test_env_values_are_parsed(tmp_path):
    env = {"MAPSAFE_RACE_EXITCODE": "3", "MAPSAFE_RACE_HALT_ON_ERROR": "yes", "MAPSAFE_BENCH_THREADS": "1,4"}
    cfg = config.load(["race", "bench"], pyproject=write_pyproject(tmp_path, ""), environ=env)
    assert cfg.race_exitcode == 3 and cfg.race_halt_on_error is True and cfg.bench_threads == [1, 4]


def test_find_pyproject_walks_up(tmp_path):
    write_pyproject(tmp_path, "")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert config.find_pyproject(deep) == tmp_path / "pyproject.toml"


# -- the newcomer's rough edges (issue 15) ----------------------------------------


@pytest.mark.parametrize("value", ["256", "300", "-1"])
def test_rough_edge_2_exitcode_must_be_a_real_exit_status(tmp_path, value):
    (tmp_path / "prog.py").write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "race", "--exitcode", value, "prog.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc  # refused before the program runs
    assert proc.stderr.count("\n") == 1 and f"from 0 to 255, got {value}" in proc.stderr, proc.stderr
    with pytest.raises(ConfigError, match="from 0 to 255"):
        config.load(["race"], pyproject=write_pyproject(tmp_path, f"[tool.mapsafe.race]\nexitcode = {value}\n"),
                    environ={})
    assert config.load(["race"], pyproject=write_pyproject(tmp_path, "[tool.mapsafe.race]\nexitcode = 255\n"),
                       environ={}).race_exitcode == 255


def test_rough_edge_3_an_unknown_config_table_is_an_error(tmp_path):
    path = write_pyproject(tmp_path, "[tool.mapsafe.lnit]\nselect = ['MS101']\n")
    for sections in (["lint"], ["race"]):  # whichever command reads the file
        known = r"unknown table \[tool\.mapsafe\.lnit\] \(known: .*\[tool\.mapsafe\.lint\]"
        with pytest.raises(ConfigError, match=known):
            config.load(sections, pyproject=path, environ={})
    (tmp_path / "ok.py").write_text("x = 1\n")
    proc = subprocess.run([sys.executable, "-m", "mapsafe", "lint", "ok.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "[tool.mapsafe.lnit]" in proc.stderr, proc


def test_lint_target_version_comes_from_requires_python_unless_set(tmp_path):
    path = write_pyproject(tmp_path, '[project]\nname = "x"\nrequires-python = ">=3.9, <4"\n')
    cfg = config.load(["lint"], pyproject=path, environ={})
    assert cfg.lint_target_version == "3.9" and "requires-python" in cfg.source["lint_target_version"]
    path = write_pyproject(tmp_path, '[project]\nrequires-python = ">=3.9"\n[tool.mapsafe.lint]\ntarget-version = "3.12"\n')
    assert config.load(["lint"], pyproject=path, environ={}).lint_target_version == "3.12"
    cfg = config.load(["lint"], pyproject=path, environ={"MAPSAFE_LINT_TARGET_VERSION": "3.13"})
    assert cfg.lint_target_version == "3.13" and cfg.source["lint_target_version"] == "MAPSAFE_LINT_TARGET_VERSION"
    assert config.load(["lint"], pyproject=write_pyproject(tmp_path, ""), environ={}).lint_target_version == ""
    with pytest.raises(ConfigError, match="bad value for lint.target_version: expected a Python version"):
        config.load(["lint"], pyproject=write_pyproject(tmp_path, '[tool.mapsafe.lint]\ntarget-version = "py3"\n'),
                    environ={})
