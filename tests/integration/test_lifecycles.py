"""Table lifecycles (issue 27) through real `rq worker` processes: a fixture API serves three
revisions of an account list (some records withdrawn, some flagged deleted, some changed, some
unchanged, one withdrawn and one deleted coming back, one served again with an older version),
loaded into a merge dataset with ``deleted_column``, a history dataset and a replace dataset (two
sources: the other one's rows are never touched), each with a nested dataset of the records'
labels. The third revision is loaded while the workers' work horses are SIGKILLed mid-job.

Each table after each revision is compared with what this file computes from the fixture's own
records (:func:`served`), never with what the loader reports; rows a revision does not touch keep
their ``xmin``, and a run of the same revision again changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2.extensions
import pytest
import redis

from ingest_workers.catalog import load_catalog
from ingest_workers.core.config import Settings
from ingest_workers.load.migrate import migrate
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.metrics import REPLACE_DELETED, read_counters
from ingest_workers.ops.status import source_status
from ingest_workers.ops.watch import summary_document, wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.fleet import WorkerFleet, work_horses

pytestmark = pytest.mark.integration

RECORDS = 25
T1 = datetime(2026, 3, 1, tzinfo=UTC)
T2, T3 = T1 + timedelta(days=1), T1 + timedelta(days=2)
WITHDRAWN, FLAGGED, CHANGED, NEW = range(20, 23), range(15, 18), range(0, 5), range(25, 28)


def served(revision: int) -> list[dict[str, Any]]:
    """The records the fixture API serves at ``revision`` (1, 2, 3), in order."""
    out = []
    for i in range(RECORDS + len(NEW)):
        record = {"sku": f"s{i:02d}", "price": 10 + i, "updatedAt": T1.isoformat(), "deleted": False,
                  "discountPercentage": 5}
        if i in NEW and revision == 1:
            continue
        if revision >= 2:
            if i in WITHDRAWN and not (revision == 3 and i == 20):  # s20 comes back in revision 3
                continue
            if i in FLAGGED and not (revision == 3 and i == 15):  # s15 comes back, undeleted, in revision 3
                record.update(deleted=True, updatedAt=T2.isoformat())
            if i in CHANGED:
                record.update(price=100 + i, updatedAt=T2.isoformat())
            if i in NEW:
                record["updatedAt"] = T2.isoformat()
        if revision == 3:
            if i in (0, 1):  # changed again
                record.update(price=200 + i, updatedAt=T3.isoformat())
            if i == 2:  # served again with an older version: a duplicate, not a new version
                record.update(price=1, updatedAt=T1.isoformat())
            if i == 15:
                record.update(price=99, updatedAt=T3.isoformat())
        record["labels"] = labels(record["price"])
        out.append(record)
    return out


def labels(price: int) -> list[dict[str, str]]:
    """A record's labels follow its price (they change when it does); none from 200 on. No column reads ``color``."""
    return [] if price >= 200 else [{"name": "all", "color": "grey"}, {"name": f"p{price % 4}", "color": "red"}]


def label_names(price: Decimal) -> list[str]:
    return [label["name"] for label in labels(int(price))]


def expected_merge(revisions: list[int]) -> dict[str, tuple[Decimal, datetime]]:
    state: dict[str, tuple[Decimal, datetime]] = {}
    for revision in revisions:
        for r in served(revision):
            at = datetime.fromisoformat(r["updatedAt"])
            if r["deleted"]:
                state.pop(r["sku"], None)
            elif r["sku"] not in state or at > state[r["sku"]][1]:
                state[r["sku"]] = (Decimal(r["price"]), at)
    return state


def expected_history(revisions: list[int]) -> set[tuple[str, Decimal, datetime, datetime | None]]:
    """Every version: (sku, price, valid_from, valid_to)."""
    versions: dict[str, list[list[Any]]] = {}
    for revision in revisions:
        for r in served(revision):
            at, price = datetime.fromisoformat(r["updatedAt"]), Decimal(r["price"])
            mine = versions.setdefault(r["sku"], [])
            current = next((v for v in mine if v[3] is None), None)
            if r["deleted"]:
                if current is not None and current[2] <= at:
                    current[3] = at
            elif current is None:
                if not any(v[2] == at for v in mine):
                    mine.append([r["sku"], price, at, None])
            elif at > current[2] and (price, at) != (current[1], current[2]):
                current[3] = at
                mine.append([r["sku"], price, at, None])
    return {tuple(v) for mine in versions.values() for v in mine}


