"""The chaos run's merge datasets: sources whose records change between passes (and a history
and a replace source reading the same feed: :mod:`.chaos_lifecycles`).

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
from contextlib import closing
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from rq import Queue

from ..core.config import Settings
from ..core.models import SourceSpec
from ..datasets import Dataset, parse_dataset
from ..ops.watch import job_states
from ..runtime.producer import enqueue_run, new_run_id
from .chaos_lifecycles import (
    HISTORY_DATASET,
    HISTORY_SOURCE,
    REPLACE_DATASET,
    REPLACE_SOURCE,
    forget_lifecycles,
    history_broken,
    replace_rows,
    replaced_revision,
)
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


CHAOS_DATASETS = (MERGE_DATASET, HISTORY_DATASET, REPLACE_DATASET)
_DATASET_OF = {HISTORY_SOURCE: HISTORY_DATASET, REPLACE_SOURCE: REPLACE_DATASET}


def merge_source_names(merge_sources: int) -> list[str]:
    """The merge sources' names, then (with any) the history and the replace source's."""
    names = [f"chaos_merge_{i}" for i in range(merge_sources)]
    return [*names, HISTORY_SOURCE, REPLACE_SOURCE] if names else []


def merge_specs(names: Sequence[str], url: str, page_size: int, rate_limit: float) -> list[SourceSpec]:
    datasets = [_DATASET_OF.get(name, MERGE_DATASET) for name in names]
    return [SourceSpec(name=name, kind="http_json", dataset=dataset.name, url=f"{url}/products",
                       page_size=page_size, fields={"product_id": "id", "name": "title"}, rate_limit=rate_limit,
                       declaration=dataset.to_dict()) for name, dataset in zip(names, datasets)]


class MergePasses:
    """Run the merge sources ``passes`` times, one revision of the feed per pass. A pass runs again
    (up to :data:`REPEATS` times in all) while a job of it did not finish, before the next revision
    is served: a chaos fault made it lose a page (the job ends partial and names the page, as it
    must), whose keys then still hold the revision before. Repeating only the last pass was not
    enough: the history source keeps every revision as a version, and the verdict asks for each, so
    a page lost in an earlier pass left that revision's versions missing for good (the flake
    ``history_broken>0``, or ``stale>0`` before the last pass was repeated)."""

    REPEATS = 3

    def __init__(self, specs: list[SourceSpec], passes: int, server: MockServer, database_url: str = "") -> None:
        self._specs, self._server, self._database_url = specs, server, database_url
        self.remaining = passes if specs else 0
        self.revision = -1
        self._current: list[str] = []
        self.runs: dict[str, int] = {}  # run id -> the revision it read
        self._judged: set[str] = set()  # runs already checked for a job that did not finish
        self._again = False  # the next pass serves the current revision again
        self.repeats = 0

    def pending(self, queue: Queue) -> bool:
        """Whether a pass is still to run: passes left, or the one that ended lost pages and runs again."""
        return bool(self.remaining) or self._repeat_pass(queue)

    def _repeat_pass(self, queue: Queue) -> bool:
        """Once the current pass has ended with a job that did not finish: run its revision again."""
        run = next(reversed(self.runs), None)
        if not self._database_url or run is None or run in self._judged or self.repeats >= self.REPEATS:
            return False
        if job_states(queue, self._current).done < len(self._current):
            return False
        self._judged.add(run)
        with closing(psycopg2.connect(self._database_url)) as conn, conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE status <> 'finished') FROM ingest_jobs WHERE run_id = %s",
                        (run,))
            if not cur.fetchone()[0]:
                return False
        self.repeats, self.remaining, self._again = self.repeats + 1, self.remaining + 1, True
        return True

    @property
    def jobs_per_pass(self) -> int:
        return len(self._specs)

    def advance(self, queue: Queue, settings: Settings, in_flight: Sequence[str] = ()) -> list[str]:
        """When the current pass and every job of ``in_flight`` have ended (or none started): serve
        the next revision and enqueue the next pass; returns the new job ids (none while jobs run or
        when all passes have run). Waiting for every job keeps the other sources' feed the same while
        they read it (a revision adds a field to each record's payload)."""
        if not self.remaining and not self._repeat_pass(queue):
            return []
        running = [*self._current, *(in_flight if self._current else ())]
        if running and job_states(queue, running).done < len(running):
            return []
        self._repeat_pass(queue)  # a pass that lost a page: its revision again, not the next one yet
        self.remaining -= 1
        self.revision += 0 if self._again else 1
        self._again = False
        self._server.config = dataclasses.replace(self._server.config, revision=self.revision,
                                                  changed_every=CHANGED_EVERY)
        run_id = new_run_id()
        self.runs[run_id] = self.revision
        self._current = [e.job_id for e in enqueue_run(queue, settings, self._specs, run_id)]
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
    history_broken: int = 0  # keys whose versions are not the feed's successive values, or do not chain
    replace_revision: int | None = None  # the revision the replace source's rows hold (its last switch)

    @property
    def ok(self) -> bool:
        broken = self.stale or self.missing or self.extra or self.history_broken
        return not broken and (self.replace_revision is not None or not self.rows)


def check_merge(conn: psycopg2.extensions.connection, names: Sequence[str], records: int, invalid_every: int,
                passes: MergePasses) -> MergeVerdict:
    """Merge sources: each key holds the last revision; history and replace: see :mod:`.chaos_lifecycles`."""
    verdict = MergeVerdict(revision=max(passes.revision, 0))
    if not names:
        return verdict
    expected = expected_rows(records, invalid_every, verdict.revision)
    stored_history = _history_current(conn)
    verdict.history_broken = history_broken(conn, verdict.revision,
                                            lambda revision: expected_rows(records, invalid_every, revision))
    verdict.replace_revision = replaced_revision(conn, passes.runs)
    replaced = expected_rows(records, invalid_every, verdict.replace_revision or 0)
    for stored, wanted in ((stored_history, expected), (replace_rows(conn), replaced)):
        verdict.missing += len(wanted.keys() - stored.keys())
        verdict.extra += len(stored.keys() - wanted.keys())
        verdict.stale += sum(stored[k] != wanted[k] for k in wanted.keys() & stored.keys())
    with conn, conn.cursor() as cur:
        for name in names:
            if name in _DATASET_OF:
                continue
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


def _history_current(conn: psycopg2.extensions.connection) -> dict[str, tuple[str, Decimal, Any]]:
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT product_id, name, price, in_stock FROM {} WHERE source = %s").format(
            sql.Identifier(f"{HISTORY_DATASET.table}_current")), (HISTORY_SOURCE,))
        return {pid: (title, price, stock) for pid, title, price, stock in cur.fetchall()}


def forget_merge(conn: psycopg2.extensions.connection, names: Sequence[str]) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE source = ANY(%s)").format(sql.Identifier(MERGE_TABLE)),
                    (list(names),))
    forget_lifecycles(conn)
