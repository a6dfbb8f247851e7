"""Wait, for a bounded and stated time, for Redis, PostgreSQL and the ingest schema.

Commands and long-running roles call these before they start work, so an unreachable
service or a database that was never migrated ends in one sentence and a non-zero exit
(``error: the database has no ingest schema: run ingest db migrate``), never in failed
jobs or a traceback. Roles started together (a Procfile, compose) ride out the few
seconds their services take to come up; what no wait can fix (a malformed URL, a database or
user that does not exist, a refused password) fails at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg2.extensions
import redis

from ..core.config import Settings
from ..core.connections import NO_SCHEMA, connect_postgres, postgres_errors, redis_for
from ..core.errors import SchemaMissing, ServiceRefused, ServiceUnavailable
from ..load.migrate import pending_migrations

T = TypeVar("T")
Say = Callable[[str], None]


def wait_for_redis(settings: Settings, wait: float, say: Say) -> redis.Redis:
    """The Redis of ``settings`` (its URL, or the Sentinel master), once it answered PING, trying
    for up to ``wait`` seconds."""
    return _within(wait, say, lambda: redis_for(settings))


def wait_for_postgres(url: str, wait: float, say: Say, schema: bool = True) -> psycopg2.extensions.connection:
    """A PostgreSQL connection (to a database with the whole ingest schema when ``schema``),
    trying for up to ``wait`` seconds."""

    def attempt() -> psycopg2.extensions.connection:
        conn = connect_postgres(url)
        if schema:
            try:
                check_schema(conn)
            except SchemaMissing:
                conn.close()
                raise
        return conn

    return _within(wait, say, attempt)


def check_schema(conn: psycopg2.extensions.connection) -> None:
    """Raise :class:`SchemaMissing` unless every packaged migration was applied."""
    with postgres_errors():
        pending = pending_migrations(conn)
    if not pending:
        return
    if any(version.startswith("0001") for version in pending):
        raise SchemaMissing(NO_SCHEMA)
    raise SchemaMissing(f"the database's ingest schema lacks migration {', '.join(pending)}: run ingest db migrate")


def _within(wait: float, say: Say, attempt: Callable[[], T]) -> T:
    """``attempt()`` until it succeeds or ``wait`` seconds passed; only "not answering yet" waits:
    :class:`ServiceRefused` (a malformed URL, a refused password, no such database) fails at once."""
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return attempt()
        except ServiceRefused:
            raise
        except ServiceUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                if not wait:
                    raise
                raise type(exc)(f"{exc} (waited {wait:g}s)") from None
            if not told:
                say(f"{exc}; waiting up to {wait:g}s")
                told = True
            time.sleep(min(1.0, left))
