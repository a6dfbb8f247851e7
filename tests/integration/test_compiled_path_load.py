"""The compiled record path and its generated COPY serialiser, through the real loader: the same
page, once on each path (as two sources), leaves the same rows and the same rejections in PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
import pytest

from ingest_workers.core.models import Lineage, Record, Rejected, SourceSpec
from ingest_workers.datasets import PRODUCTS
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.stages.base import compose
from ingest_workers.stages.registry import source_stages

pytestmark = pytest.mark.integration

PAGE: list[Any] = [
    {"id": "A-1", "title": "Lamp", "price": 12.5, "currency": "EUR", "category": ["home", "tab\there"],
     "in_stock": True, "updated_at": "2026-01-01T00:00:00Z"},
    {"id": " A-2 ", "title": "Ünïcödé \\ back\nslash", "price": "$1,299.00", "category": "garden",
     "updated_at": 1767225600, "extra": {"nested": [1, 2.5, None, "x\ty"]}},
    {"id": "A-3", "title": "Big", "price": 9999999999.99, "in_stock": "false",
     "updated_at": "2026-03-01T10:00:00+02:00"},
    {"id": "A-4", "title": "Too dear", "price": 1e12},
    {"id": "A-5", "title": "", "price": 1},
    {"id": "A-6", "title": "Bad time", "price": 1, "updated_at": "2026-02-30T00:00:00Z"},
    {"id": "A-7", "title": "NUL \x00 inside", "price": 1},
    ["not", "an", "object"],
]


def _load(pg: psycopg2.extensions.connection, source: str, compiled: bool) -> None:
    spec = SourceSpec(name=source, kind="http_json", dataset="products", fields={"product_id": "id", "name": "title"})
    lineage = Lineage(source, "run-1", "job-1", "2026-01-01T00:00:00+00:00")
    items = list(compose(source_stages(spec, PRODUCTS, lineage, compiled=compiled), [Record(raw) for raw in PAGE]))
    rows = [item.row for item in items if isinstance(item, Record)]
    rejected = [item for item in items if isinstance(item, Rejected)]
    loader = PostgresLoader(pg, copy_serialiser(PRODUCTS) if compiled else None)
    assert loader.load_batch(PRODUCTS, rows, rejected, lineage)[:3] == (3, [], 0)


def _stored(pg: psycopg2.extensions.connection, source: str) -> tuple[list[Any], list[Any]]:
    with pg.cursor() as cur:
        cur.execute("SELECT product_id, name, price, currency, category, in_stock, updated_at, raw::text "
                    "FROM products WHERE source = %s ORDER BY product_id", (source,))
        rows = cur.fetchall()
        cur.execute("SELECT stage, reason, payload::text FROM rejected_records WHERE source = %s ORDER BY reason",
                    (source,))
        return rows, cur.fetchall()


def test_both_paths_store_the_same_rows_and_rejections(pg: psycopg2.extensions.connection) -> None:
    _load(pg, "compiled", compiled=True)
    _load(pg, "reference", compiled=False)
    rows, rejections = _stored(pg, "compiled")
    assert (rows, rejections) == _stored(pg, "reference")
    assert [r[0] for r in rows] == ["A-1", "A-2", "A-3"]  # the fixture's three valid records
    assert rows[1][1] == "Ünïcödé \\ back\nslash" and rows[0][4] == ["home", "tab\there"]
    assert len(rejections) == 5
