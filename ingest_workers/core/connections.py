"""Open Redis and PostgreSQL connections, and translate their errors at the boundary.

Connecting fails with :class:`ServiceUnavailable` (one sentence, URL masked); a
connection lost mid-job becomes a :class:`TransientError`, so RQ retries the job, and a
table of the schema that is not there a :class:`SchemaMissing` (never a traceback).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import redis

from .errors import SchemaMissing, ServiceUnavailable, TransientError
from .redact import mask_url


def connect_redis(url: str, timeout: float = 5.0) -> redis.Redis:
    """A client for ``url`` that has answered PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {mask_url(url)}: {_first_line(exc)}") from None
    return client


def connect_postgres(url: str, timeout: float = 5.0) -> psycopg2.extensions.connection:
    try:
        return psycopg2.connect(url, connect_timeout=int(max(1, timeout)), application_name="ingest-workers")
    except psycopg2.Error as exc:
        raise ServiceUnavailable(f"cannot reach PostgreSQL at {mask_url(url)}: {_first_line(exc)}") from None


NO_SCHEMA = "the database has no ingest schema: run ingest db migrate"


@contextmanager
def postgres_errors() -> Iterator[None]:
    """Turn a lost PostgreSQL connection into a :class:`TransientError`, a missing table into
    :class:`SchemaMissing`."""
    try:
        yield
    except psycopg2.errors.UndefinedTable as exc:
        raise SchemaMissing(f"{NO_SCHEMA} ({_first_line(exc)})") from None
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise TransientError(f"PostgreSQL: {_first_line(exc)}") from None


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn a lost Redis connection into a :class:`TransientError`."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise TransientError(f"Redis: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
