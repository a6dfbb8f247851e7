"""Fixtures: the real Redis and PostgreSQL (embedded ones when none answer), clean per test.

Only tests marked ``integration`` may use them (tests/service_guard.py fails the others), so
``pytest -m "not integration"`` never starts or reaches a service.

Tests use their own Redis database and PostgreSQL database (TEST_REDIS_URL,
TEST_DATABASE_URL) so they never touch a developer's data. With CI=true a
service that cannot be had is an error, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.load.migrate import migrate
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.devservices import ALLOW_CHMOD_ENV, Services, ensure_services
from ingest_workers.testing.mock_sources import MockConfig, MockServer

pytest_plugins = ("pytester", "tests.service_guard")

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ingest_test")
TABLES = ("products", "stock_quotes", "social_mentions", "posts", "sensor_readings", "alerts", "source_cursors",
          "rejected_records", "ingest_jobs")


def pytest_configure(config: pytest.Config) -> None:
    """Tests without the integration marker may not reach these services (tests/service_guard.py)."""
    from tests import service_guard  # imported by pytest_plugins (assertions rewritten); not at the top

    service_guard.install(config, TEST_REDIS_URL, TEST_DATABASE_URL)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with ensure_services(TEST_REDIS_URL, TEST_DATABASE_URL, ROOT / ".state" / "test",
                         log=lambda line: print(f"[services] {line}"),
                         allow_permission_changes=os.environ.get(ALLOW_CHMOD_ENV) == "yes") as found:
        conn = psycopg2.connect(found.database_url)
        try:
            migrate(conn)
        finally:
            conn.close()
        yield found


@pytest.fixture(scope="session", autouse=True)
def _strict_counts() -> Iterator[None]:
    """Jobs whose counts do not add up fail, in the tests' own workers too (they inherit the
    environment): a counting bug fails its test instead of being logged."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INGEST_STRICT_COUNTS", "1")
        yield


@pytest.fixture
def settings(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Workers that allow the tests' plugins (tests/plugins.py), local files in pytest's temporary
    directories and the variables the demo catalog refers to, as `ingest workers` with that catalog
    does (INGEST_PLUGINS, INGEST_FILES_DIR, INGEST_SOURCE_VARS)."""
    return Settings(redis_url=services.redis_url, database_url=services.database_url, queue="ingest-test",
                    batch_size=250, job_timeout=120, job_retries=0, http_max_attempts=3, http_max_backoff=0.2,
                    plugins="tests.plugins", files_dir=str(tmp_path_factory.getbasetemp()), strict_counts=True,
                    source_vars=",".join(load_catalog(DEMO_CATALOG, {}).variables()))


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    """The URL of a new, empty database next to the test database (never migrated); dropped after."""
    name = f"{parse_dsn(services.database_url).get('dbname', 'ingest_test')}_empty"
    admin = psycopg2.connect(make_dsn(services.database_url, dbname="postgres"))
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield make_dsn(services.database_url, dbname=name)
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


@pytest.fixture
def redis_client(services: Services) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(services.redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def pg(services: Services) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(services.database_url)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(TABLES)}")
    yield conn
    conn.close()


@pytest.fixture
def mock_server() -> Iterator[MockServer]:
    """A mock source on a free port; tests set ``mock_server.config`` to change what it serves."""
    server = MockServer("127.0.0.1", 0, MockConfig(records=1000))
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()
