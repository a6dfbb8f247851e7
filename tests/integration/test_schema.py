"""Tables from dataset declarations: `ingest db migrate` creates and evolves them, refuses what
needs a person (one message naming dataset, column, both types and the remedy), never drops;
many migrating at once is safe; a database loaded under the previous schema keeps every row;
workers refuse a table that does not match their catalog."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from click.testing import CliRunner

from ingest_workers import pipeline
from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import PermanentError
from ingest_workers.core.models import Lineage, SourceSpec
from ingest_workers.datasets import PRODUCTS, parse_dataset
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.load.migrate import migrate, migration_files
from ingest_workers.load.schema import SchemaRefused, differences
from ingest_workers.runtime.resources import Resources
from ingest_workers.testing.devservices import Services
from tests.helpers import scalar

pytestmark = pytest.mark.integration

ORDERS = {"table": "schema_orders", "key": ["order_id"], "write": "merge", "indexes": [["customer", "placed_at"]],
          "columns": {"order_id": "text", "customer": {"type": "text", "required": True}, "total": "money",
                      "placed_at": "timestamp", "lines": "json"}}


@pytest.fixture
def clean(pg: psycopg2.extensions.connection) -> psycopg2.extensions.connection:
    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS schema_orders")
    return pg


def columns(pg: psycopg2.extensions.connection, table: str) -> dict[str, tuple[str, str]]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_name = %s AND table_schema = current_schema()", (table,))
        return {name: (kind, nullable) for name, kind, nullable in cur.fetchall()}


def test_migrate_creates_the_table_with_key_indexes_lineage_and_raw(clean: psycopg2.extensions.connection) -> None:
    assert migrate(clean, [parse_dataset("orders", ORDERS)]) == ["created table schema_orders (dataset orders)"]
    assert columns(clean, "schema_orders") == {
        "order_id": ("text", "NO"), "customer": ("text", "YES"), "total": ("numeric", "YES"),
        "placed_at": ("timestamp with time zone", "YES"), "lines": ("jsonb", "YES"), "source": ("text", "NO"),
        "run_id": ("text", "NO"), "job_id": ("text", "NO"), "fetched_at": ("timestamp with time zone", "NO"),
        "raw": ("jsonb", "NO"), "loaded_at": ("timestamp with time zone", "NO")}
    with clean, clean.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'schema_orders' ORDER BY indexname")
        indexes = [row[0].split(" USING btree ")[1] for row in cur.fetchall()]
    assert sorted(indexes) == ["(customer, placed_at)", "(run_id)", "(source, order_id)"]
    assert migrate(clean, [parse_dataset("orders", ORDERS)]) == []  # up to date: nothing to do


def test_an_added_column_is_added_nullable_and_the_rows_stay(clean: psycopg2.extensions.connection) -> None:
    migrate(clean, [parse_dataset("orders", ORDERS)])
    with clean, clean.cursor() as cur:
        cur.execute("INSERT INTO schema_orders (order_id, source, run_id, job_id, fetched_at, raw) "
                    "VALUES ('o1', 's', 'r', 'j', now(), '{}')")
    grown = {**ORDERS, "columns": {**ORDERS["columns"], "status": {"type": "text", "one_of": ["open", "paid"]}},
             "indexes": [*ORDERS["indexes"], ["status"]]}
    assert migrate(clean, [parse_dataset("orders", grown)]) == [
        "added column schema_orders.status (dataset orders)", "added index on schema_orders (status)"]
    assert columns(clean, "schema_orders")["status"] == ("text", "YES")
    assert scalar(clean, "SELECT count(*) FROM schema_orders WHERE status IS NULL") == 1


def test_a_changed_type_key_or_removed_column_is_refused_in_one_message_and_nothing_changes(
        clean: psycopg2.extensions.connection) -> None:
    migrate(clean, [parse_dataset("orders", ORDERS)])
    changed_columns = {k: v for k, v in ORDERS["columns"].items() if k != "lines"}
    changed_columns["total"] = "integer"
    changed = {**ORDERS, "key": ["customer"], "columns": {**changed_columns, "note": "text"}}
    with pytest.raises(SchemaRefused) as caught:
        migrate(clean, [parse_dataset("orders", changed)])
    message = str(caught.value)
    assert ("dataset orders: column 'total' of table schema_orders is numeric, declared \"integer\"; declare it "
            "as \"numeric\" again, or convert the column yourself (ALTER TABLE schema_orders ALTER COLUMN total "
            "TYPE bigint USING ...)") in message
    assert ("dataset orders: column 'lines' of table schema_orders is jsonb, declared: none (removed from the "
            "declaration); declare it again (lines = \"json\"), or drop it yourself") in message
    assert ("dataset orders: the unique key of table schema_orders is (source, order_id), declared (source, "
            "customer); declare key = ['order_id'] again") in message
    assert "note" not in columns(clean, "schema_orders")  # refused as a whole: not even the new column
    assert "lines" in columns(clean, "schema_orders")  # nothing is ever dropped


def test_many_hosts_migrating_at_once_create_each_table_once(services: Services,
                                                            clean: psycopg2.extensions.connection) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        conn = psycopg2.connect(services.database_url)
        try:
            barrier.wait()
            results.append(migrate(conn, [parse_dataset("orders", ORDERS)]))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [[], [], [], ["created table schema_orders (dataset orders)"]]


def _row(product_id: str, lineage: Lineage) -> dict:
    return {"product_id": product_id, "name": f"n{product_id}", "price": 1, "currency": "USD", "category": ["a"],
            "in_stock": True, "updated_at": "2026-01-01T00:00:00+00:00", "source": lineage.source,
            "run_id": lineage.run_id, "job_id": lineage.job_id, "fetched_at": lineage.fetched_at,
            "raw": {"id": product_id}}


def test_a_database_loaded_under_the_previous_schema_keeps_every_row(services: Services) -> None:
    """Migrations 0001 and 0002 only (the previous version's schema) in a schema of its own, rows
    loaded there, then today's `ingest db migrate`: the same rows, value for value."""
    conn = psycopg2.connect(services.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS upgrade_check CASCADE; CREATE SCHEMA upgrade_check")
        with conn.cursor() as cur:
            cur.execute("SET search_path TO upgrade_check")
        conn.commit()
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())")
            for version, text in migration_files():
                if version < "0003":
                    cur.execute(text)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status, fetched, loaded) "
                        "VALUES ('old-job', 'old-run', 'shop', 'finished', 300, 300)")
        lineage = Lineage("shop", "old-run", "old-job", "2026-01-01T00:00:00+00:00")
        PostgresLoader(conn).load_batch(PRODUCTS, [_row(str(i), lineage) for i in range(300)], [], lineage)
        tables = ("products", "stock_quotes", "social_mentions", "posts", "sensor_readings", "ingest_jobs")

        def snapshot() -> dict[str, tuple[int, str]]:
            with conn, conn.cursor() as cur:
                out = {}
                for table in tables:
                    cur.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                f"FROM (SELECT * FROM {table}) t")
                    out[table] = cur.fetchone()
                return out

        before = snapshot()
        assert before["products"][0] == 300
        applied = migrate(conn)
        # the built-in tables match their declarations as they are: only the later numbered files apply
        assert applied == [version for version, _ in migration_files() if version >= "0003"]
        after = snapshot()
        unchanged = [t for t in tables if t != "ingest_jobs"]  # ingest_jobs gained a column, its rows stay
        assert {t: after[t] for t in unchanged} == {t: before[t] for t in unchanged}
        assert after["ingest_jobs"][0] == 1
        assert scalar(conn, "SELECT updated FROM ingest_jobs WHERE job_id = 'old-job'") == 0
        assert scalar(conn, "SELECT loaded FROM ingest_jobs WHERE job_id = 'old-job'") == 300
    finally:
        conn.rollback()
        with conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS upgrade_check CASCADE")
        conn.close()


