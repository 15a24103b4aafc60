"""One configuration table: defaults, then pyproject, then environment, then flags."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["OPTIONS", "Option", "Config", "load", "find_pyproject"]


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a whole number, got {value!r}")


def _as_positive_int(value: Any) -> int:
    n = _as_int(value)
    if n < 1:
        raise ValueError(f"expected a whole number of at least 1, got {n}")
    return n


def _as_exit_status(value: Any) -> int:
    """An exit status a process can really have: 0..255 (256 would exit 0, 300 would exit 44)."""
    n = _as_int(value)
    if not 0 <= n <= 255:
        raise ValueError(f"expected an exit status from 0 to 255, got {n}")
    return n


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError(f"expected a number, got {value!r}")


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _as_python_version(value: Any) -> str:
    """'3.11': the oldest Python the checked code runs on ('' means: find it out)."""
    if isinstance(value, str) and (value.strip() == "" or re.fullmatch(r"3\.\d{1,2}", value.strip())):
        return value.strip()
    raise ValueError(f"expected a Python version such as '3.11', got {value!r}")


def _as_http_url(value: Any) -> str:
    """An http(s) URL with a host, such as 'https://docs.example.org/mapsafe' ('' means none)."""
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return ""
        parts = urlsplit(text)
        if parts.scheme in ("http", "https") and parts.netloc and not any(c.isspace() for c in text):
            return text
    raise ValueError(f"expected an http:// or https:// URL, got {value!r}")


def requires_python_floor(spec: str) -> str:
    """'3.9' for '>=3.9' (or '~=3.9', '==3.9.*', '>=3.9,<4'); '' when the specifier names no floor."""
    found = re.search(r"(?:>=|~=|==)\s*3\.(\d{1,2})", spec)
    return f"3.{found.group(1)}" if found else ""


def _as_list(value: Any) -> list[str]:
    """A list of strings; from the environment or a flag, comma-separated."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise ValueError(f"expected a list of strings, got {value!r}")


