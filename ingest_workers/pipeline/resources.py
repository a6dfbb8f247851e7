"""What the pipeline needs of the process it runs in (:class:`ingest_workers.runtime.resources.Resources`
is one): its clients, built for this process so a forked job never shares a parent's socket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import psycopg2.extensions
import redis
import requests

from ..core.config import Settings


class Resources(Protocol):
    """The clients a job runs with, and what the process remembers between its jobs."""

    settings: Settings
    env: Mapping[str, str]  # where sources look up the secrets their catalog entry names
    # the datasets (their declarations) whose table this process found to match: checked once per process
    tables_matching: set[str]

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def pg(self) -> psycopg2.extensions.connection: ...

    @property
    def http(self) -> requests.Session: ...

    def discard_pg(self) -> None: ...
