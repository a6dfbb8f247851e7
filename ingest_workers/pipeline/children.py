"""A child job: the child source read once per parent of its group, the parents taken from the
outbox (``fanout_parents``, PostgreSQL is the truth: nothing of them travels through Redis).

For each pending parent, in order: a source built with the parent's record (``SourceContext.parent``)
or the partition's values (``SourceContext.partition``), its records through the stages and the
batch loader. The transaction of the parent's last batch marks the parent done (a parent without
child records gets its mark in a transaction of its own), and each batch advances that parent's
own cursor, so a child job killed midway starts again at its first pending parent, and rows are
loaded exactly once like any rows. A parent whose requests fail permanently (a value missing from
the parent record, a status its ``on_status`` fails) is marked failed with the reason; the job goes
on with the next one and ends partial, naming those parents' keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from ..core.errors import PermanentError
from ..core.models import Counts, Lineage, Record, SourceSpec
from ..core.redact import redact
from ..datasets import dataset_of
from ..load.cursors import ParentCursors, highest
from ..load.outbox import DONE, FAILED, Parent, mark_parent, pending_parents
from ..load.sinks import SinkContext, make_sink
from ..ops.metrics import FANOUT_PARENTS
from ..sources import Source, SourceContext, make_source
from ..stages.base import compose
from ..stages.registry import source_stages
from .batches import BatchHook, BatchLoader
from .clients import http_client, postgres_retry
from .entry import resolved
from .fan_out import FanOut, Handoff
from .job import JobRun
from .resources import Resources
from .stream import SkippedSoFar
from .tables import check_table

log = logging.getLogger(__name__)


def run_child_job(spec: SourceSpec, run_id: str, job_id: str, queue: str, res: Resources,
                  runs_again: Callable[[BaseException], bool] = lambda error: False,
                  handoff: Handoff | None = None) -> Counts:
    """Run child job ``job_id`` of ``spec`` (see the module docstring); record it like a fetch job."""
    job = JobRun(spec, run_id, job_id, queue, res)
    return job.attempt("child source", lambda lineage: ChildRun(spec, lineage, res, job, handoff).run(),
                       runs_again)


class ChildRun:
    """One attempt of a child job over its pending parents."""

    def __init__(self, spec: SourceSpec, lineage: Lineage, res: Resources, job: JobRun,
                 handoff: Handoff | None) -> None:
        self.spec = resolved(spec, res)
        self.dataset = dataset_of(self.spec.dataset, self.spec.declaration)
        self.lineage, self.res, self.job = lineage, res, job
        self.postgres = postgres_retry(res)
        check_table(self.postgres, self.dataset, res)
        self.client = http_client(self.spec, res, job.recorder)
        self.fan_out = FanOut.of(self.spec, self.dataset, lineage, self.postgres, handoff)  # grandchildren
        self.sinks = [make_sink(entry, SinkContext(self.dataset, lineage, lambda: res.pg)) for entry in self.spec.sinks]

    def run(self) -> list[str]:
        """Each pending parent in order; return why parents failed (each naming its key)."""
        parents = self.postgres.run(lambda conn: pending_parents(conn, self.lineage.job_id))
        self.job.tally.continued = self._some_done_before()
        failures = []
        for parent in parents:
            try:
                self._one_parent(parent)
            except PermanentError as exc:  # this parent's requests cannot succeed; the others may
                reason = redact(f"parent {parent.key}: {type(exc).__name__}: {exc}")
                log.error("job %s: source %s: %s", self.lineage.job_id, self.spec.name, reason)
                self._end_parent(parent, FAILED, reason)
                failures.append(reason)
        return failures

    def _one_parent(self, parent: Parent) -> None:
        done = ParentDone(self.lineage, parent.key)
        hooks: list[BatchHook] = [done, *self.fan_out]
        if self.spec.cursor_field:
            hooks.append(ParentCursor(self.lineage, parent.key, self.spec.cursor_field))
        loader = BatchLoader(self.dataset, self.lineage, self.res, self.job.recorder, self.postgres, None,
                             self.sinks, hooks=hooks)
        context = self._context(parent)
        source = make_source(self.spec, context)
        skipped, counted = SkippedSoFar(source, self.job.recorder, self.spec.name), self.job.tally.fetched
        batches = self._batches(source, context)
        batch = next(batches, None)
        if batch is None:  # no child records (or its one request skipped): the parent is done all the same
            self.job.counts.add(Counts(fetched=self.job.tally.fetched - counted, skipped=skipped.new()))
            self._end_parent(parent, DONE)
            return
        while batch is not None:
            following = next(batches, None)  # read before loading: the last batch carries the done mark
            done.final = following is None
            self.job.counts.add(loader.load(batch).to_counts(0))
            batch = following
        # fetched once per parent: the batches are read one ahead of their loading
        self.job.counts.add(Counts(fetched=self.job.tally.fetched - counted, skipped=skipped.new()))
        self.job.recorder.inc(FANOUT_PARENTS, self.spec.name, DONE)

    def _batches(self, source: Source, context: SourceContext) -> Iterator[list[Any]]:
        items = compose(source_stages(self.spec, self.dataset, self.lineage, context.scope()),
                        self.job.tally.count(source.stream(), self.job.recorder, self.spec.name))
        while batch := list(islice(items, self.res.settings.batch_size)):
            self.job.tally.meter()  # flushed with the batch's own metrics
            yield batch

    def _context(self, parent: Parent) -> SourceContext:
        """The parent's record (or partition's values), and this parent's cursor for an incremental source."""
        since = None
        if self.spec.cursor_field:
            since = self.postgres.run(lambda conn: ParentCursors(conn).position(self.spec.name, parent.key))
        partitioned = bool(self.spec.partitions)
        return SourceContext(self.client, self.res.env, since=since,
                             fetch_concurrency=self.res.settings.fetch_concurrency,
                             parent=None if partitioned else parent.record,
                             partition=parent.record if partitioned else None)

    def _end_parent(self, parent: Parent, status: str, error: str | None = None) -> None:
        """A transaction of its own: the parent's mark (no child rows to commit it with)."""
        def write(conn: Any) -> None:
            with conn, conn.cursor() as cur:
                mark_parent(cur, self.lineage.run_id, self.spec.name, parent.key, status, error)
                count_parent(cur, self.lineage.job_id)
        self.postgres.run(write)
        self.job.recorder.inc(FANOUT_PARENTS, self.spec.name, status)

    def _some_done_before(self) -> bool:
        """Whether an earlier attempt of this job finished some of its parents (its counts then add up)."""
        def look(conn: Any) -> bool:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT EXISTS (SELECT 1 FROM fanout_parents WHERE job_id = %s AND status <> 'pending')",
                            (self.lineage.job_id,))
                return bool(cur.fetchone()[0])
        return bool(self.postgres.run(look))