def _as_int_list(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        raise ValueError(f"expected a list of whole numbers, got {value!r}")
    out = [_as_int(v) for v in items]
    if not out:
        raise ValueError("expected at least one number")
    return out


@dataclass(frozen=True)
class Option:
    """One row of the table: where it lives and how to parse it."""

    attribute: str  # the name code uses: Config.get("lint.select") or cfg.lint_select
    key: str  # "section:name" as written under [tool.mapsafe.<section>]
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def section(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1]

    @property
    def env(self) -> str:
        return f"MAPSAFE_{self.section}_{self.name}".upper().replace("-", "_")


# The table. Every configurable value of every subcommand is one row here.
OPTIONS: tuple[Option, ...] = (
    # mapsafe race
    Option("race_exitcode", "race:exitcode", _as_exit_status, 66, "exit status when races were found (0..255)"),
    Option("race_include", "race:include", _as_list, [], "extra packages or path globs to instrument"),
    Option("race_suppress", "race:suppress", _as_str, "", "suppressions file"),
    Option("race_strip_path_prefix", "race:strip_path_prefix", _as_str, "", "prefix removed from reported paths"),
    Option("race_halt_on_error", "race:halt_on_error", _as_bool, False, "stop at the first race"),
    Option("race_json", "race:json", _as_str, "", "write machine-readable reports to this file"),
    Option(
        "race_history", "race:history", _as_positive_int, 8192,
        "key states remembered per map; past it the oldest are forgotten",
    ),
    # mapsafe lint
    Option("lint_select", "lint:select", _as_list, [],
           "rule codes or prefixes to run (default: all but the opt-in MS301)"),
    Option("lint_ignore", "lint:ignore", _as_list, [], "rule codes or prefixes to skip"),
    Option("lint_exclude", "lint:exclude", _as_list, [], "path globs not to lint"),
    Option("lint_format", "lint:format", _as_str, "text", "text, json or sarif"),
    Option("lint_max_call_depth", "lint:max_call_depth", _as_int, 16,
           "calls followed from a thread's entry when deciding what runs on it"),
    Option("lint_cache", "lint:cache", _as_bool, True, "keep findings in .mapsafe_cache/ to skip unchanged files"),
    Option("lint_target_version", "lint:target_version", _as_python_version, "",
           "oldest Python the checked code runs on, such as 3.11 (default: the floor of "
           "[project] requires-python, else the running Python)"),
    Option("lint_thread_entries", "lint:thread_entries", _as_list, [],
           "thread entries the linter cannot see: 'pkg.mod:func' runs on a thread; "
           "'lib.Client.add_callback' runs its first argument on one"),
    Option("lint_docs_url", "lint:docs_url", _as_http_url, "",
           "where this documentation site is served; SARIF rules then link their pages (helpUri)"),
    # mapsafe bench
    Option("bench_threads", "bench:threads", _as_int_list, [1, 2, 4, 8], "thread counts"),
    Option("bench_duration", "bench:duration", _as_float, 0.5, "seconds per round"),
    Option("bench_rounds", "bench:rounds", _as_int, 5, "rounds per cell"),
    Option("bench_keys", "bench:keys", _as_int, 10_000, "distinct keys per workload"),
    Option("bench_read_ratio", "bench:read_ratio", _as_float, 0.9, "read fraction for mixed workloads"),
    Option("bench_seed", "bench:seed", _as_int, 0, "random seed"),
    Option("bench_implementations", "bench:implementations", _as_list, [], "implementations to run (default: all)"),
    Option("bench_workloads", "bench:workloads", _as_list, [],
           "workloads or groups to run: maps, cache, all (default: maps)"),
    Option("bench_redis", "bench:redis", _as_str, "",
           "Redis URL: add RedisMap rows, against raw redis-py on the same server (default: none)"),
)

_BY_KEY = {opt.key: opt for opt in OPTIONS}
_BY_ATTR = {opt.attribute: opt for opt in OPTIONS}


def default(attribute: str) -> Any:
    """The table's default for ``attribute`` (for help texts)."""
    return _BY_ATTR[attribute].default


class Config:
    """Resolved values for the options of the sections asked for.

    ``source[attribute]`` says where a value came from ("default",
    "pyproject.toml", "MAPSAFE_..." or "flag"), which error messages quote.
    """

    def __init__(self, values: dict[str, Any], source: dict[str, str]) -> None:
        self._values = values
        self.source = source

    def __getattr__(self, attribute: str) -> Any:
        try:
            return self._values[attribute]
        except KeyError:
            raise AttributeError(f"no config option {attribute!r}") from None

    def get(self, attribute: str) -> Any:
        return self._values[attribute]

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` (default: the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_pyproject(path: Path) -> tuple[dict[str, Any], str]:
    """([tool.mapsafe], [project] requires-python or '') of one pyproject.toml."""
    import tomllib  # stdlib on 3.11+; imported late to keep `import mapsafe` light

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get("mapsafe", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.mapsafe] must be a table")
    project = data.get("project", {})
    requires = project.get("requires-python", "") if isinstance(project, dict) else ""
    return table, requires if isinstance(requires, str) else ""


def _convert(opt: Option, raw: Any, where: str) -> Any:
    try:
        return opt.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: bad value for {opt.key.replace(':', '.')}: {exc}") from None


def load(
    sections: Iterable[str],
    flags: Mapping[str, Any] | None = None,
    *,
    pyproject: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the options of ``sections``.

    ``flags`` maps attributes to values from the command line; ``None``
    means "not given". An unknown key under ``[tool.mapsafe.<section>]`` or
    an unknown ``MAPSAFE_<SECTION>_*`` variable is a :class:`ConfigError`
    that names it.
    """
    wanted = set(sections)
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for opt in OPTIONS:
        if opt.section in wanted:
            values[opt.attribute] = opt.default
            source[opt.attribute] = "default"

    path = pyproject if pyproject is not None else find_pyproject()
    if path is not None:
        table, requires = _read_pyproject(path)
        floor = requires_python_floor(requires)
        if floor and "lint_target_version" in values:  # the project says which Pythons it runs on
            values["lint_target_version"] = floor
            source["lint_target_version"] = f"{path} [project] requires-python"
        sections_known = sorted({opt.section for opt in OPTIONS})
        for name in table:  # a misspelt table ([tool.mapsafe.lnit]) would silently do nothing
            if name not in sections_known:
                raise ConfigError(f"{path}: unknown table [tool.mapsafe.{name}] "
                                  f"(known: {', '.join(f'[tool.mapsafe.{k}]' for k in sections_known)})")
        for section in sorted(wanted):
            sub = table.get(section, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{path}: [tool.mapsafe.{section}] must be a table")
            for name, raw in sub.items():
                found = _BY_KEY.get(f"{section}:{name.replace('-', '_')}")
                if found is None:
                    known = ", ".join(o.name for o in OPTIONS if o.section == section)
                    raise ConfigError(
                        f"{path}: unknown option {name!r} in [tool.mapsafe.{section}] (known: {known})"
                    )
                values[found.attribute] = _convert(found, raw, str(path))
                source[found.attribute] = str(path)

    env_names = {opt.env: opt for opt in OPTIONS if opt.section in wanted}
    prefixes = tuple(f"MAPSAFE_{s.upper()}_" for s in wanted)
    for name, raw in environ.items():
        if not name.startswith(prefixes):
            continue
        by_env = env_names.get(name)
        if by_env is None:
            raise ConfigError(f"unknown environment variable {name} (known: {', '.join(sorted(env_names))})")
        values[by_env.attribute] = _convert(by_env, raw, name)
        source[by_env.attribute] = name

    for attribute, raw in (flags or {}).items():
        if raw is None:
            continue
        by_attr = _BY_ATTR.get(attribute)
        if by_attr is None:
            raise ConfigError(f"unknown option {attribute!r}")
        values[attribute] = _convert(by_attr, raw, "--" + by_attr.name.replace("_", "-"))
        source[attribute] = "flag"
    return Config(values, source)
