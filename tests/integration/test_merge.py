"""A dataset declared in a catalog file only, merge-loaded from the mock source through real
`rq worker` processes: new keys inserted, changed records replace their rows, unchanged rows are
not rewritten (their ``xmin`` stays), and an identical run changes nothing, with or without Redis.

The expected table is computed here from the records the mock serves at each revision (the
feed's record functions), never from the loader or the mock's own notion of what changed.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.core.models import Lineage
from ingest_workers.load.loader import PostgresLoader
from ingest_workers.load.migrate import migrate
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers
from ingest_workers.testing.mock_sources import MockConfig, MockServer, products
from ingest_workers.testing.mock_sources.revisions import revise

pytestmark = pytest.mark.integration

RECORDS = 1_200
CATALOG = """
[datasets.shop_prices]
table = "merge_shop_prices"
key = ["product_id"]
write = "merge"
indexes = [["in_stock"]]
[datasets.shop_prices.columns]
product_id = { type = "text", required = true }
name = { type = "text", required = true, max_length = 1000 }
price = { type = "money", required = true, min = 0 }
in_stock = "boolean"
updated_at = "timestamp"

[sources.shop_a_prices]
kind = "http_json"
dataset = "shop_prices"
url = "URL/products"
page_size = 250
fields = { product_id = "id", name = "title" }
"""


def _drop(pg: psycopg2.extensions.connection, *tables: str) -> None:
    with pg, pg.cursor() as cur:
        for table in tables:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def expected_rows(revision: int) -> dict[str, tuple[str, Decimal, bool]]:
    """What the table should hold after loading ``revision``: the valid records as served then."""
    rows = {}
    for index in range(RECORDS):
        record = revise(products.product(index), index, revision, 10, 97)
        price, title, in_stock = record["price"], record["title"], record["in_stock"]
        if isinstance(price, (int, float)) and price >= 0 and title and isinstance(in_stock, bool):
            rows[record["id"]] = (title, Decimal(str(price)), in_stock)
    return rows


def table_state(pg: psycopg2.extensions.connection) -> dict[str, tuple[str, Decimal, bool, str]]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT product_id, name, price, in_stock, xmin::text FROM merge_shop_prices")
        return {pid: (name, price, stock, xmin) for pid, name, price, stock, xmin in cur.fetchall()}


def test_changed_records_replace_their_rows_and_unchanged_ones_are_not_rewritten(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    _drop(pg, "merge_shop_prices")
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.replace("URL", mock_server.url), encoding="utf-8")
    catalog = load_catalog(path, {})
    assert "created table merge_shop_prices (dataset shop_prices)" in migrate(pg, catalog.datasets.values())
    sources = catalog.select("all")
    queue = make_queue(redis_client, settings)

    def run(run_id: str) -> None:
        enqueued = enqueue_run(queue, settings, sources, run_id)
        state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=120)
        assert state.done == state.total and state.failed == 0

    first, second = expected_rows(0), expected_rows(1)
    changed = {pid for pid in second if second[pid] != first[pid]}
    assert 0 < len(changed) < len(second)  # the fixture really changes some records, not all
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        mock_server.config = MockConfig(records=RECORDS)
        run("run-1")
        after_first = table_state(pg)
        mock_server.config = MockConfig(records=RECORDS, revision=1)
        run("run-2")
        after_second = table_state(pg)
        run("run-3")  # the same revision again: nothing to do
        after_third = table_state(pg)
        redis_client.flushdb()  # Redis forgets everything: PostgreSQL still decides, and finds nothing to change
        run("run-4")
        after_fourth = table_state(pg)

    assert {pid: row[:3] for pid, row in after_first.items()} == first
    assert {pid: row[:3] for pid, row in after_second.items()} == second
    for pid, row in after_second.items():
        rewritten = row[3] != after_first[pid][3]
        assert rewritten == (pid in changed), pid
    assert after_third == after_second and after_fourth == after_second

    counts = {run_id: JobHistory(pg).summarise(run_id)[0].counts for run_id in ("run-1", "run-2", "run-3", "run-4")}
    invalid = RECORDS - len(first)
    assert (counts["run-1"].loaded, counts["run-1"].updated, counts["run-1"].rejected) == (len(first), 0, invalid)
    assert (counts["run-2"].loaded, counts["run-2"].updated) == (0, len(changed))
    assert counts["run-2"].duplicate == len(first) - len(changed)
    for run_id in ("run-3", "run-4"):
        assert (counts[run_id].loaded, counts[run_id].updated, counts[run_id].duplicate) == (0, 0, len(first))
    for c in counts.values():
        assert c.fetched == c.rejected + c.duplicate + c.loaded + c.updated == RECORDS


VERSIONED = {
    "table": "merge_versioned", "key": ["item_id"], "write": "merge", "version_column": "version",
    "columns": {"item_id": "text", "version": "integer", "value": "text"},
}


def test_with_a_version_column_only_a_higher_version_replaces_the_row(pg: psycopg2.extensions.connection) -> None:
    from ingest_workers.datasets import parse_dataset

    _drop(pg, "merge_versioned")
    dataset = parse_dataset("versioned", VERSIONED)
    migrate(pg, [dataset])
    loader = PostgresLoader(pg)
    lineage = Lineage("src", "run", "job", "2026-01-01T00:00:00+00:00")

    def rows(*items: tuple[str, int, str]) -> list[dict]:
        return [{"item_id": i, "version": v, "value": value, "source": "src", "run_id": "run", "job_id": "job",
                 "fetched_at": lineage.fetched_at, "raw": {"id": i}} for i, v, value in items]

    def stored() -> dict[str, tuple[int, str]]:
        with pg, pg.cursor() as cur:
            cur.execute("SELECT item_id, version, value FROM merge_versioned")
            return {i: (v, value) for i, v, value in cur.fetchall()}

    assert loader.load_batch(dataset, rows(("a", 2, "two"), ("b", 1, "one")), [], lineage)[:3] == (2, [], 0)
    assert loader.load_batch(dataset, rows(("a", 1, "older"), ("b", 1, "same version, other value")), [],
                             lineage)[:3] == (0, [], 0)
    assert stored() == {"a": (2, "two"), "b": (1, "one")}
    # A key twice in one batch: its highest version wins, whatever the order.
    written = loader.load_batch(dataset, rows(("a", 4, "four"), ("a", 3, "three"), ("c", 1, "new")), [], lineage)
    assert written[:3] == (1, [], 1)
    assert sorted((row["item_id"], row["version"]) for row in written.written) == [("a", 4), ("c", 1)]  # for sinks
    assert stored() == {"a": (4, "four"), "b": (1, "one"), "c": (1, "new")}


def test_an_append_dataset_keeps_the_first_version(pg: psycopg2.extensions.connection) -> None:
    from ingest_workers.datasets import parse_dataset

    _drop(pg, "append_items")
    dataset = parse_dataset("items", {**VERSIONED, "table": "append_items", "write": "append",
                                      "version_column": None})
    migrate(pg, [dataset])
    lineage = Lineage("src", "run", "job", "2026-01-01T00:00:00+00:00")
    row = {"item_id": "a", "version": 1, "value": "first", "source": "src", "run_id": "run", "job_id": "job",
           "fetched_at": lineage.fetched_at, "raw": {}}
    loader = PostgresLoader(pg)
    assert loader.load_batch(dataset, [row], [], lineage)[:3] == (1, [], 0)
    assert loader.load_batch(dataset, [{**row, "version": 2, "value": "second"}], [], lineage)[:3] == (0, [], 0)
    with pg, pg.cursor() as cur:
        cur.execute("SELECT value FROM append_items")
        assert cur.fetchall() == [("first",)]

