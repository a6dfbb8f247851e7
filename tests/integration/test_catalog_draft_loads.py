"""`ingest catalog draft` on every feed of the mock source, used unedited: `ingest db migrate`
creates its table and `ingest run` loads the whole feed with no valid record rejected (the
only records it may refuse are those the mock breaks on purpose)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_sources import FEEDS, MockConfig, MockServer, sensors
from tests.fixture_api import TOKEN, FixtureApi

pytestmark = pytest.mark.integration

RECORDS = 450  # several pages of the draft's page size (the mock's default, 100)
INVALID_EVERY = 97
BROKEN = range(INVALID_EVERY - 1, RECORDS, INVALID_EVERY)  # the mock breaks every 97th record: 96, 193, ...


def served(path: str) -> list[Any]:
    """Every record of the feed as served (CSV rows as the text the file holds)."""
    if path == "/sensors.csv":
        return [{c: str(sensors.csv_reading(i, INVALID_EVERY)[c]) for c in sensors.COLUMNS} for i in range(RECORDS)]
    return [FEEDS[path].record(i, INVALID_EVERY) for i in range(RECORDS)]


def cli(services: Services, *args: str) -> str:
    flags = ["--redis-url", services.redis_url, "--database-url", services.database_url, "--log-level", "WARNING"]
    result = CliRunner().invoke(main, [*flags, *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def drafted_table(pg: psycopg2.extensions.connection) -> Any:
    yield "draft_feed"
    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS draft_feed")


@pytest.mark.parametrize("path", [*FEEDS, "/sensors.csv"])
def test_a_draft_used_unedited_loads_its_feed(services: Services, redis_client: redis.Redis,
                                             pg: psycopg2.extensions.connection, mock_server: MockServer,
                                             drafted_table: str, tmp_path: Path, path: str) -> None:
    mock_server.config = MockConfig(records=RECORDS, invalid_every=INVALID_EVERY)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(cli(services, "catalog", "draft", f"{mock_server.url}{path}", "--name", drafted_table))
    cli(services, "--catalog", str(catalog), "db", "migrate")
    out = tmp_path / "summary.json"
    cli(services, "--catalog", str(catalog), "run", "--sources", "all", "--workers", "0", "--out", str(out))

    counts = json.loads(out.read_text())["sources"][drafted_table]
    records = served(path)
    broken = [json.dumps(records[i], sort_keys=True) for i in BROKEN]
    with pg, pg.cursor() as cur:
        cur.execute("SELECT payload, reason FROM rejected_records WHERE source = %s", (drafted_table,))
        found = cur.fetchall()
        rejected = [json.dumps(payload, sort_keys=True) for payload, _ in found]
        cur.execute(f"SELECT count(*), count(DISTINCT raw) FROM {drafted_table}")  # noqa: S608 (a test's own name)
        rows, distinct = cur.fetchone()
    assert counts["fetched"] == RECORDS and len(BROKEN) == 4
    valid_rejected = [reason for (_, reason), raw in zip(found, rejected, strict=True) if raw not in broken]
    assert not valid_rejected, f"valid records rejected: {valid_rejected[:5]}"
    assert rows == distinct == RECORDS - len(rejected) == counts["loaded"]


def test_the_draft_command_as_a_process(tmp_path: Path) -> None:
    api = FixtureApi().start()
    try:
        env = {**os.environ, "CRM_TOKEN": TOKEN}
        done = subprocess.run([sys.executable, "-m", "ingest_workers", "catalog", "draft",
                               f"{api.url}/api/customers?size=10", "--name", "crm", "--token-env", "CRM_TOKEN"],
                              env=env, capture_output=True, text=True, timeout=60)
    finally:
        api.stop()
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    fragment = tomllib.loads(done.stdout)
    assert fragment["sources"]["crm"]["auth"] == {"kind": "bearer", "token_env": "CRM_TOKEN"}
    assert fragment["datasets"]["crm"]["key"] == ["customer_id"]
