"""Fault injection for the mock source server: the knobs the chaos run and the
resilience tests turn.

Each data response rolls once against the configured rates and is then served
normally or as one fault:

    error       HTTP 503 with a JSON error body
    throttle    HTTP 429 with ``Retry-After``
    drop        headers and half the body, then the connection is closed
    malformed   HTTP 200, ``application/json``, a body cut in half (not JSON)
    wrong_type  HTTP 200, ``text/html``: a proxy's error page
    oversize    HTTP 200, valid JSON padded past ``oversize_bytes``

``unreadable`` is the share of pages (by URL, decided by the seed) that are malformed on
*every* request, so they stay unreadable through all the client's retries: lost pages.
``latency`` is added to every faulted or normal answer. The request handler calls
:meth:`FaultInjector.respond` in one place; nothing else here knows about pages.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler

FAULTS = ("error", "throttle", "drop", "malformed", "wrong_type", "oversize")


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities (0..1) of each fault per data response; they must sum to at most 1."""

    error: float = 0.0
    throttle: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0
    wrong_type: float = 0.0
    oversize: float = 0.0
    unreadable: float = 0.0  # share of pages malformed on every request (they stay unreadable)
    latency: float = 0.0  # seconds added to every data response
    retry_after: int = 1  # seconds, sent with each 429
    oversize_bytes: int = 2 * 1024 * 1024
    seed: int | None = None  # fixed seed: the same sequence of faults

    def __post_init__(self) -> None:
        rates = [getattr(self, name) for name in FAULTS]
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must each be in [0, 1] and sum to at most 1, got {rates}")
        if not 0.0 <= self.unreadable <= 1.0:
            raise ValueError(f"unreadable must be in [0, 1], got {self.unreadable}")

    @property
    def active(self) -> bool:
        return self.latency > 0 or self.unreadable > 0 or any(getattr(self, name) for name in FAULTS)

    def stays_unreadable(self, path: str) -> bool:
        """Whether the page at ``path`` (with its query) is one of the ``unreadable`` share."""
        if not self.unreadable:
            return False
        digest = hashlib.sha256(f"{self.seed}:{path}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64 < self.unreadable

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """``"error=0.2,throttle=0.1,malformed=0.05"`` (the ``--faults`` flag) -> a config."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, raw = part.partition("=")
            if name not in known or not raw:
                raise ValueError(f"unknown fault setting {part!r}; known: {', '.join(known)}")
            values[name] = int(raw) if name in ("retry_after", "oversize_bytes", "seed") else float(raw)
        return cls(**values)  # type: ignore[arg-type]


class FaultInjector:
    """Rolls the dice per response (thread-safe) and counts what it injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self.injected: Counter[str] = Counter()
        self._random = random.Random(self.config.seed)
        self._lock = threading.Lock()

    def pick(self) -> str | None:
        """The fault for the next response, or None to serve it normally."""
        with self._lock:
            roll = self._random.random()
        threshold = 0.0
        for name in FAULTS:
            threshold += getattr(self.config, name)
            if roll < threshold:
                with self._lock:
                    self.injected[name] += 1
                return name
        return None

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> bool:
        """Serve ``body`` with a fault, if one is due; True when the response was written."""
        if self.config.latency:
            time.sleep(self.config.latency)
        if self.config.stays_unreadable(handler.path):
            with self._lock:
                self.injected["unreadable"] += 1
            _write(handler, 200, body[: len(body) // 2])
            return True
        fault = self.pick()
        if fault is None:
            return False
        if fault == "error":
            _write(handler, 503, b'{"error":"service unavailable"}')
        elif fault == "throttle":
            _write(handler, 429, b'{"error":"slow down"}', {"Retry-After": str(self.config.retry_after)})
        elif fault == "drop":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the client sees the body end early
        elif fault == "malformed":
            _write(handler, 200, body[: len(body) // 2])
        elif fault == "wrong_type":
            _write(handler, 200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        else:  # oversize: still valid JSON, just too large
            padding = max(0, self.config.oversize_bytes - len(body) + 1)
            _write(handler, 200, body[:-1] + b',"padding":"' + b"x" * padding + b'"}')
        return True


def _write(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None,
           content_type: str = "application/json") -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