def expected_replace(revision: int) -> dict[str, tuple[Decimal, bool]]:
    return {r["sku"]: (Decimal(r["price"]), r["deleted"]) for r in served(revision)}


def expected_labels(revisions: list[int]) -> dict[str, set[tuple[Any, ...]]]:
    """Each nested table's rows: merge and replace (sku, name), history (sku, valid_from, name)."""
    return {"merge": {(sku, name) for sku, (price, _) in expected_merge(revisions).items()
                      for name in label_names(price)},
            "history": {(sku, start, name) for sku, price, start, _ in expected_history(revisions)
                        for name in label_names(price)},
            "replace": {(r["sku"], name) for r in served(revisions[-1]) for name in label_names(r["price"])}}


class LifecycleApi(ThreadingHTTPServer):
    """GET /accounts?page=N&limit=M: {"items": [...]} as of ``revision`` (/fixed: as of revision 1,
    always); ``broken``: a body that is not JSON; ``delay``: seconds before each answer."""

    revision = 1
    broken = False
    delay = 0.0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: LifecycleApi

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        time.sleep(self.server.delay)
        url = urlsplit(self.path)
        query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
        records = served(1 if url.path == "/fixed" else self.server.revision)
        if "limit" in query:
            start = (query.get("page", 1) - 1) * query["limit"]
            records = records[start:start + query["limit"]]
        body = b"<html>oops" if self.server.broken else json.dumps({"items": records}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the work horse asking was SIGKILLed

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[LifecycleApi]:
    server = LifecycleApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


COLUMNS = """sku = "text"
price = "money"
updated_at = "timestamp"
is_deleted = "boolean"
"""
CATALOG = f"""
[datasets.lc_accounts]
key = ["sku"]
write = "merge"
version_column = "updated_at"
deleted_column = "is_deleted"
[datasets.lc_accounts.columns]
{COLUMNS}
[datasets.lc_prices]
key = ["sku"]
write = "history"
version_column = "updated_at"
deleted_column = "is_deleted"
[datasets.lc_prices.columns]
{COLUMNS}
[datasets.lc_catalog_items]
key = ["sku"]
write = "replace"
[datasets.lc_catalog_items.columns]
{COLUMNS}
"""
SOURCE = """
[sources.{name}]
kind = "http_json"
dataset = "{dataset}"
url = "URL/accounts"
pagination = "none"
fields = {{ updated_at = "updatedAt", is_deleted = "deleted" }}
"""
TABLES = ("lc_accounts", "lc_prices", "lc_catalog_items")
NESTED_LABELS = """
[datasets.{dataset}_labels]
nested_in = "{dataset}"
path = "labels"
key = ["name"]
[datasets.{dataset}_labels.columns]
name = "text"
"""
PAGED_SOURCE = """
[sources.{name}]
kind = "http_json"
dataset = "{dataset}"
url = "URL/{path}"
pagination = "page"
page_size_param = "limit"
page_size = 5
concurrency = 1
rate_limit = 0
fields = {{ updated_at = "updatedAt", is_deleted = "deleted" }}
"""
OTHER = "src_catalog_items_fixed"  # another source of the replace dataset: always revision 1


def _catalog(tmp_path: Path, url: str) -> Path:
    nested = "".join(NESTED_LABELS.format(dataset=d) for d in TABLES)
    sources = "".join(PAGED_SOURCE.format(name=f"src_{d.removeprefix('lc_')}", dataset=d, path="accounts")
                      for d in TABLES)
    sources += PAGED_SOURCE.format(name=OTHER, dataset="lc_catalog_items", path="fixed")
    path = tmp_path / "catalog.toml"
    path.write_text((CATALOG + nested + sources).replace("URL", url), encoding="utf-8")
    return path


def _state(pg: psycopg2.extensions.connection) -> dict[str, dict[Any, Any]]:
    """Each table's rows with their xmin (the replace dataset's by source), and the nested ones' rows."""
    with pg, pg.cursor() as cur:
        cur.execute("SELECT sku, price, updated_at, xmin::text FROM lc_accounts")
        merge = {sku: (price, at, xmin) for sku, price, at, xmin in cur.fetchall()}
        cur.execute("SELECT sku, price, valid_from, valid_to, xmin::text FROM lc_prices")
        history = {(sku, price, start, end): xmin for sku, price, start, end, xmin in cur.fetchall()}
        cur.execute("SELECT source, sku, price, is_deleted, xmin::text FROM lc_catalog_items")
        replace: dict[str, dict[str, Any]] = {"src_catalog_items": {}, OTHER: {}}
        for source, sku, price, deleted, xmin in cur.fetchall():
            replace[source][sku] = (price, deleted, xmin)
        cur.execute("SELECT sku, name FROM lc_accounts_labels")
        nested: dict[str, Any] = {"merge": set(cur.fetchall())}
        cur.execute("SELECT sku, valid_from, name FROM lc_prices_labels")
        nested["history"] = set(cur.fetchall())
        cur.execute("SELECT source, sku, name, xmin::text FROM lc_catalog_items_labels")
        nested["replace"] = {}
        for source, sku, name, xmin in cur.fetchall():
            nested["replace"].setdefault(source, {})[(sku, name)] = xmin
    return {"merge": merge, "history": history, "replace": replace["src_catalog_items"], "other": replace[OTHER],
            "nested": nested}


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path) -> Iterator[WorkerFleet]:
    """Two workers, batches of 5 records (a job commits batch after batch: a kill lands between two)."""
    paced = dataclasses.replace(settings, batch_size=5, job_monitoring_interval=1, maintenance_interval=2,
                                worker_ttl=17)
    fleet = WorkerFleet(lambda name: worker_command(paced, name), worker_env(paced, os.environ),
                        tmp_path / "workers.log")
    fleet.start(2)
    yield fleet
    fleet.close()


