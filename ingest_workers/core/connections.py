"""Open Redis and PostgreSQL connections, and translate their errors at the boundary.

Connecting fails with :class:`ServiceUnavailable` (one sentence, URL masked), or
:class:`ServiceRefused` when no wait can help (a malformed URL, no such database or
user, a wrong password); a
connection lost mid-job becomes a :class:`TransientError`, so RQ retries the job, and a
table of the schema that is not there a :class:`SchemaMissing` (never a traceback).

Redis is either ``REDIS_URL`` alone, or the master that Sentinel names
(``REDIS_SENTINELS`` + ``REDIS_SENTINEL_MASTER``; then ``REDIS_URL`` supplies only the
password, user and database number). A Sentinel client asks the sentinels for the
master's address on every new connection, so after a failover the next command
(after redis-py's retries) reaches the promoted replica; every role builds its
client here, and ``rq worker`` builds the same one from :func:`rq_sentinel_settings`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from .config import Settings, sentinel_addresses
from .errors import SchemaMissing, ServiceRefused, ServiceUnavailable, TransientError
from .redact import mask_url


def connect_redis(url: str, timeout: float = 5.0, sentinels: str = "", master: str = "") -> redis.Redis:
    """A client that has answered PING: for ``url``, or with ``sentinels`` ("host:port,...") for
    the master they call ``master`` (``url`` then gives the password, user and database)."""
    where = f"master {master!r} through the sentinels at {sentinels}" if sentinels else f"at {mask_url(url)}"
    try:
        if sentinels:
            client = _sentinel_master(url, sentinels, master, timeout)
        else:
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, health_check_interval=30)
        client.ping()
    except (redis.AuthenticationError, redis.ResponseError, ValueError) as exc:  # before its base, ConnectionError
        raise ServiceRefused(f"Redis {where} refuses the connection: {mask_url(_first_line(exc))}") from None
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"cannot reach Redis {where}: {mask_url(_first_line(exc))}") from None
    return client


# Through Sentinel, a command that finds no master retries for about 15 s (a failover with
# down-after-milliseconds of a few seconds takes 3 to 10 s): the worker's parent, watching its
# job, would otherwise exit at the first refused connection, and its replacement would wait a
# minute for the RQ scheduler lock the dead one held.
FAILOVER_RETRIES = 18


def failover_retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), FAILOVER_RETRIES)


def redis_for(settings: Settings, timeout: float = 5.0) -> redis.Redis:
    """The Redis of ``settings``: ``redis_url``, or the Sentinel master when sentinels are set."""
    return connect_redis(settings.redis_url, timeout, settings.redis_sentinels, settings.redis_sentinel_master)


def rq_sentinel_settings(settings: Settings, timeout: float = 5.0) -> dict[str, object]:
    """RQ's ``SENTINEL`` setting (``rq worker --config``) for the same master as :func:`redis_for`."""
    auth = _auth(settings.redis_url)
    return {"INSTANCES": sentinel_addresses(settings.redis_sentinels), "MASTER_NAME": settings.redis_sentinel_master,
            "DB": auth.pop("db"), "USERNAME": auth.get("username"), "PASSWORD": auth.get("password"),
            "CONNECTION_KWARGS": {"socket_connect_timeout": timeout, "health_check_interval": 30,
                                  "retry": failover_retry()},
            "SENTINEL_KWARGS": {"socket_timeout": timeout, "socket_connect_timeout": timeout}}


def _sentinel_master(url: str, sentinels: str, master: str, timeout: float) -> redis.Redis:
    sentinel = Sentinel(sentinel_addresses(sentinels),
                        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout})
    return sentinel.master_for(master, socket_connect_timeout=timeout, health_check_interval=30,
                               retry=failover_retry(), **_auth(url))


def _auth(url: str) -> dict[str, object]:
    """The database number, user and password of a ``redis://`` URL (its host is not used)."""
    options = parse_url(url)
    auth: dict[str, object] = {"db": int(options.get("db") or 0)}
    auth.update((key, options[key]) for key in ("username", "password") if options.get(key))
    return auth


# libpq's words for what no wait can fix: the URL itself, or the server's FATAL answer to it. Anything
# else (refused, timed out, a host name not resolved yet, "the database system is starting up") may pass.
POSTGRES_REFUSALS = ("does not exist", "authentication failed", "no pg_hba.conf entry", "for connection option",
                     "invalid connection option", "no password supplied")


def connect_postgres(url: str, timeout: float = 5.0) -> psycopg2.extensions.connection:
    """A connection to ``url``; :class:`ServiceRefused` when waiting cannot help, else
    :class:`ServiceUnavailable`."""
    try:
        return psycopg2.connect(url, connect_timeout=int(max(1, timeout)), application_name="ingest-workers")
    except psycopg2.Error as exc:
        reason = _first_line(exc)
        if isinstance(exc, psycopg2.ProgrammingError) or any(words in reason for words in POSTGRES_REFUSALS):
            raise ServiceRefused(f"PostgreSQL at {mask_url(url)} refuses the connection: {reason}") from None
        raise ServiceUnavailable(f"cannot reach PostgreSQL at {mask_url(url)}: {reason}") from None


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
