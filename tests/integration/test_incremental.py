"""Cursors and backfill windows against the real Redis, PostgreSQL, mock server and `rq worker`s."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.catalog import load_catalog
from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import TransientError
from ingest_workers.core.models import Lineage, SourceSpec
from ingest_workers.datasets import POSTS
from ingest_workers.load.cursors import CursorStore
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.load.sinks import AlertSink, SinkContext
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.pipeline import run_fetch_job
from ingest_workers.runtime.producer import enqueue_backfill, enqueue_run, make_queue
from ingest_workers.runtime.resources import Resources
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing import DEMO_CATALOG
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from ingest_workers.testing.mock_sources.feed import EPOCH
from tests.helpers import resolved, scalar

pytestmark = pytest.mark.integration

CURSOR_SOURCES = {"shop_products": ("products", "/products"), "market_quotes": ("stock_quotes", "/quotes"),
                  "twitter_mentions": ("social_mentions", "/twitter/tweets"), "placeholder_posts": ("posts", "/posts")}


def catalog_specs(server: MockServer, *names: str) -> list[SourceSpec]:
    sources = load_catalog(DEMO_CATALOG, {}).sources
    return [SourceSpec(**{**resolved(sources[n], {"INGEST_MOCK_URL": server.url}).to_dict(), "page_size": 200})
            for n in names]


def run_jobs(client: redis.Redis, settings: Settings, job_ids: list[str]) -> None:
    state = wait_for_jobs(make_queue(client, settings), job_ids, lambda state: None, timeout=120)
    assert state.done == state.total and state.failed == 0, "jobs did not all succeed in time"


# The valid records among those the mock serves in [first, end), listed here rather than asked of the
# mock's own predicates, so a change to what the mock breaks fails these tests instead of moving their
# expectations: every 97th record is broken (3 in 600..900, 9 in 0..900, 18 in 0..1800), and quotes
# also lose every row of their failing ticker.
VALID = {("/products", 600, 900): 297, ("/products", 0, 900): 891, ("/products", 0, 1800): 1782,
         ("/twitter/tweets", 600, 900): 297, ("/twitter/tweets", 0, 900): 891,
         ("/posts", 600, 900): 297, ("/posts", 0, 900): 891,
         ("/quotes", 600, 900): 285, ("/quotes", 0, 900): 854}


def valid(path: str, first: int, end: int) -> int:
    return VALID[(path, first, end)]


def test_a_second_run_loads_only_what_appeared_since_the_first(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    specs = catalog_specs(mock_server, *CURSOR_SOURCES)
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        mock_server.config = MockConfig(records=600)
        run_jobs(redis_client, settings, [e.job_id for e in enqueue_run(queue, settings, specs, "run-1")])
        mock_server.config = MockConfig(records=900)  # new data appears at the source
        run_jobs(redis_client, settings, [e.job_id for e in enqueue_run(queue, settings, specs, "run-2")])

    second = {s.source: s.counts for s in JobHistory(pg).summarise("run-2")}
    for source, (table, path) in CURSOR_SOURCES.items():
        counts = second[source]
        assert counts.loaded == valid(path, 600, 900), source  # only the new records
        assert counts.fetched < 350, source  # it asked for what is at or after its mark, not for all 900
        assert counts.fetched == counts.rejected + counts.duplicate + counts.loaded
        assert scalar(pg, f"SELECT count(*) FROM {table} WHERE source = %s", source) == valid(path, 0, 900)
    assert CursorStore(pg).position("placeholder_posts") == 900
    last = EPOCH + timedelta(seconds=899)  # shop A's record i is stamped i seconds after the epoch
    assert CursorStore(pg).position("shop_products") == last.isoformat()


@pytest.fixture
def res(services: Any, settings: Settings) -> Iterator[Resources]:
    resources = Resources(settings, {})
    yield resources
    resources.close()


def plugin_posts(**options: Any) -> SourceSpec:
    return SourceSpec(name="plugin_posts", kind="tests.plugins:CountingSource", dataset="posts",
                      fields={"post_id": "id", "user_id": "userId"}, cursor_field="post_id", options=options,
                      stages=["tests.plugins:ShoutTitles"])


def test_a_crash_leaves_the_cursor_at_the_last_committed_batch_and_the_next_run_resumes(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, res: Resources,
) -> None:
    with pytest.raises(TransientError, match="connection dropped"):
        run_fetch_job(plugin_posts(count=1000, fail_after=620), "run-1", "job-1", "q", res)
    # Batches of 250: two committed with their mark; the 120 records read after them were never loaded.
    assert scalar(pg, "SELECT count(*) FROM posts") == 500
    assert CursorStore(pg).position("plugin_posts") == 500

    counts = run_fetch_job(plugin_posts(count=1000), "run-2", "job-2", "q", res)
    assert (counts.fetched, counts.duplicate, counts.loaded) == (501, 1, 500)  # from the mark on, inclusive
    assert scalar(pg, "SELECT count(DISTINCT post_id) FROM posts") == scalar(pg, "SELECT count(*) FROM posts") == 1000
    assert scalar(pg, "SELECT count(*) FROM posts WHERE title = 'POST 7!'") == 1  # the plugin stage ran


def test_the_cursor_and_alerts_commit_and_roll_back_with_their_batch(pg: psycopg2.extensions.connection) -> None:
    lineage = Lineage("plugin_posts", "run-1", "job-1", "2026-01-01T00:00:00+00:00")
    rows = [{"post_id": i, "user_id": 1, "title": "t", "body": None, "source": "plugin_posts", "run_id": "run-1",
             "job_id": "job-1", "fetched_at": lineage.fetched_at, "raw": {"id": i}} for i in (1, 2, 3)]
    alerts = AlertSink(SinkContext(POSTS, lineage, lambda: pg), field="post_id", above=2)

    def advance_alert_then_crash(cur: Any) -> None:
        CursorStore.advance(cur, "post_id", 3, lineage)
        alerts.consume(rows)
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        PostgresLoader(pg).load_batch(POSTS, rows, [], lineage, advance_alert_then_crash)
    assert scalar(pg, "SELECT count(*) FROM posts") == scalar(pg, "SELECT count(*) FROM alerts") == 0
    assert CursorStore(pg).position("plugin_posts") is None

    def advance_and_alert(cur: Any) -> None:
        CursorStore.advance(cur, "post_id", 3, lineage)
        alerts.consume(rows)

    for _ in range(2):  # the second time: nothing new, no second alert
        PostgresLoader(pg).load_batch(POSTS, rows, [], lineage, advance_and_alert)
    assert scalar(pg, "SELECT count(*) FROM posts") == 3 and CursorStore(pg).position("plugin_posts") == 3
    assert scalar(pg, "SELECT count(*) FROM alerts WHERE record_key = '3' AND rule = 'post_id > 2'") == 1
    PostgresLoader(pg).load_batch(POSTS, [], [], lineage, lambda cur: CursorStore.advance(cur, "post_id", 2, lineage))
    assert CursorStore(pg).position("plugin_posts") == 3  # never moves back


def test_sinks_see_each_new_row_once(pg: psycopg2.extensions.connection, redis_client: redis.Redis,
                                     res: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "remembered.jsonl"
    spec = SourceSpec(**{**plugin_posts(count=10).to_dict(),
                         "sinks": [{"name": "tests.plugins:RememberSink", "path": str(out)},
                                   {"name": "jsonl", "path": str(tmp_path / "rows.jsonl")}, "console"]})
    run_fetch_job(spec, "run-1", "job-1", "q", res)
    run_fetch_job(spec, "run-2", "job-2", "q", res)  # from the mark: one duplicate, nothing new
    assert out.read_text().count("\n") == 10 and '"title": "POST 10!"' in out.read_text()
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["post_id"] == 1 and "raw" not in json.loads(lines[0])
    assert capsys.readouterr().out.splitlines() == lines


def test_a_backfill_loads_its_windows_once_and_leaves_the_cursor_alone(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=3000)
    [spec] = catalog_specs(mock_server, "shop_products")
    queue = make_queue(redis_client, settings)
    since, until = EPOCH, EPOCH + timedelta(minutes=30)
    run_id, enqueued = enqueue_backfill(queue, settings, [spec], since, until, timedelta(minutes=10))
    assert run_id == "backfill-20260101T000000Z-20260101T003000Z"
    assert [e.job_id for e in enqueued] == [f"{run_id}-shop_products-20260101T{m}00Z" for m in ("0000", "0010", "0020")]
    _, again = enqueue_backfill(queue, settings, [spec], since, until, timedelta(minutes=10))
    assert [e.created for e in again] == [False, False, False]  # resumable: the same backfill adds nothing

    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        run_jobs(redis_client, settings, [e.job_id for e in enqueued])
        # The same windows again (as after the claims expired): they load nothing.
        _, rerun = enqueue_backfill(queue, settings, [spec], since, until, timedelta(minutes=10), "backfill-again")
        run_jobs(redis_client, settings, [e.job_id for e in rerun])

    assert scalar(pg, "SELECT count(*) FROM products") == valid("/products", 0, 1800)
    assert scalar(pg, "SELECT count(*) FROM products WHERE updated_at >= %s AND updated_at < %s", since, until) \
        == valid("/products", 0, 1800)  # nothing outside the window
    first, second = JobHistory(pg).summarise(run_id)[0], JobHistory(pg).summarise("backfill-again")[0]
    assert (first.jobs, first.counts.fetched, first.counts.loaded) == (3, 1800, valid("/products", 0, 1800))
    assert (second.counts.loaded, second.counts.duplicate) == (0, valid("/products", 0, 1800))
    assert CursorStore(pg).position("shop_products") is None


def test_enqueue_backfill_from_the_command_line(redis_client: redis.Redis, pg: psycopg2.extensions.connection,
                                                settings: Settings, mock_server: MockServer) -> None:
    env = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,  # the run's job list
           "INGEST_QUEUE": settings.queue, "INGEST_MOCK_URL": mock_server.url, "INGEST_CATALOG": str(DEMO_CATALOG)}
    args = ["enqueue", "--sources", "market_quotes,sensor_synthetic", "--since", "2026-01-01", "--until",
            "2026-01-01T12:00:00Z", "--window", "6h"]
    first = CliRunner().invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    assert first.output.count("enqueued market_quotes as job backfill-20260101T000000Z-20260101T120000Z-") == 2
    assert "sensor_synthetic as job backfill-20260101T000000Z-20260101T120000Z-sensor_synthetic-20260101T060000Z" \
        in first.output
    second = CliRunner().invoke(main, args, env=env)
    assert second.output.count("already enqueued") == 4
    assert scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE status = 'enqueued'") == 4  # listed once
    for bad, message in ((["--until", "2026-01-02"], "needs both --since and --until"),
                         (["--since", "2026-01-02", "--until", "2026-01-01"], "--until must be later"),
                         (["--since", "x", "--until", "2026-01-01"], "is not an ISO 8601 time"),
                         (["--since", "2026-01-01", "--until", "2026-01-02", "--window", "0d"], "not a duration")):
        result = CliRunner().invoke(main, ["enqueue", "--sources", "market_quotes", *bad], env=env)
        assert result.exit_code != 0 and message in result.output, result.output
    result = CliRunner().invoke(main, ["enqueue", "--sources", "telegram_mentions", "--since", "2026-01-01",
                                       "--until", "2026-01-02"], env=env)
    assert result.exit_code == 1 and "cannot be backfilled by time" in result.output


def test_a_backfill_of_all_sources_skips_those_that_cannot_and_says_why(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("""
[sources.quotes_by_time]
kind = "http_json"
dataset = "quotes"
url = "http://127.0.0.1:1/quotes"
cursor_field = "ts"
since_param = "from"
until_param = "to"

[sources.quotes_no_range]
kind = "http_json"
dataset = "quotes"
url = "http://127.0.0.1:1/quotes"
cursor_field = "ts"
since_param = "from"

[sources.shop_no_cursor]
kind = "http_json"
dataset = "products"
url = "http://127.0.0.1:1/products"
""", encoding="utf-8")
    env = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url, "INGEST_QUEUE": settings.queue}
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "enqueue", "--sources", "all", "--since",
                                       "2026-01-01", "--until", "2026-01-02"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert ("skipped quotes_no_range: it cannot be backfilled by time: it needs since_param and until_param "
            "(or {since} and {until} in its request)") in lines
    assert any(line.startswith("skipped shop_no_cursor: it cannot be backfilled by time: its cursor_field is not")
               for line in lines), lines
    assert [line.split()[1] for line in lines if line.startswith("enqueued")] == ["quotes_by_time"]