def _kill_busy_horses(fleet: WorkerFleet, kills: int, after: float) -> None:
    """SIGKILL the work horse of a busy worker ``after`` seconds into its job, ``kills`` times."""
    deadline = time.monotonic() + 60
    while kills and time.monotonic() < deadline:
        busy = [worker for worker in fleet.workers if work_horses(worker.pid)]
        if busy:
            time.sleep(after)
            fleet.kill_worker(busy[0], horse_only=True)
            kills -= 1
        time.sleep(0.05)


def test_merge_history_and_replace_follow_three_revisions(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, api: LifecycleApi,
    tmp_path: Path, fleet: WorkerFleet,
) -> None:
    with pg, pg.cursor() as cur:
        for table in TABLES:
            cur.execute(f"DROP VIEW IF EXISTS {table}_current")
            cur.execute(f"DROP TABLE IF EXISTS {table}, {table}_staged, {table}_labels, {table}_labels_staged")
    catalog = load_catalog(_catalog(tmp_path, api.url), {})
    migrate(pg, catalog.datasets.values())
    with pg, pg.cursor() as cur:
        cur.execute("TRUNCATE replace_switches")
    sources, queue = catalog.select("all"), make_queue(redis_client, settings)
    # a job whose work horse is killed runs again (RQ's retry), and goes on where it left off
    retried = dataclasses.replace(settings, job_retries=3, job_retry_intervals="1", max_kills=5)

    def run(run_id: str, revision: int, kills: int = 0) -> dict[str, Any]:
        api.revision = revision
        enqueued = enqueue_run(queue, retried if kills else settings, sources, run_id)
        _kill_busy_horses(fleet, kills, after=0.4)
        state = wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=120)
        assert state.done == state.total and (state.failed == 0 or api.broken)
        return _state(pg)

    states = {1: run("run-1", 1), 2: run("run-2", 2)}
    deleted_metric = read_counters(redis_client, REPLACE_DELETED, [("src_catalog_items",)])
    api.delay = 0.1  # 6 pages a job, a batch each: the kills land mid-job
    states[3] = run("run-3", 3, kills=3)
    api.delay = 0.0
    redis_client.flushdb()  # Redis forgets what was loaded: PostgreSQL alone must find nothing to write
    again = run("run-4", 3)
    api.broken = True
    broken = run("run-5", 3)

    for revision, state in states.items():
        revisions = list(range(1, revision + 1))
        assert {sku: row[:2] for sku, row in state["merge"].items()} == expected_merge(revisions), revision
        assert set(state["history"]) == expected_history(revisions), revision
        assert {sku: row[:2] for sku, row in state["replace"].items()} == expected_replace(revision), revision
        assert {sku: row[:2] for sku, row in state["other"].items()} == expected_replace(1), revision
        wanted = expected_labels(revisions)
        assert state["nested"]["merge"] == wanted["merge"] and state["nested"]["history"] == wanted["history"]
        assert set(state["nested"]["replace"]["src_catalog_items"]) == wanted["replace"], revision
        assert set(state["nested"]["replace"][OTHER]) == expected_labels([1])["replace"], revision
    _check_untouched(states)
    assert again == states[3] and broken == states[3]  # the same revision again, and a broken run: nothing
    assert max(JobHistory(pg).attempts(JobHistory(pg).job_ids("run-3")).values()) > 1  # the kills hit jobs
    gone_in_2 = len({r["sku"] for r in served(1)} - {r["sku"] for r in served(2)})
    assert deleted_metric == [gone_in_2]
    _check_counts_and_switches(pg)


