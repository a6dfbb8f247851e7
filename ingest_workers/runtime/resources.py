"""A job's clients (Redis, PostgreSQL, HTTP) and redactor, built lazily and rebuilt after a fork.

How a job gets them: RQ calls a job function by its dotted path with JSON arguments only, so the
worker cannot hand them over as an argument. Instead the worker (``runtime.worker.IngestWorker``
and ``IngestSimpleWorker``) owns one :class:`Resources`, and serves it to each job it performs
(:func:`serving`: a context variable set around RQ's ``perform_job``, the way RQ itself makes
``get_current_job`` work); the job function takes it with :func:`for_job`. An inline run
(``ingest run --workers 0``) serves its own (:func:`using`). A job run by a plain ``rq worker``
(not these classes) gets a :class:`Resources` of its own from the environment, closed when it ends.

The forking ``rq worker`` runs each job in a child process; a socket inherited from the parent
must not be shared, so a :class:`Resources` used in another process than the one that built its
clients builds new ones. With ``SimpleWorker`` (no fork) the same clients serve job after job.
Nothing here is module state but the context variable, which :func:`serving` always resets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg2
import psycopg2.extensions
import redis
import requests

from ..core.config import Settings, load_settings
from ..core.connections import connect_postgres, redis_for
from ..core.redact import Redactor, hiding
from ..sources.http import make_session


class Resources:
    """What a job needs from its process: settings, environment, clients and the redactor that
    hides the environment values it reads."""

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = env  # where sources look up the tokens their catalog entry names
        self.redactor = Redactor()
        self._pid = os.getpid()
        self._inherited: list[Any] = []  # a parent's clients: kept unclosed (closing would end the parent's too)
        self._redis: redis.Redis | None = None
        self._pg: psycopg2.extensions.connection | None = None
        self._http: requests.Session | None = None
        self.tables_matching: set[str] = set()  # datasets whose table this process found to match the declaration

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Resources:
        """Resources configured from ``env`` (a worker's environment)."""
        return cls(load_settings(env=env), env)

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:
            self._inherited += [c for c in (self._redis, self._pg, self._http) if c is not None]
            self._pg = self._http = self._redis = None
            self._pid = os.getpid()

    @property
    def redis(self) -> redis.Redis:
        self._after_fork()
        if self._redis is None:
            self._redis = redis_for(self.settings)
        return self._redis

    @property
    def pg(self) -> psycopg2.extensions.connection:
        """The PostgreSQL connection; a new one if the last was lost."""
        self._after_fork()
        if self._pg is None or self._pg.closed:
            self._pg = connect_postgres(self.settings.database_url)
        return self._pg

    def discard_pg(self) -> None:
        """Drop the PostgreSQL connection (after an error that may have left it half-dead)."""
        if self._pg is not None:
            try:
                self._pg.close()
            except psycopg2.Error:
                pass  # already broken: closing is best effort
            self._pg = None

    @property
    def http(self) -> requests.Session:
        self._after_fork()
        if self._http is None:
            self._http = make_session()
        return self._http

    def close(self) -> None:
        self._after_fork()
        if self._pg is not None and not self._pg.closed:
            self._pg.close()
        if self._http is not None:
            self._http.close()
        if self._redis is not None:
            self._redis.close()
        self._pg = self._http = self._redis = None


_serving: ContextVar[Resources | None] = ContextVar("ingest_job_resources", default=None)


@contextmanager
def serving(res: Resources) -> Iterator[Resources]:
    """Within the block, jobs run in this context use ``res``, and its redactor hides the values they
    read from every message (``core.redact.hiding``). ``res`` stays open: its owner closes it."""
    token = _serving.set(res)
    try:
        with hiding(res.redactor):
            yield res
    finally:
        _serving.reset(token)


@contextmanager
def for_job() -> Iterator[Resources]:
    """The resources served to the running job; outside :func:`serving` (a plain ``rq worker``),
    resources of its own from the environment, served for the block and closed after it."""
    res = _serving.get()
    if res is not None:
        yield res
        return
    with using(load_settings(env=os.environ), os.environ) as res:
        yield res


@contextmanager
def using(settings: Settings, env: Mapping[str, str]) -> Iterator[Resources]:
    """Within the block, jobs run in this context use new resources built from ``settings`` and ``env``,
    closed after it (``ingest run --workers 0``: the CLI's flags and catalog settings hold inline too)."""
    res = Resources(settings, env)
    try:
        with serving(res):
            yield res
    finally:
        res.close()
