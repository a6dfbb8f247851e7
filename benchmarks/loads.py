"""PostgreSQL alone: the COPY ceiling, our idempotent loader, and the naive one-INSERT-per-row baseline."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg2
from psycopg2.extras import Json

from ingest_workers.core.models import Lineage, Record, SourceSpec
from ingest_workers.datasets import PRODUCTS
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.load.loader import PostgresLoader, copy_text
from ingest_workers.stages.base import compose
from ingest_workers.stages.registry import source_stages
from ingest_workers.testing.mock_sources import FEEDS

BATCH = 1000


def served_records(count: int) -> list[Any]:
    """Shop A's first ``count`` products as a client decodes them (through JSON, as served)."""
    feed = FEEDS["/products"]
    return json.loads(json.dumps([feed.record(i, 97) for i in range(count)]))


def checked_rows(spec: SourceSpec, records: list[Any], lineage: Lineage) -> list[dict[str, Any]]:
    """The rows our stages make of ``records`` (map, validate, enrich); the refused ones are left out."""
    items = compose(source_stages(spec, PRODUCTS, lineage), (Record(r) for r in records))
    return [item.row for item in items if isinstance(item, Record)]


def chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def copy_ceiling(database_url: str, rows: Sequence[dict[str, Any]], batch: int | None = None) -> float:
    """Seconds for a plain COPY of the rows, serialised beforehand (not timed), into an empty
    table with the products' columns and no key, index or check: the physical limit here.
    One COPY, or (``batch``) one COPY and commit per ``batch`` rows."""
    payloads = [copy_text(part, PRODUCTS.load_columns).encode("utf-8") for part in chunks(rows, batch or len(rows))]
    columns = ", ".join(PRODUCTS.load_columns)
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_ceiling")
            cur.execute("CREATE TABLE bench_ceiling AS SELECT * FROM products WITH NO DATA")
        started = time.perf_counter()
        for payload in payloads:
            with conn, conn.cursor() as cur:
                cur.copy_expert(f"COPY bench_ceiling ({columns}) FROM STDIN", io.BytesIO(payload))
        return time.perf_counter() - started
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("DROP TABLE bench_ceiling")
        conn.close()


def our_loader(database_url: str, rows: Sequence[dict[str, Any]], lineage: Lineage) -> float:
    """Seconds for :class:`PostgresLoader` to load the rows into the empty ``products`` table,
    a transaction per batch of 1,000 (serialisation included)."""
    conn = psycopg2.connect(database_url)
    try:
        _truncate(conn)
        loader = PostgresLoader(conn, copy_serialiser(PRODUCTS))  # as a job runs it (INGEST_RECORD_PATH)
        started = time.perf_counter()
        loaded = sum(loader.load_batch(PRODUCTS, batch, [], lineage)[0] for batch in chunks(rows, BATCH))
        elapsed = time.perf_counter() - started
        if loaded != len(rows):
            raise SystemExit(f"loader benchmark: {loaded} of {len(rows)} rows loaded")
        return elapsed
    finally:
        _truncate(conn)
        conn.close()


def serialise_only(rows: Sequence[dict[str, Any]]) -> float:
    """Seconds the loader spends making COPY text of the rows (the client's part), batch by batch,
    with the serialiser generated for the dataset (what a job runs)."""
    serialise = copy_serialiser(PRODUCTS)
    started = time.perf_counter()
    for batch in chunks(rows, BATCH):
        serialise(batch).encode("utf-8")
    return time.perf_counter() - started


def server_only(database_url: str, rows: Sequence[dict[str, Any]], staging: bool) -> float:
    """Seconds of the loader's statements with the COPY text made beforehand (the server's part),
    per 1,000 rows: COPY straight into the table (its usual path) or, with ``staging``, its path for
    a batch holding a key loaded already (COPY to the temp staging table, INSERT … ON CONFLICT)."""
    payloads = [copy_text(batch, PRODUCTS.load_columns).encode("utf-8") for batch in chunks(rows, BATCH)]
    columns = ", ".join(PRODUCTS.load_columns)
    copy = f"COPY {'staging_products' if staging else 'products'} ({columns}) FROM STDIN"
    insert = (f"INSERT INTO products ({columns}) SELECT {columns} FROM staging_products "
              "ON CONFLICT (source, product_id) DO NOTHING")
    conn = psycopg2.connect(database_url)
    try:
        _truncate(conn)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE staging_products (LIKE products INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        started = time.perf_counter()
        for payload in payloads:
            with conn, conn.cursor() as cur:
                cur.execute("SAVEPOINT direct_copy")
                cur.copy_expert(copy, io.BytesIO(payload))
                if staging:
                    cur.execute(insert)
        return time.perf_counter() - started
    finally:
        _truncate(conn)
        conn.close()


def naive_inserts(database_url: str, rows: Sequence[dict[str, Any]]) -> float:
    """Seconds for the design notes' naive approach: one process, one ``INSERT`` (and commit) per row."""
    columns = PRODUCTS.load_columns
    statement = (f"INSERT INTO products ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
                 "ON CONFLICT (source, product_id) DO NOTHING")
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        _truncate(conn)
        started = time.perf_counter()
        with conn.cursor() as cur:
            for row in rows:
                cur.execute(statement, [Json(row[c]) if c == "raw" else row[c] for c in columns])
        return time.perf_counter() - started
    finally:
        _truncate(conn)
        conn.close()


def _truncate(conn: psycopg2.extensions.connection) -> None:
    with conn.cursor() as cur:
        cur.execute("TRUNCATE products")
    if not conn.autocommit:
        conn.commit()
