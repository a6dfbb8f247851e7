"""What the benchmarks run against: a scratch Redis database, a fresh ``ingest_bench*``
PostgreSQL database with the schema, and the mock source in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg2
import redis
import requests
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_AUTOCOMMIT, parse_dsn

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.core.envrefs import expand
from ingest_workers.core.models import SourceSpec
from ingest_workers.load.migrate import migrate
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import free_port

SOURCE = "shop_products"  # shop A: ~300-byte products, page numbers, updated_at = 2026-01-01 + i seconds
TABLES = ("products", "rejected_records", "ingest_jobs", "source_cursors")


@dataclass(frozen=True)
class Bench:
    settings: Settings
    mock_url: str
    records: int
    out: Path
    spec_changes: tuple[tuple[str, object], ...] = ()  # e.g. (("concurrency", 8),)

    @property
    def spec(self) -> SourceSpec:
        """The packaged catalog's shop A entry, pointed at this run's mock server, without its
        politeness rate limit (50 requests/s would cap the run at 25,000 records/s)."""
        spec = load_catalog(Path(DEMO_CATALOG), {}).sources[SOURCE]
        url = expand(spec.url, {"INGEST_MOCK_URL": self.mock_url}, SOURCE, "url")  # as its worker would
        return replace(spec, **{"url": url, "rate_limit": 0, **dict(self.spec_changes)})  # type: ignore[arg-type]

    def with_spec(self, **changes: object) -> Bench:
        return replace(self, spec_changes=tuple(changes.items()))

    def with_settings(self, **changes: object) -> Bench:
        return replace(self, settings=replace(self.settings, **changes))  # type: ignore[arg-type]

    def with_mock(self, mock_url: str) -> Bench:
        return replace(self, mock_url=mock_url)

    def with_records(self, records: int) -> Bench:
        return replace(self, records=records)


def recreate_database(database_url: str) -> None:
    """Drop and create the benchmark database (its name must start with ``ingest_bench``), then migrate."""
    params = parse_dsn(database_url)
    name = params.get("dbname", "")
    if not name.startswith("ingest_bench"):
        raise SystemExit(f"the benchmark database must be named ingest_bench*, not {name!r}: it is dropped")
    admin = psycopg2.connect(**{**params, "dbname": "postgres"})
    admin.set_isolation_level(ISOLATION_LEVEL_AUTOCOMMIT)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
    conn = psycopg2.connect(database_url)
    try:
        migrate(conn)
    finally:
        conn.close()


def reset_state(settings: Settings) -> None:
    """Empty the Redis database (queue, dedup sets, metrics) and the tables a run writes."""
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.close()
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(TABLES)}")
    conn.close()


@contextmanager
def mock_server(records: int, cache_mb: int, latency: float = 0.0, options: Sequence[str] = ()) -> Iterator[str]:
    """``ingest mock-sources`` in its own process (so it never shares this one's GIL); yields its URL.
    ``latency``: seconds every page waits before it is answered (a slow API); ``options``: more of
    its command-line options (``--revision N``)."""
    port = free_port()
    command = [sys.executable, "-m", "ingest_workers", "mock-sources", "--port", str(port), "--records",
               str(records), "--cache-mb", str(cache_mb), "--latency", str(latency), *options]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url + "/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the mock source did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


def worker_environment(mock_url: str) -> dict[str, str]:
    return {**os.environ, "INGEST_MOCK_URL": mock_url}
