"""A loopback TCP proxy for the RedisMap fault tests: forward, stall, or swallow one reply and hang up."""

from __future__ import annotations

import select
import socket
import threading

__all__ = ["Proxy"]

_POLL = 0.05  # seconds a pump waits in select before it looks at the proxy's state again
_JOIN_TIMEOUT = 10.0  # seconds close() waits for each thread


class _Pair:
    """One proxied connection: the client's socket, the server's, and the thread pumping between them."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.tail = b""  # the last bytes the client sent, so a marker split across two reads is still seen
        self.swallow_next_reply = False  # set by the pump when a marked request goes up; read by the same pump
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            try:
                sock.close()
            except OSError:
                pass


class Proxy:
    """Listens on 127.0.0.1 and forwards each connection to ``upstream_port``, one thread per connection.

    ``stall()`` stops forwarding (bytes wait, unread, in the kernel);
    ``resume()`` closes every connection open meanwhile, so what waited is
    never delivered, and forwards new ones. ``drop_reply_to(marker)``
    forwards the next request containing ``marker``, then swallows the
    server's reply and closes both ends: the command ran, its client never
    hears so.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        # Everything below is guarded by _lock.
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []  # connections not yet closed by close() or resume()
        self._threads: list[threading.Thread] = []  # every thread started, for close() to join
        self._stall_requests = False
        self._stall_replies = False
        self._marker: bytes | None = None  # drop the reply to the next request containing this
        self._drops_left = 0
        self.dropped = 0  # replies swallowed so far
        self.accepted = 0  # connections accepted so far
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "Proxy":
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="redis-proxy")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def stall(self, *, requests: bool = True, replies: bool = True) -> None:
        with self._lock:
            self._stall_requests, self._stall_replies = requests, replies

    def resume(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._stall_requests = self._stall_replies = False
        for pair in pairs:
            pair.close()

    def drop_reply_to(self, marker: bytes, times: int = 1) -> None:
        with self._lock:
            self._marker, self._drops_left = marker, times

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            pairs, threads = self._pairs, self._threads
            self._pairs = []
        for pair in pairs:
            pair.close()
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], _POLL)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()  # the server is down: the client sees the connection closed
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self.accepted += 1
                self._pairs.append(pair)
            self._spawn(self._pump, pair)

    def _pump(self, pair: _Pair) -> None:
        try:
            while not pair.closed.is_set() and not self._stopping.is_set():
                ready, _, _ = select.select(self._flowing(pair), [], [], _POLL)
                # Look again: stall() may have come while select waited, and
                # what arrives after stall() returns must stay unread.
                allowed = self._flowing(pair)
                for sock in ready:
                    if sock not in allowed:
                        continue
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is pair.client:
                        self._arm(pair, data)
                        pair.upstream.sendall(data)
                    elif pair.swallow_next_reply:
                        with self._lock:
                            self.dropped += 1
                        return  # the reply is thrown away and both ends closed, below
                    else:
                        pair.client.sendall(data)
        except (OSError, ValueError):
            pass  # a socket closed under us: by resume(), close(), or either end
        finally:
            pair.close()

    def _flowing(self, pair: _Pair) -> list[socket.socket]:
        """The sockets of ``pair`` that the pump may read now."""
        with self._lock:
            return ([] if self._stall_requests else [pair.client]) + ([] if self._stall_replies else [pair.upstream])

    def _arm(self, pair: _Pair, data: bytes) -> None:
        """Arm this connection to swallow its next reply if ``data`` completes the marker."""
        seen = pair.tail + data
        with self._lock:
            if self._marker is not None and self._drops_left > 0 and self._marker in seen:
                self._drops_left -= 1
                pair.swallow_next_reply = True
            width = len(self._marker or b"")
        pair.tail = seen[-width:] if width else b""