def _check_untouched(states: dict[int, dict[str, Any]]) -> None:
    """What a revision does not touch is not rewritten; the other replace source's rows never are."""
    for before, after in ((states[1], states[2]), (states[2], states[3])):
        for version, xmin in before["history"].items():
            if version in after["history"]:
                assert after["history"][version] == xmin, version
        for mode in ("merge", "replace", "other"):
            for sku, row in before[mode].items():
                if sku in after[mode] and after[mode][sku][:-1] == row[:-1]:
                    assert after[mode][sku][-1] == row[-1], (mode, sku)
        assert after["nested"]["replace"][OTHER] == before["nested"]["replace"][OTHER]
        for item, xmin in before["nested"]["replace"]["src_catalog_items"].items():
            if item in after["nested"]["replace"]["src_catalog_items"]:
                assert after["nested"]["replace"]["src_catalog_items"][item] == xmin, item


def _check_counts_and_switches(pg: psycopg2.extensions.connection) -> None:
    summaries = {run_id: {s.source: s.counts for s in JobHistory(pg).summarise(run_id)}
                 for run_id in ("run-1", "run-2", "run-3", "run-4")}
    for counts in (c for by_source in summaries.values() for c in by_source.values()):
        assert counts.unaccounted() == 0
    second = summaries["run-2"]
    # run 2 flags three stored records deleted: merge removes their rows, history closes their versions
    assert second["src_accounts"].deleted == len(FLAGGED) and second["src_prices"].deleted == len(FLAGGED)
    assert second["src_accounts"].updated == len(CHANGED) and second["src_prices"].updated == len(CHANGED)
    assert all(c.loaded == c.updated == c.deleted == 0 for c in summaries["run-4"].values())
    # drift: the fixture's records carry discountPercentage, and their labels color, which no column reads
    records, items = len(served(2)), sum(len(r["labels"]) for r in served(2))
    for summary in JobHistory(pg).summarise("run-2"):
        if summary.source != OTHER:
            assert summary.new_fields == (f"new field 'labels[].color' in {items} of {items} items",
                                          f"new field 'discountPercentage' in {records} of {records} records")
    status = source_status(pg, ["src_accounts"])
    assert status["src_accounts"]["last_run"]["new_fields"] == []  # run 5 read no record
    with pg, pg.cursor() as cur:
        cur.execute("SELECT run_id, outcome, deleted FROM replace_switches WHERE source = 'src_catalog_items'")
        switches = {run_id: (outcome, deleted) for run_id, outcome, deleted in cur.fetchall()}
        cur.execute("SELECT count(*) FROM lc_prices_current WHERE valid_to IS NOT NULL")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT (SELECT count(*) FROM lc_catalog_items_staged) + "
                    "(SELECT count(*) FROM lc_catalog_items_labels_staged)")
        assert cur.fetchone() == (0,)  # every run's staged rows are gone once it switched (or refused)
    gone_in_2 = len({r["sku"] for r in served(1)} - {r["sku"] for r in served(2)})
    assert switches["run-2"] == ("replaced", gone_in_2)
    assert switches["run-5"][0] == "refused"
    _check_deleted_shown(pg, gone_in_2)
    [broken] = [s for s in JobHistory(pg).summarise("run-5") if s.source == "src_catalog_items"]
    assert broken.switch is not None and "replaced nothing" in broken.switch.detail
    assert "1 failed" in broken.switch.detail


