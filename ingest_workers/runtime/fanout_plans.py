"""Child jobs the producer plans itself, without a parent job fetching anything:

- a child source named alone (``ingest enqueue --sources gh_issue_comments``) runs for every parent
  record its parent source already stored (the parent dataset's table, ``raw`` of the rows whose
  ``source`` is the parent), so children can be backfilled or read again without the parents;
- a source with ``partitions`` runs once per combination of their values, each combination a
  parent of its own (key: the combination as canonical JSON), so each keeps its own cursor.

Either way the parents go to the outbox (``load.outbox``) a batch per transaction, with their child
jobs planned in ``ingest_jobs``, and the jobs are relayed to Redis after each commit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg2.extensions
from psycopg2 import sql
from rq import Queue

from ..core.config import Settings
from ..core.connections import postgres_errors
from ..core.errors import ConfigError
from ..core.models import SourceSpec
from ..datasets import Dataset, dataset_of
from ..load.outbox import ChildJob, Parent, parent_key, partition_key, plan_children
from ..ops.history import JobHistory
from .producer import Enqueued, enqueue_run
from .relay import children_queue, relay

PARENTS_PER_READ = 1000  # stored parent records read (and planned) per transaction


def partitions_of(spec: SourceSpec) -> list[dict[str, Any]]:
    """Every combination of ``spec.partitions`` (``{"board": ["a", "b"]}`` -> ``[{"board": "a"}, ...]``),
    in the catalog's order."""
    names = list(spec.partitions)
    return [dict(zip(names, values)) for values in itertools.product(*(spec.partitions[n] for n in names))]


def plan_partitions(conn: psycopg2.extensions.connection, run_id: str, spec: SourceSpec,
                    queue: str) -> list[ChildJob]:
    """Write ``spec``'s partitions to the outbox as its parents and plan their jobs (one transaction)."""
    parents = [Parent(partition_key(values), values) for values in partitions_of(spec)]
    with postgres_errors(), conn, conn.cursor() as cur:
        return plan_children(cur, run_id, spec.to_dict(), queue, parents, None)


def plan_from_stored_parents(conn: psycopg2.extensions.connection, run_id: str, child: SourceSpec,
                             parent: SourceSpec, queue: str) -> Iterator[list[ChildJob]]:
    """Read the records ``parent`` stored, a batch at a time; per batch, write them to the outbox as
    ``child``'s parents and plan their jobs in one transaction; yield the jobs planned (to relay)."""
    dataset = dataset_of(parent.dataset, parent.declaration)
    last: tuple[Any, ...] | None = None
    while True:
        rows = _stored_records(conn, dataset, parent.name, last)
        if not rows:
            return
        last = tuple(rows[-1][:-1])
        parents = [Parent(parent_key(dataset.key, dict(zip(dataset.key, row[:-1]))), row[-1]) for row in rows]
        with postgres_errors(), conn, conn.cursor() as cur:
            yield plan_children(cur, run_id, child.to_dict(), queue, parents, None)


def _stored_records(conn: psycopg2.extensions.connection, dataset: Dataset, source: str,
                    after: tuple[Any, ...] | None) -> list[tuple[Any, ...]]:
    """The next ``PARENTS_PER_READ`` rows of ``source`` in ``dataset``'s table after the key ``after``:
    (key columns..., raw), in key order (keyset paging: no offset to skip through)."""
    key = sql.SQL(", ").join(sql.Identifier(column) for column in dataset.key)
    where = sql.SQL("source = %s")
    params: list[Any] = [source]
    if after is not None:
        where = sql.SQL("{} AND ({}) > ({})").format(where, key, sql.SQL(", ").join(sql.Placeholder() * len(after)))
        params += list(after)
    statement = sql.SQL("SELECT {key}, raw FROM {table} WHERE {where} ORDER BY {key} LIMIT %s").format(
        key=key, table=sql.Identifier(dataset.table), where=where)
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute(statement, [*params, PARENTS_PER_READ])
        return list(cur.fetchall())


def parent_of(child: SourceSpec, sources: Mapping[str, SourceSpec]) -> SourceSpec:
    """The catalog entry of ``child``'s parent source."""
    if child.parent is None or child.parent not in sources:
        raise ConfigError(f"source {child.name}: its parent {child.parent!r} is not a source of the catalog")
    return sources[child.parent]


def split_fan_out(specs: Sequence[SourceSpec], sources: Mapping[str, SourceSpec],
                  ) -> tuple[list[SourceSpec], list[SourceSpec], list[SourceSpec]]:
    """``specs`` as (sources run by a job of their own, partitioned sources, children named alone).
    A child whose parent (or an ancestor) is among ``specs`` runs through it, never twice."""
    names = {spec.name for spec in specs}
    plain = [spec for spec in specs if spec.parent is None and not spec.partitions]
    partitioned = [spec for spec in specs if spec.parent is None and spec.partitions]
    children = [spec for spec in specs if spec.parent is not None and not _ancestors(spec, sources) & names]
    return plain, partitioned, children


def _ancestors(spec: SourceSpec, sources: Mapping[str, SourceSpec]) -> set[str]:
    found: set[str] = set()
    parent = spec.parent
    while parent is not None and parent not in found and parent in sources:
        found.add(parent)
        parent = sources[parent].parent
    return found


def enqueue_with_fan_out(queue: Queue, settings: Settings, conn: psycopg2.extensions.connection,
                         specs: Sequence[SourceSpec], run_id: str, sources: Mapping[str, SourceSpec],
                         ) -> list[Enqueued]:
    """Enqueue a run of ``specs``: a job per plain source (``producer.enqueue_run``), the child jobs of
    each partitioned source, and those of each child source named alone (from its parent's stored
    records), listed in the run's job list (``conn``) before they go to Redis."""
    plain, partitioned, children = split_fan_out(specs, sources)
    enqueued = enqueue_run(queue, settings, plain, run_id, JobHistory(conn)) if plain else []
    for planned in plan_fan_out(conn, settings, run_id, partitioned, children, sources):
        enqueued += _relayed(queue, settings, run_id, planned)
    return enqueued


def plan_fan_out(conn: psycopg2.extensions.connection, settings: Settings, run_id: str,
                 partitioned: Sequence[SourceSpec], children: Sequence[SourceSpec],
                 sources: Mapping[str, SourceSpec]) -> Iterator[list[ChildJob]]:
    """Plan the child jobs of each partitioned source and of each child source named alone, a
    transaction at a time; yield the jobs planned (listed in ``ingest_jobs``, to relay or run inline)."""
    for spec in partitioned:
        yield plan_partitions(conn, run_id, spec, children_queue(spec.queue or settings.queue))
    for spec in children:
        yield from plan_from_stored_parents(conn, run_id, spec, parent_of(spec, sources),
                                            children_queue(spec.queue or settings.queue))


def _relayed(queue: Queue, settings: Settings, run_id: str, planned: Sequence[ChildJob]) -> list[Enqueued]:
    created = set(relay(queue.connection, settings, run_id, planned))
    return [Enqueued(job.source, job.job_id, job.job_id in created) for job in planned]
