"""Per-process clients (Redis, PostgreSQL, HTTP), built lazily and rebuilt after a fork.

The forking ``rq worker`` runs each job in a child process; a socket inherited
from the parent must not be shared, so the holder is keyed by pid. With
``SimpleWorker`` (no fork) the same clients serve job after job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import redis
import requests

from ..core.config import Settings, load_settings
from ..core.connections import connect_postgres, redis_for
from ..sources.http import make_session


class Resources:
    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = env  # where sources look up the tokens their catalog entry names
        self._redis: redis.Redis | None = None
        self._pg: psycopg2.extensions.connection | None = None
        self._http: requests.Session | None = None
        self.tables_matching: set[str] = set()  # datasets whose table this process found to match the declaration

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis_for(self.settings)
        return self._redis

    @property
    def pg(self) -> psycopg2.extensions.connection:
        """The PostgreSQL connection; a new one if the last was lost."""
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
        if self._http is None:
            self._http = make_session()
        return self._http

    def close(self) -> None:
        if self._pg is not None and not self._pg.closed:
            self._pg.close()
        if self._http is not None:
            self._http.close()
        if self._redis is not None:
            self._redis.close()
        self._pg = self._http = self._redis = None


_holder: dict[int, Resources] = {}


def current() -> Resources:
    """This process's resources, configured from the environment on first use."""
    pid = os.getpid()
    if pid not in _holder:
        _holder.clear()  # the parent's clients: never used from a child
        _holder[pid] = Resources(load_settings(env=os.environ), os.environ)
    return _holder[pid]


@contextmanager
def using(settings: Settings, env: Mapping[str, str]) -> Iterator[Resources]:
    """Within the block, jobs run in this process use ``settings`` rather than the environment's
    (``ingest run --workers 0``: the CLI's flags and catalog settings hold inline too)."""
    pid, saved = os.getpid(), dict(_holder)
    res = _holder[pid] = Resources(settings, env)
    try:
        yield res
    finally:
        res.close()
        _holder.clear()
        _holder.update(saved)