def _check_deleted_shown(pg: psycopg2.extensions.connection, gone_in_2: int) -> None:
    """The rows run 2's switch removed are ``deleted`` in its summary and in ``ingest status``, apart from
    the records' identity (``replace.deleted``); the labels gone with them are their dataset's ``deleted``."""
    document = summary_document("run-2", JobHistory(pg).summarise("run-2"), 1.0)
    mine = document["sources"]["src_catalog_items"]
    assert mine["replace"]["deleted"] == mine["deleted"] == gone_in_2
    assert mine["fetched"] == (mine["rejected"] + mine["duplicate"] + mine["loaded"] + mine["updated"]
                               + mine["deleted"] - mine["replace"]["deleted"])
    assert document["totals"]["deleted"] == gone_in_2 + 2 * len(FLAGGED)  # merge and history flagged 3 each
    items = [{(r["sku"], label["name"]) for r in served(revision) for label in r["labels"]} for revision in (1, 2)]
    assert mine["nested"]["lc_catalog_items_labels"]["deleted"] == len(items[0] - items[1])
    status = source_status(pg, ["src_catalog_items"])["src_catalog_items"]
    assert status["deleted"] == status["replace"]["deleted"] == gone_in_2  # run 3 served every row of run 2 again


def test_catalog_diff_prints_the_columns_to_add_the_ones_gone_and_type_disagreements(
    api: LifecycleApi, tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from ingest_workers.cli import main

    catalog = CATALOG.replace('is_deleted = "boolean"\n', 'is_deleted = "boolean"\nregion = "text"\n', 1)
    catalog = catalog.replace('price = "money"', 'price = "date"', 1)
    path = tmp_path / "catalog.toml"
    path.write_text((catalog + SOURCE.format(name="src_accounts", dataset="lc_accounts")).replace("URL", api.url),
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["--catalog", str(path), "catalog", "diff", "src_accounts"])
    assert result.exit_code == 0, result.output
    records = len(served(1))
    assert result.output.splitlines() == [
        "columns to add to [datasets.lc_accounts.columns] (fields no column reads):",
        'discount_percentage = "integer"  # and fields.discount_percentage = "discountPercentage" in the source',
        'labels = "json"',
        f"column 'price' is \"date\": {records} of {records} values served are not (e.g. 10); the draft would type "
        "it \"integer\"",
        "column 'region' (region): no record of the page has it (the API no longer serves it?)",
    ]


NESTED = {
    "lc_orders": {"table": "lc_orders", "key": ["order_id"], "write": "merge", "deleted_column": "is_deleted",
                  "columns": {"order_id": "text", "total": "integer", "is_deleted": "boolean"}},
    "lc_order_tags": {"table": "lc_order_tags", "nested_in": "lc_orders", "path": "tags",
                      "columns": {"value": "text"}},
}


def test_a_deleted_parent_takes_its_nested_rows_with_it(pg: psycopg2.extensions.connection) -> None:
    from ingest_workers.core.models import Lineage
    from ingest_workers.datasets import parse_dataset, resolve_nested
    from ingest_workers.load.loader import PostgresLoader

    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS lc_order_tags, lc_orders")
    datasets = resolve_nested({name: parse_dataset(name, entry) for name, entry in NESTED.items()})
    migrate(pg, datasets.values())
    orders, loader = datasets["lc_orders"], PostgresLoader(pg)
    lineage = Lineage("shop", "run-1", "job-1", "2026-03-01T00:00:00+00:00")

    def row(order_id: str, tags: list[str], deleted: bool = False) -> dict[str, Any]:
        raw = {"order_id": order_id, "total": 1, "deleted": deleted, "tags": tags}
        return {"order_id": order_id, "total": 1, "is_deleted": deleted, "source": "shop", "run_id": "run-1",
                "job_id": "job-1", "fetched_at": lineage.fetched_at, "raw": raw}

    def stored() -> tuple[set[str], set[tuple[str, str]]]:
        with pg, pg.cursor() as cur:
            cur.execute("SELECT order_id FROM lc_orders")
            parents = {order_id for (order_id,) in cur.fetchall()}
            cur.execute("SELECT order_id, value FROM lc_order_tags")
            return parents, set(cur.fetchall())

    first = loader.load_batch(orders, [row("a", ["x", "y"]), row("b", ["z"])], [], lineage)
    assert (first.inserted, first.deleted) == (2, 0)
    assert stored() == ({"a", "b"}, {("a", "x"), ("a", "y"), ("b", "z")})
    second = loader.load_batch(orders, [row("a", ["x", "y"], deleted=True), row("b", ["z"])], [], lineage)
    assert (second.inserted, second.updated, second.deleted, second.unchanged) == (0, 0, 1, 1)
    assert second.nested["lc_order_tags"]["deleted"] == 2
    assert stored() == ({"b"}, {("b", "z")})
    again = loader.load_batch(orders, [row("a", ["x", "y"], deleted=True)], [], lineage)  # deleted already
    assert (again.deleted, again.unchanged) == (0, 1)
    back = loader.load_batch(orders, [row("a", ["w"])], [], lineage)  # a deleted key that comes back
    assert back.inserted == 1 and stored() == ({"a", "b"}, {("a", "w"), ("b", "z")})


PRICED = {
    "lc_priced": {"table": "lc_priced", "key": ["sku"], "write": "history", "version_column": "updated_at",
                  "deleted_column": "is_deleted",
                  "columns": {"sku": "text", "price": "integer", "updated_at": "timestamp", "is_deleted": "boolean"}},
    "lc_priced_tags": {"table": "lc_priced_tags", "nested_in": "lc_priced", "path": "tags",
                       "columns": {"value": "text"}},
}


def test_a_history_dataset_keeps_its_nested_items_per_version(pg: psycopg2.extensions.connection) -> None:
    from ingest_workers.core.models import Lineage
    from ingest_workers.datasets import parse_dataset, resolve_nested
    from ingest_workers.load.loader import PostgresLoader

    with pg, pg.cursor() as cur:
        cur.execute("DROP VIEW IF EXISTS lc_priced_current")
        cur.execute("DROP TABLE IF EXISTS lc_priced_tags, lc_priced")
    datasets = resolve_nested({name: parse_dataset(name, entry) for name, entry in PRICED.items()})
    migrate(pg, datasets.values())
    priced, loader = datasets["lc_priced"], PostgresLoader(pg)
    lineage = Lineage("shop", "run-1", "job-1", "2026-03-01T00:00:00+00:00")

    def row(sku: str, price: int, day: int, tags: list[str], deleted: bool = False) -> dict[str, Any]:
        at = (T1 + timedelta(days=day)).isoformat()
        return {"sku": sku, "price": price, "updated_at": at, "is_deleted": deleted, "source": "shop",
                "run_id": "run-1", "job_id": "job-1", "fetched_at": lineage.fetched_at,
                "raw": {"sku": sku, "tags": tags}}

    def items() -> set[tuple[str, datetime, str]]:
        with pg, pg.cursor() as cur:
            cur.execute("SELECT sku, valid_from, value, xmin::text FROM lc_priced_tags")
            return {(sku, at, value) for sku, at, value, _ in cur.fetchall()}

    def day(n: int) -> datetime:
        return T1 + timedelta(days=n)

    assert loader.load_batch(priced, [row("a", 1, 0, ["x", "y"]), row("b", 5, 0, ["z"])], [], lineage).nested[
        "lc_priced_tags"]["loaded"] == 3
    second = loader.load_batch(priced, [row("a", 2, 1, ["x"]), row("b", 5, 0, ["z"])], [], lineage)
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    again = loader.load_batch(priced, [row("a", 2, 1, ["x"]), row("b", 5, 0, ["z"])], [], lineage)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)  # re-run: no version, no item
    deleted = loader.load_batch(priced, [row("b", 5, 2, ["z"], deleted=True)], [], lineage)
    assert deleted.deleted == 1
    assert items() == {("a", day(0), "x"), ("a", day(0), "y"), ("b", day(0), "z"), ("a", day(1), "x")}
    with pg, pg.cursor() as cur:
        cur.execute("SELECT sku, price, valid_from, valid_to FROM lc_priced ORDER BY sku, valid_from")
        assert cur.fetchall() == [("a", 1, day(0), day(1)), ("a", 2, day(1), None), ("b", 5, day(0), day(2))]


