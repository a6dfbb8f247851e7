"""The chaos run's merge datasets: sources whose records change between passes.

Each merge source loads shop A's products into a declared ``write = "merge"`` dataset. The
first pass serves revision 0; when every job of a pass has ended, the mock serves the next
revision (every 10th valid record has another price, stock or title) and the merge sources
run again, while workers go on being SIGKILLed and PostgreSQL cut. The verdict: for every
key, the final row holds what the last revision serves (computed here from the feed's
records), no key is missing, none is extra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from psycopg2 import sql
from rq import Queue

from ..core.config import Settings
from ..core.models import SourceSpec
from ..datasets import Dataset, parse_dataset
from ..ops.watch import job_states
from ..runtime.producer import enqueue_run, new_run_id
from .mock_sources import MockServer, products
from .mock_sources.revisions import revise

MERGE_TABLE = "chaos_merge_products"
CHANGED_EVERY = 10
MERGE_DATASET: Dataset = parse_dataset("chaos_merge", {
    "table": MERGE_TABLE, "key": ["product_id"], "write": "merge",
    "columns": {"product_id": {"type": "text", "required": True}, "name": {"type": "text", "required": True},
                "price": {"type": "money", "required": True, "min": 0}, "in_stock": "boolean",
                "updated_at": "timestamp"},
})


def merge_specs(names: Sequence[str], url: str, page_size: int, rate_limit: float) -> list[SourceSpec]:
    return [SourceSpec(name=name, kind="http_json", dataset=MERGE_DATASET.name, url=f"{url}/products",
                       page_size=page_size, fields={"product_id": "id", "name": "title"}, rate_limit=rate_limit,
                       declaration=MERGE_DATASET.to_dict()) for name in names]


class MergePasses:
    """Run the merge sources ``passes`` times, one revision of the feed per pass."""

    def __init__(self, specs: list[SourceSpec], passes: int, server: MockServer) -> None:
        self._specs, self._server = specs, server
        self.remaining = passes if specs else 0
        self.revision = -1
        self._current: list[str] = []

    def advance(self, queue: Queue, settings: Settings, in_flight: Sequence[str] = ()) -> list[str]:
        """When the current pass and every job of ``in_flight`` have ended (or none started): serve
        the next revision and enqueue the next pass; returns the new job ids (none while jobs run or
        when all passes have run). Waiting for every job keeps the other sources' feed the same while
        they read it (a revision adds a field to each record's payload)."""
        if not self.remaining:
            return []
        running = [*self._current, *(in_flight if self._current else ())]
        if running and job_states(queue, running).done < len(running):
            return []
        self.remaining -= 1
        self.revision += 1
        self._server.config = dataclasses.replace(self._server.config, revision=self.revision,
                                                  changed_every=CHANGED_EVERY)
        self._current = [e.job_id for e in enqueue_run(queue, settings, self._specs, new_run_id())]
        return list(self._current)


def expected_rows(records: int, invalid_every: int, revision: int) -> dict[str, tuple[str, Decimal, Any]]:
    """What a merge source's rows must hold after ``revision``: each valid record as then served
    (valid by the dataset's own rules: a price that is a number >= 0, a title, true/false stock)."""
    rows = {}
    for index in range(records):
        record = revise(products.product(index, invalid_every), index, revision, CHANGED_EVERY, invalid_every)
        price, title, in_stock = record["price"], record["title"], record["in_stock"]
        if (isinstance(price, (int, float)) and not isinstance(price, bool) and price >= 0 and title
                and isinstance(in_stock, bool)):
            rows[record["id"]] = (title, Decimal(str(price)), in_stock)
    return rows


@dataclasses.dataclass
class MergeVerdict:
    rows: int = 0
    stale: int = 0  # a key whose row does not hold the last revision
    missing: int = 0
    extra: int = 0
    updated: int = 0  # rows replaced, as the jobs counted them
    revision: int = 0

    @property
    def ok(self) -> bool:
        return not (self.stale or self.missing or self.extra)


def check_merge(conn: psycopg2.extensions.connection, names: Sequence[str], records: int, invalid_every: int,
                revision: int) -> MergeVerdict:
    verdict = MergeVerdict(revision=max(revision, 0))
    if not names:
        return verdict
    expected = expected_rows(records, invalid_every, verdict.revision)
    with conn, conn.cursor() as cur:
        for name in names:
            cur.execute(sql.SQL("SELECT product_id, name, price, in_stock FROM {} WHERE source = %s").format(
                sql.Identifier(MERGE_TABLE)), (name,))
            stored = {pid: (title, price, stock) for pid, title, price, stock in cur.fetchall()}
            verdict.rows += len(stored)
            verdict.missing += len(expected.keys() - stored.keys())
            verdict.extra += len(stored.keys() - expected.keys())
            verdict.stale += sum(stored[k] != expected[k] for k in expected.keys() & stored.keys())
        cur.execute("SELECT coalesce(sum(updated), 0) FROM ingest_jobs WHERE source = ANY(%s)", (list(names),))
        verdict.updated = int(cur.fetchone()[0])
    return verdict


def forget_merge(conn: psycopg2.extensions.connection, names: Sequence[str]) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE source = ANY(%s)").format(sql.Identifier(MERGE_TABLE)),
                    (list(names),))
