"""Source-string harness for the race detector: run a snippet under `mapsafe race`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass

TIMEOUT = 60  # seconds per program; every snippet joins its threads long before this


@dataclass
class Run:
    """What one `mapsafe race` run produced."""

    races: list  # the "races" list of the --json report
    stdout: str
    stderr: str
    returncode: int

    def lines(self) -> set:
        """Line numbers (in the snippet) of the top frame of every racing access."""
        out = set()
        for race in self.races:
            for side in ("current", "previous"):
                frames = race[side]["frames"]
                if frames and frames[0]["file"].endswith("prog.py"):
                    out.add(frames[0]["line"])
        return out


def clean_env() -> dict:
    """The environment for a detector run: no MAPSAFE_ setting of the caller's
    leaks in, except MAPSAFE_CORE, so the pure-core pass runs these programs
    on the pure core too."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MAPSAFE_") or k == "MAPSAFE_CORE"}


def run_race(src: str, *options: str, args: tuple = (), files: dict | None = None, plain: bool = False) -> Run:
    """Write ``src`` to prog.py in a fresh directory and run it under the detector.

    ``plain=True`` runs it with plain python instead (for comparisons).
    """
    with tempfile.TemporaryDirectory(prefix="mapsafe-race-") as tmp:
        with open(os.path.join(tmp, "prog.py"), "w", encoding="utf-8") as fh:
            fh.write(textwrap.dedent(src))
        for name, text in (files or {}).items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(textwrap.dedent(text))
        out = os.path.join(tmp, "races.json")
        if plain:
            cmd = [sys.executable, "prog.py", *args]
        else:
            cmd = [sys.executable, "-m", "mapsafe", "race", "--json", out, *options, "prog.py", *args]
        env = clean_env()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT, env=env)
        races = []
        if not plain and os.path.exists(out):
            with open(out, encoding="utf-8") as fh:
                races = json.load(fh)["races"]

        def norm(text: str) -> str:  # runs in different temp dirs compare equal
            return text.replace(os.path.realpath(tmp), "<tmp>").replace(tmp, "<tmp>")

        return Run(races, norm(proc.stdout), norm(proc.stderr), proc.returncode)


def race(src: str, *options: str, **kwargs) -> Run:
    """Run ``src`` under the detector; the detector itself must not have failed."""
    run = run_race(src, *options, **kwargs)
    assert "internal error" not in run.stderr, run.stderr
    return run