def count_parent(cur: Any, job_id: str) -> None:
    """One more parent processed by ``job_id`` (``ingest_jobs.parents``), in the parent's transaction."""
    cur.execute("UPDATE ingest_jobs SET parents = parents + 1 WHERE job_id = %s", (job_id,))


class ParentDone:
    """A :class:`~.batches.BatchHook`: the parent's done mark, in its last batch's transaction."""

    def __init__(self, lineage: Lineage, parent_key: str) -> None:
        self._lineage, self._key = lineage, parent_key
        self.final = False  # set before the parent's last batch is loaded

    def in_transaction(self, records: list[Record], covered: list[Record]) -> Callable[[Any], None] | None:
        if not self.final:
            return None
        lineage, key = self._lineage, self._key

        def mark(cur: Any) -> None:
            mark_parent(cur, lineage.run_id, lineage.source, key, DONE)
            count_parent(cur, lineage.job_id)
        return mark

    def on_written(self, cur: Any, rows: list[dict[str, Any]]) -> None:
        return None

    def after_commit(self) -> None:
        return None


class ParentCursor:
    """A :class:`~.batches.BatchHook`: the child source's mark for this parent, with each batch's rows."""

    def __init__(self, lineage: Lineage, parent_key: str, field: str) -> None:
        self._lineage, self._key, self._field = lineage, parent_key, field

    def in_transaction(self, records: list[Record], covered: list[Record]) -> Callable[[Any], None] | None:
        mark = highest(record.row.get(self._field) for record in covered)
        if mark is None:
            return None
        return lambda cur: ParentCursors.advance(cur, self._key, self._field, mark, self._lineage)

    def on_written(self, cur: Any, rows: list[dict[str, Any]]) -> None:
        return None

    def after_commit(self) -> None:
        return None
