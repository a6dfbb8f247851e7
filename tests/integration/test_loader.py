"""The PostgreSQL loader against the real server: idempotent, exact, and a bad row never sinks its batch."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest

from ingest_workers.core.models import Lineage, Rejected
from ingest_workers.datasets import PRODUCTS
from ingest_workers.load.loader import PostgresLoader
from tests.helpers import scalar

pytestmark = pytest.mark.integration

LINEAGE = Lineage("shop", "run-1", "job-1", "2026-01-01T00:00:00+00:00")


def row(product_id: str, **changes: Any) -> dict[str, Any]:
    base = {"product_id": product_id, "name": f"Product {product_id}", "price": Decimal("9.99"), "currency": "USD",
            "category": ["home"], "in_stock": True, "updated_at": None, "source": "shop", "run_id": "run-1",
            "job_id": "job-1", "fetched_at": LINEAGE.fetched_at, "raw": {"id": product_id}}
    return {**base, **changes}


def test_a_batch_loaded_twice_is_inserted_once(pg: psycopg2.extensions.connection) -> None:
    loader = PostgresLoader(pg)
    rows = [row(str(i)) for i in range(500)]
    assert loader.load_batch(PRODUCTS, rows, [], LINEAGE)[:3] == (500, [], 0)
    again = loader.load_batch(PRODUCTS, rows, [], LINEAGE)
    assert (again.inserted, again.refused, again.updated, again.unchanged) == (0, [], 0, 500)
    assert scalar(pg, "SELECT count(*) FROM products") == 500


def test_a_batch_partly_loaded_before_inserts_only_its_new_rows(pg: psycopg2.extensions.connection) -> None:
    """The direct COPY meets a key already there: the batch goes the staging way, in the same transaction,
    with its rejections and the in-transaction work, and nothing of the failed COPY stays."""
    loader = PostgresLoader(pg)
    assert loader.load_batch(PRODUCTS, [row(str(i)) for i in range(0, 300, 2)], [], LINEAGE)[:3] == (150, [], 0)
    calls = []
    batch = [row(str(i), run_id="run-2") for i in range(300)]
    result = loader.load_batch(PRODUCTS, batch, [Rejected({"id": "x"}, "name: missing", "validate")],
                               LINEAGE, in_transaction=calls.append)
    assert (result.inserted, result.refused, result.unchanged, len(calls)) == (150, [], 150, 1)
    assert scalar(pg, "SELECT count(*) FROM products") == 300
    assert scalar(pg, "SELECT count(*) FROM products WHERE run_id = 'run-2'") == 150
    assert scalar(pg, "SELECT count(*) FROM rejected_records") == 1
    # The next batch, all new, takes the direct way again on the same connection.
    assert loader.load_batch(PRODUCTS, [row(str(i)) for i in range(300, 400)], [], LINEAGE)[:3] == (100, [], 0)
    assert scalar(pg, "SELECT count(*) FROM products") == 400


def test_duplicate_keys_inside_one_batch_insert_once(pg: psycopg2.extensions.connection) -> None:
    result = PostgresLoader(pg).load_batch(PRODUCTS, [row("a"), row("a"), row("b")], [], LINEAGE)
    assert (result.inserted, result.refused, result.updated, result.unchanged) == (2, [], 0, 1)


def test_awkward_text_survives_copy_exactly(pg: psycopg2.extensions.connection) -> None:
    name = 'tab\there, newline\nthere, back\\slash, "quotes", \r, ünïcødé, \\N, emoji 🚀'
    category = ['a"b', "c\\d", "e,f", "{g}", "NULL", ""]
    raw = {"id": "x", "nul": "a\x00b", "nan": float("nan"), "surrogate": "\ud800", "deep": [[[["y"]]]]}
    PostgresLoader(pg).load_batch(PRODUCTS, [row("x", name=name, category=category, raw=raw)], [], LINEAGE)
    with pg, pg.cursor() as cur:
        cur.execute("SELECT name, category, raw FROM products WHERE product_id = 'x'")
        stored_name, stored_category, stored_raw = cur.fetchone()
    assert stored_name == name
    assert stored_category == category
    assert stored_raw == {"id": "x", "nul": "a\ufffdb", "nan": "nan", "surrogate": "?", "deep": [[[["y"]]]]}


def test_a_row_postgres_refuses_is_rejected_and_the_rest_load(pg: psycopg2.extensions.connection) -> None:
    rows = [row(str(i)) for i in range(10)]
    rows[6] = row("6", price=Decimal("123456789012.00"))  # numeric(12,2) overflows
    result = PostgresLoader(pg).load_batch(PRODUCTS, rows, [], LINEAGE)
    inserted, refused = result.inserted, result.refused
    assert (inserted, result.unchanged) == (9, 0)
    assert [r.raw for r in refused] == [{"id": "6"}]
    assert refused[0].stage == "load" and "numeric field overflow" in refused[0].reason
    assert scalar(pg, "SELECT count(*) FROM products") == 9
    assert scalar(pg, "SELECT count(*) FROM rejected_records WHERE stage = 'load'") == 1


def test_rejections_are_recorded_once_with_their_reason(pg: psycopg2.extensions.connection) -> None:
    rejected = [Rejected({"id": 1, "price": -1}, "price: must not be negative", "validate"),
                Rejected("not an object", "record is a JSON str, not an object", "map")]
    loader = PostgresLoader(pg)
    loader.load_batch(PRODUCTS, [], rejected, LINEAGE)
    loader.load_batch(PRODUCTS, [], rejected, LINEAGE)
    with pg, pg.cursor() as cur:
        cur.execute("SELECT source, stage, reason, payload, run_id, job_id FROM rejected_records ORDER BY stage")
        stored = cur.fetchall()
    assert stored == [("shop", "map", "record is a JSON str, not an object", "not an object", "run-1", "job-1"),
                      ("shop", "validate", "price: must not be negative", {"id": 1, "price": -1}, "run-1", "job-1")]


def test_sql_looking_text_is_only_data(pg: psycopg2.extensions.connection) -> None:
    evil = "x'); DROP TABLE products; --"
    PostgresLoader(pg).load_batch(PRODUCTS, [row(evil, name=evil, raw={"q": evil})], [], LINEAGE)
    assert scalar(pg, "SELECT count(*) FROM products WHERE name = %s", evil) == 1
