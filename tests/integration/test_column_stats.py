"""Per-run column statistics of a dataset with ``stats``: count, min, max and mean of its numeric
columns, per source and run, in out/summary.json and `ingest status --json`."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.datasets.stats import merge_stats
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import write_catalog

pytestmark = pytest.mark.integration

RECORDS = 300


def test_a_run_records_the_statistics_of_the_numeric_columns_it_loaded(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=RECORDS, invalid_every=0)  # every record valid: all of them load
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products")
    env = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url, "INGEST_QUEUE": settings.queue}
    out = tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "run", "--workers", "0", "--out", str(out)],
                                env=env)
    assert result.exit_code == 0, result.output

    with pg, pg.cursor() as cur:  # the prices as loaded, measured here
        cur.execute("SELECT price FROM products WHERE source = 'shop_products'")
        prices = [float(price) for (price,) in cur.fetchall()]
    stats = json.loads(out.read_text())["sources"]["shop_products"]["column_stats"]
    assert set(stats) == {"price"} and len(prices) == RECORDS
    assert (stats["price"]["count"], stats["price"]["min"], stats["price"]["max"]) \
        == (RECORDS, min(prices), max(prices))
    assert stats["price"]["mean"] == pytest.approx(sum(prices) / RECORDS, abs=1e-6)

    status = CliRunner().invoke(main, ["--catalog", str(catalog), "status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    last_run = json.loads(status.output)["sources"]["shop_products"]["last_run"]
    assert last_run["column_stats"] == stats

    again = CliRunner().invoke(main, ["--catalog", str(catalog), "run", "--workers", "0", "--out", str(out)],
                               env=env)
    assert again.exit_code == 0, again.output
    rerun = json.loads(out.read_text())["sources"]["shop_products"]["column_stats"]
    assert rerun["price"]["count"] == 0 and rerun["price"]["mean"] is None  # it loaded nothing new


def test_statistics_of_several_jobs_merge_by_their_counts() -> None:
    merged = merge_stats([{"price": {"count": 2, "min": 1, "max": 3, "mean": 2}},
                          {"price": {"count": 1, "min": 0.5, "max": 0.5, "mean": 0.5}},
                          {"price": {"count": 0, "min": None, "max": None, "mean": None}}, None])
    assert merged == {"price": {"count": 3, "min": 0.5, "max": 3, "mean": 1.5}}
