"""A pytest plugin: a test without the ``integration`` marker may not use Redis, PostgreSQL or a subprocess.

``pytest -m "not integration"`` must run in seconds on a machine with no services, so a test that
needs them has to say so. This plugin makes forgetting the marker fail the test, naming it:

- a test that requests the session fixture ``services`` (directly or through ``settings``,
  ``redis_client``, ``pg``, ... which depend on it) fails before its fixtures are set up;
- while an unmarked test runs, starting a program (``subprocess``, ``os.system``, ``os.exec*``, ...)
  or connecting to the test Redis or PostgreSQL (or to 6379, 26379, 5432 on this machine) raises in
  the code that tries, and the test fails even if that code caught the error. An audit hook
  (``sys.addaudithook``) sees them all; threads
  that were already running when the test began (left by an earlier test) are not counted.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from psycopg2.extensions import parse_dsn

ADD_MARKER = "add `pytestmark = pytest.mark.integration` to its file (or @pytest.mark.integration to the test)"
# Another program started (a fork alone runs the test's own code: allowed).
STARTS_PROCESS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
USUAL_PORTS = (("127.0.0.1", 6379), ("127.0.0.1", 26379), ("127.0.0.1", 5432))  # Redis, Sentinel, PostgreSQL


class UnmarkedServiceUse(RuntimeError):
    """An unmarked test used a service or started a process (see :mod:`tests.service_guard`)."""


def service_address(url: str) -> tuple[str, int]:
    """The host and port of a Redis URL or a PostgreSQL URL/DSN."""
    if url.startswith("redis"):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 6379
    dsn = parse_dsn(url)
    return dsn.get("host", "127.0.0.1"), int(dsn.get("port", 5432))


def same_address(address: Any, wanted: tuple[str, int]) -> bool:
    """Whether a ``socket.connect`` address is ``wanted`` (loopback names count as one host)."""
    if not isinstance(address, tuple) or len(address) < 2:
        return False
    host, port = address[0], address[1]
    if port != wanted[1]:
        return False
    return host == wanted[0] or (host in LOOPBACK and wanted[0] in LOOPBACK)


class ServiceGuard:
    """Watches one unmarked test at a time; :meth:`audit` is the process's audit hook."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.addresses = addresses
        self.watching = False
        self.earlier_threads: frozenset[threading.Thread] = frozenset()
        self.tried: list[str] = []

    def watch(self) -> None:
        """Start watching (an unmarked test begins)."""
        main = threading.main_thread()
        self.earlier_threads = frozenset(t for t in threading.enumerate() if t is not main)
        self.tried = []
        self.watching = True

    def stop(self) -> None:
        """Stop watching (the test ended)."""
        self.watching = False
        self.earlier_threads = frozenset()

    def take(self) -> list[str]:
        """What the watched test tried since the last call."""
        tried, self.tried = self.tried, []
        return tried

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """Refuse a process start or a connection to a test service while watching."""
        if not self.watching or (event not in STARTS_PROCESS and event != "socket.connect"):
            return
        if threading.current_thread() in self.earlier_threads:
            return
        if event == "socket.connect":
            if not any(same_address(args[1], wanted) for wanted in self.addresses):
                return
            what = f"connected to a test service at {args[1][0]}:{args[1][1]}"
        else:
            what = f"started a process ({event}: {args[0] if args else ''})"
        self.tried.append(what)
        raise UnmarkedServiceUse(f"a test without the integration marker {what}: {ADD_MARKER}")


GUARD = pytest.StashKey[ServiceGuard]()


def is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None


def install(config: pytest.Config, redis_url: str, database_url: str) -> None:
    """Called by tests/conftest.py with the test services' URLs."""
    # The usual local ports too: in CI the unit part's URLs point nowhere, while the real servers still run there.
    guard = ServiceGuard([service_address(redis_url), service_address(database_url), *USUAL_PORTS])
    config.stash[GUARD] = guard
    sys.addaudithook(guard.audit)  # cannot be removed: pytest_unconfigure stops it for good


def pytest_unconfigure(config: pytest.Config) -> None:
    if GUARD in config.stash:
        config.stash[GUARD].stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the fixtures are set up (a plain hook, so the other plugins' wrappers still run)."""
    if is_integration(item):
        return
    if "services" in item.fixturenames:
        function = item.function if isinstance(item, pytest.Function) else None
        requested = ", ".join(inspect.signature(function).parameters) if function else "?"
        pytest.fail(f"{item.nodeid} uses Redis/PostgreSQL (the `services` fixture, through the fixtures it "
                    f"requests: {requested}) but has no integration marker: {ADD_MARKER}", pytrace=False)
    if GUARD in item.config.stash:
        item.config.stash[GUARD].watch()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The last test's teardown also ends the session's fixtures (embedded services stop): not the test's doing."""
    if nextitem is None and GUARD in item.config.stash:
        item.config.stash[GUARD].stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A phase (setup, call, teardown) in which the test tried a service fails, even if its code caught the error."""
    report = yield
    tried = item.config.stash[GUARD].take() if GUARD in item.config.stash else []
    if tried and not report.failed:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} has no integration marker but {'; '.join(tried)}: {ADD_MARKER}"
    if call.when == "teardown" and GUARD in item.config.stash:
        item.config.stash[GUARD].stop()
    return report
