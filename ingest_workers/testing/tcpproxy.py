"""A TCP forwarder that can be cut and restored: a network-level outage of a service
(PostgreSQL in the chaos run) without stopping the service other people share.

``cut()`` resets every open connection and refuses new ones (accepted, then closed
at once), which is what clients see when a database goes down; ``restore()``
forwards again.
"""

from __future__ import annotations

import socket
import threading

import psycopg2.extensions

_BUFFER = 64 * 1024


class CuttableProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self._upstream = upstream
        self._listener = socket.create_server((host, port))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down = False
        self._closed = False
        self.cuts = 0
        self.refused = 0  # connections refused while cut: how often clients tried again (tests wait on it)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> CuttableProxy:
        threading.Thread(target=self._accept_loop, name="tcpproxy", daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            self._down = True
            self.cuts += 1
            doomed, self._open = self._open, set()
        for sock in doomed:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._down = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                down = self._down
                self.refused += down
            if down:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(_BUFFER):
                target.sendall(data)
        except OSError:
            pass  # cut, or the other side went away
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def postgres_address(database_url: str) -> tuple[str, int]:
    params = psycopg2.extensions.parse_dsn(database_url)
    return params.get("host") or "127.0.0.1", int(params.get("port") or 5432)


def dsn_through(database_url: str, address: tuple[str, int]) -> str:
    """``database_url`` with host and port replaced by the proxy's (as a key=value DSN)."""
    params = psycopg2.extensions.parse_dsn(database_url)
    params.update(host=address[0], port=str(address[1]))
    return psycopg2.extensions.make_dsn(**params)