def test_migrate_refuses_switching_to_or_from_history_and_lets_the_others_switch(
    pg: psycopg2.extensions.connection,
) -> None:
    from ingest_workers.datasets import parse_dataset
    from ingest_workers.load.schema import SchemaRefused

    def declared(write: str) -> Any:
        return parse_dataset("lc_switch", {"key": ["sku"], "write": write, "columns": {"sku": "text", "n": "integer"}})

    with pg, pg.cursor() as cur:
        cur.execute("DROP VIEW IF EXISTS lc_switch_current")
        cur.execute("DROP TABLE IF EXISTS lc_switch, lc_switch_staged")
    migrate(pg, [declared("append")])
    assert migrate(pg, [declared("merge")]) == []
    migrate(pg, [declared("replace")])  # adds the run staging table, nothing else
    with pg, pg.cursor() as cur:
        cur.execute("SELECT to_regclass('lc_switch_staged') IS NOT NULL")
        assert cur.fetchone() == (True,)
    with pytest.raises(SchemaRefused, match='load the history into a new table \\(table = "lc_switch_history"\\)'):
        migrate(pg, [declared("history")])
    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE lc_switch, lc_switch_staged")
    migrate(pg, [declared("history")])
    with pytest.raises(SchemaRefused, match='declare write = "history" again'):
        migrate(pg, [declared("merge")])