def test_a_job_whose_table_differs_fails_at_once_saying_how(clean: psycopg2.extensions.connection,
                                                           settings: Settings) -> None:
    dataset = parse_dataset("orders", ORDERS)
    spec = SourceSpec(name="orders_api", kind="http_json", dataset="orders", url="http://127.0.0.1:1/orders",
                      declaration=dataset.to_dict())
    res = Resources(settings, {})
    try:
        with pytest.raises(PermanentError, match="dataset orders: table schema_orders does not exist"):
            pipeline.run_fetch_job(spec, "run-1", "run-1-orders_api", "inline", res)
    finally:
        res.close()
    migrate(clean, [dataset])
    assert differences(clean, [dataset]) == []
    grown = parse_dataset("orders", {**ORDERS, "columns": {**ORDERS["columns"], "status": "text"}})
    assert differences(clean, [grown]) == ["dataset orders: table schema_orders has no column 'status'"]


def test_workers_refuse_to_start_when_the_catalog_s_tables_differ(
        clean: psycopg2.extensions.connection, settings: Settings, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("""
[datasets.orders]
table = "schema_orders"
key = ["order_id"]
[datasets.orders.columns]
order_id = "text"

[sources.orders_api]
kind = "http_json"
dataset = "orders"
url = "http://127.0.0.1:1/orders"
""", encoding="utf-8")
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "workers", "--count", "1"], env=env)
    assert result.exit_code == 1
    assert "the tables do not match the catalog; run `ingest db migrate` with this catalog" in result.output
    assert "dataset orders: table schema_orders does not exist" in result.output
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "db", "migrate"], env=env)
    assert result.exit_code == 0 and "created table schema_orders (dataset orders)" in result.output