def test_the_replace_switch_waits_for_every_job_and_happens_once(pg: psycopg2.extensions.connection) -> None:
    from ingest_workers.datasets import parse_dataset
    from ingest_workers.load.replace_switch import switch_if_complete

    dataset = parse_dataset("lc_once", {"key": ["sku"], "write": "replace", "columns": {"sku": "text"}})
    with pg, pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS lc_once, lc_once_staged")
    migrate(pg, [dataset])
    with pg, pg.cursor() as cur:
        cur.execute("DELETE FROM replace_switches WHERE source = 'shop'")
        cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status) VALUES ('j1', 'r1', 'shop', 'finished'), "
                    "('j2', 'r1', 'shop', 'started')")
        cur.execute("INSERT INTO lc_once_staged (sku, source, run_id, job_id, fetched_at, raw) VALUES "
                    "('a', 'shop', 'r1', 'j1', now(), '{}'), ('b', 'shop', 'r1', 'j2', now(), '{}')")

    def switch(finishing: str | None = None) -> Any:
        with pg, pg.cursor() as cur:
            return switch_if_complete(cur, dataset, "shop", "r1", finishing)

    assert switch() is None  # j2 has not ended
    done = switch(finishing="j2")  # j2 about to record finished: it is the last
    assert done is not None and (done.outcome, done.written) == ("replaced", 2)
    with pg, pg.cursor() as cur:
        cur.execute("UPDATE ingest_jobs SET status = 'finished' WHERE job_id = 'j2'")
    assert switch() is None and switch(finishing="j2") is None  # once only
    with pg, pg.cursor() as cur:
        cur.execute("SELECT sku FROM lc_once ORDER BY 1")
        assert cur.fetchall() == [("a",), ("b",)]
        cur.execute("SELECT count(*) FROM lc_once_staged")
        assert cur.fetchone() == (0,)


CARTS = {
    "lc_carts": {"table": "lc_carts", "key": ["cart_id"], "write": "replace",
                 "columns": {"cart_id": "text", "total": "integer"}},
    "lc_cart_lines": {"table": "lc_cart_lines", "nested_in": "lc_carts", "path": "lines", "key": ["line_id"],
                      "fields": {"line_id": "id"}, "columns": {"line_id": "integer", "qty": "integer"}},
    "lc_line_notes": {"table": "lc_line_notes", "nested_in": "lc_cart_lines", "path": "notes",
                      "columns": {"value": "text"}},
}


def test_a_replace_switch_replaces_the_nested_rows_at_every_depth_with_their_parents(
    pg: psycopg2.extensions.connection,
) -> None:
    from ingest_workers.core.models import Lineage
    from ingest_workers.datasets import parse_dataset, resolve_nested
    from ingest_workers.load.loader import PostgresLoader
    from ingest_workers.load.replace_switch import switch_if_complete

    tables = [*CARTS, *(f"{name}_staged" for name in CARTS)]
    with pg, pg.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        cur.execute("DELETE FROM replace_switches WHERE source IN ('shop', 'other')")
        cur.execute("DELETE FROM ingest_jobs WHERE run_id LIKE 'lc-carts-%'")
    carts = resolve_nested({name: parse_dataset(name, entry) for name, entry in CARTS.items()})
    migrate(pg, carts.values())
    loader = PostgresLoader(pg)

    def run(source: str, run_id: str, served: dict[str, dict[int, list[str]]], ends: str = "finished") -> Any:
        """Load ``served`` (cart -> line -> notes) as one job of ``source`` ending ``ends``, then its switch."""
        job_id = f"{run_id}-{source}"
        lineage = Lineage(source, run_id, job_id, "2026-03-01T00:00:00+00:00")
        with pg, pg.cursor() as cur:
            cur.execute("INSERT INTO ingest_jobs (job_id, run_id, source, status) VALUES (%s, %s, %s, 'started')",
                        (job_id, run_id, source))
        rows = [{"cart_id": cart, "total": len(lines), "source": source, "run_id": run_id, "job_id": job_id,
                 "fetched_at": lineage.fetched_at,
                 "raw": {"lines": [{"id": line, "qty": 1, "notes": notes} for line, notes in lines.items()]}}
                for cart, lines in served.items()]
        loader.load_batch(carts["lc_carts"], rows, [], lineage)
        assert stored(source) == expected(previous.get(source, {}))  # staged only: readers see the last set
        with pg, pg.cursor() as cur:
            if ends != "finished":
                cur.execute("UPDATE ingest_jobs SET status = %s WHERE job_id = %s", (ends, job_id))
            return switch_if_complete(cur, carts["lc_carts"], source, run_id, job_id if ends == "finished" else None)

    def stored(source: str) -> tuple[set[Any], ...]:
        with pg, pg.cursor() as cur:
            cur.execute("SELECT cart_id FROM lc_carts WHERE source = %s", (source,))
            found: list[set[Any]] = [set(cur.fetchall())]
            cur.execute("SELECT cart_id, line_id FROM lc_cart_lines WHERE source = %s", (source,))
            found.append(set(cur.fetchall()))
            cur.execute("SELECT cart_id, line_id, item_index, value FROM lc_line_notes WHERE source = %s", (source,))
            found.append(set(cur.fetchall()))
        return tuple(found)

    def expected(served: dict[str, dict[int, list[str]]]) -> tuple[set[Any], ...]:
        return ({(cart,) for cart in served}, {(cart, line) for cart, lines in served.items() for line in lines},
                {(cart, line, index, note) for cart, lines in served.items() for line, notes in lines.items()
                 for index, note in enumerate(notes)})

    previous: dict[str, dict[str, dict[int, list[str]]]] = {}
    other = {"a": {1: ["x"]}, "b": {1: ["y"]}}
    assert run("other", "lc-carts-0", other).outcome == "replaced"
    previous["other"] = other
    first = {"a": {1: ["x", "y"], 2: ["z"]}, "b": {1: ["w"]}}
    assert run("shop", "lc-carts-1", first).outcome == "replaced" and stored("shop") == expected(first)
    previous["shop"] = first
    second = {"a": {1: ["x", "v"]}}  # b withdrawn with its line and note; a's line 2 gone; a note changed
    done = run("shop", "lc-carts-2", second)
    assert done.outcome == "replaced" and stored("shop") == expected(second)
    # by key: a note whose value changed is updated, not gone
    gone = [len({row[:3] for row in before} - {row[:3] for row in after})
            for before, after in zip(expected(first), expected(second))]
    assert (done.deleted, done.nested) == (gone[0], {"lc_cart_lines": gone[1], "lc_line_notes": gone[2]})
    assert done.detail.endswith(f"1 new or changed; gone with them: {gone[1]} lc_cart_lines, {gone[2]} lc_line_notes")
    previous["shop"] = second
    refused = run("shop", "lc-carts-3", {"c": {1: ["q"]}}, ends="failed")
    assert refused.outcome == "refused" and stored("shop") == expected(second)
    assert stored("other") == expected(other)  # another source's rows, at every depth, untouched
    with pg, pg.cursor() as cur:
        cur.execute(" UNION ALL ".join(f"SELECT count(*) FROM {name}_staged" for name in CARTS))
        assert [count for (count,) in cur.fetchall()] == [0, 0, 0]  # switched or refused: nothing left staged
