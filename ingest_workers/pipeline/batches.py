"""One batch at a time: drop what Redis knows as loaded, load the rest in one PostgreSQL
transaction (rows, rejections, the cursor's mark, the transactional sinks), then mark the committed
keys seen, publish the metrics and feed the other sinks. Each outcome is counted where it happens
(:class:`BatchOutcome`), so the job's counts can be checked against what it fetched."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..core.connections import redis_errors
from ..core.models import Counts, Lineage, LostPage, Record, Rejected
from ..datasets import Dataset
from ..load.copygen import copy_serialiser
from ..load.cursors import CursorStore, highest
from ..load.dedup import RedisDedup, fingerprint
from ..load.loader import LoadResult, PostgresLoader, SplitProgress
from ..load.pgretry import Connection, PostgresRetry
from ..load.sinks import Sink, TransactionalSink
from ..ops.metrics import LOAD_DURATION, LOAD_ROWS, RECORDS, MetricsRecorder
from ..stages.base import Item
from .resources import Resources

Fresh = list[tuple[dict[str, Any], str, str]]  # (row, key, fingerprint) of the records to load


@runtime_checkable
class BatchHook(Protocol):
    """Something that commits, or rolls back, with each batch (fan-out's outbox, a parent's done mark)."""

    def in_transaction(self, records: list[Record], covered: list[Record]) -> Callable[[Any], None] | None:
        """What to run on the cursor of the batch's last transaction, given the batch's valid ``records``
        and those a cursor may cover (before the job's first lost page); None: nothing."""

    def on_written(self, cur: Any, rows: list[dict[str, Any]]) -> None:
        """In each transaction that writes rows: the rows inserted or updated there."""

    def after_commit(self) -> None:
        """After the batch committed (hand on what it planned)."""


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one batch's items, each counted where it happened."""

    taken: int  # items the batch received (records, rejections and lost pages)
    rejected: int  # refused by a stage or by PostgreSQL, and the pages the source lost
    duplicate: int  # dropped by the dedup filter, or changed nothing in PostgreSQL (stored already)
    loaded: int  # new rows
    updated: int  # merge: stored rows a changed record replaced
    deleted: int = 0  # stored rows a record flagged deleted removed (history: closed)
    lost_pages: tuple[str, ...] = ()  # the reasons of the pages the source could not read
    # the items of nested datasets (dataset -> loaded, updated, deleted, rejected): apart from the records
    nested: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def to_counts(self, fetched: int) -> Counts:
        """The batch's counts, with ``fetched`` as counted where the records entered the pipeline."""
        counts = Counts(fetched=fetched, rejected=self.rejected, duplicate=self.duplicate, loaded=self.loaded,
                        updated=self.updated, deleted=self.deleted, lost_pages=list(self.lost_pages))
        counts.add_nested(self.nested)
        return counts


class BatchLoader:
    """Dedup, load and account for one batch at a time; advance the cursor and feed the
    sinks with the batch.

    The cursor covers only records before the job's first lost page (:class:`LostPage`):
    the mark stays before the gap, so the next run fetches the lost page again. A run read in
    windows (``marks_from_records`` false) moves the mark only to a window's end, given to
    :meth:`load` with the window's last batch.
    """

    def __init__(self, dataset: Dataset, lineage: Lineage, res: Resources, recorder: MetricsRecorder,
                 postgres: PostgresRetry, cursor_field: str | None = None, sinks: Sequence[Sink] = (),
                 marks_from_records: bool = True, hooks: Sequence[BatchHook] = ()) -> None:
        self._dataset = dataset
        self._lineage = lineage
        self._res = res
        self._recorder = recorder
        self._dedup = RedisDedup(res.redis, res.settings.dedup_ttl)
        self._postgres = postgres
        # The COPY text of the dataset's rows: generated from its column types, or the reference's
        self._serialise = copy_serialiser(dataset) if res.settings.record_path == "compiled" else None
        self._loader: PostgresLoader | None = None
        self._cursor_field = cursor_field
        self._marks_from_records = marks_from_records
        self._sinks_in_transaction = [s for s in sinks if isinstance(s, TransactionalSink)]
        self._sinks_after_commit = [s for s in sinks if not isinstance(s, TransactionalSink)]
        self._hooks = list(hooks)
        self.lost_pages: list[str] = []  # the reasons of the pages lost so far in this job
        self.first_lost_page: int | None = None  # page paging: the number of the job's first lost page

    def load(self, batch: list[Item], mark: Any = None) -> BatchOutcome:
        """Load one batch (see the module docstring); return what became of its items. ``mark``:
        where the cursor's mark moves in the batch's transaction (a window read whole), if further."""
        records = [item for item in batch if isinstance(item, Record)]
        rejected = [item for item in batch if isinstance(item, Rejected)]
        fresh, all_new = self._not_loaded(records)
        result = self._write([row for row, _, _ in fresh], rejected, all_new, records, self._covered_by_cursor(batch),
                             mark)
        self._account(records, rejected, fresh, result)
        for hook in self._hooks:
            hook.after_commit()
        for sink in self._sinks_after_commit:  # exactly the rows this batch inserted or updated
            sink.consume(iter(result.written))
        lost = [item for item in batch if isinstance(item, LostPage)]
        if lost and self.first_lost_page is None:
            self.first_lost_page = lost[0].page
        self.lost_pages.extend(item.reason for item in lost)
        return BatchOutcome(taken=len(batch), rejected=len(rejected) + len(result.refused),
                            duplicate=len(records) - len(fresh) + result.unchanged, loaded=result.inserted,
                            updated=result.updated, deleted=result.deleted,
                            lost_pages=tuple(item.reason for item in lost), nested=result.nested)

    def _write(self, rows: list[dict[str, Any]], rejected: list[Rejected], all_new: bool, records: list[Record],
               covered: list[Record], mark: Any = None) -> LoadResult:
        """One transaction (or the parts of a split one, kept across a replay after a lost connection)."""
        started, progress = time.monotonic(), SplitProgress()
        in_transaction = _chained([self._in_transaction(covered, mark),
                                   *(hook.in_transaction(records, covered) for hook in self._hooks)])
        result = self._postgres.run(
            lambda conn: self._loader_for(conn).load_batch(self._dataset, rows, rejected, self._lineage, in_transaction,
                                                           all_new, self._feed_transactional_sinks, progress))
        self._recorder.observe(LOAD_DURATION, time.monotonic() - started, self._lineage.source)
        self._recorder.observe(LOAD_ROWS, len(rows), self._lineage.source)
        return result

    def _account(self, records: list[Record], rejected: list[Rejected], fresh: Fresh, result: LoadResult) -> None:
        """Only now, after the commit: mark what PostgreSQL holds (inserted now or before), and
        publish the batch's metrics, in one Redis round trip."""
        source, inc = self._lineage.source, self._recorder.inc
        for item in (*rejected, *result.refused):
            inc(RECORDS, source, item.stage, "rejected")
        inc(RECORDS, source, "dedup", "duplicate", amount=len(records) - len(fresh))
        inc(RECORDS, source, "load", "duplicate", amount=result.unchanged)
        inc(RECORDS, source, "load", "loaded", amount=result.inserted)
        inc(RECORDS, source, "load", "updated", amount=result.updated)
        inc(RECORDS, source, "load", "deleted", amount=result.deleted)
        refused_payloads = {id(item.raw) for item in result.refused}
        committed = [(row, key, current) for row, key, current in fresh if id(row["raw"]) not in refused_payloads]
        with redis_errors():
            pipe = self._res.redis.pipeline(transaction=False)
            if self._dataset.compares_versions:  # in batch order: a repeated key keeps its last record's print
                self._dedup.remember(pipe, source, {key: current for _, key, current in committed}, self._dedup.ttl)
            elif self._dataset.write != "replace":  # replace: the next run stages every record again
                self._dedup.mark_seen(pipe, source, [key for _, key, _ in committed], self._dedup.ttl)
            self._recorder.flush_to(pipe)
            pipe.execute()

    def _covered_by_cursor(self, batch: list[Item]) -> list[Record]:
        """The batch's records the cursor's mark may cover: those before the job's first lost page."""
        if self.lost_pages:
            return []
        covered = []
        for item in batch:
            if isinstance(item, LostPage):
                break
            if isinstance(item, Record):
                covered.append(item)
        return covered

    def _not_loaded(self, records: list[Record]) -> tuple[Fresh, bool]:
        """The records Redis does not know as loaded (row, key, fingerprint), and whether none of
        their keys was ever loaded. Append: the key is enough. Merge, history: a changed record must
        get through, so what was loaded is compared (its fingerprint), not just the key."""
        source, dataset = self._lineage.source, self._dataset
        if dataset.write == "replace":  # every record of the run is staged: the run's rows are the new set
            return [(r.row, "", "") for r in records], False
        keys = [dataset.natural_key(record.row) for record in records]
        with redis_errors():
            if not dataset.compares_versions:
                unseen = self._dedup.unseen(source, keys)
                return [(r.row, key, "") for r, key, new in zip(records, keys, unseen) if new], False
            prints = [fingerprint(dataset, record.row) for record in records]
            known = self._dedup.remembered(source, keys)
        fresh = [(r.row, key, current) for r, key, current, remembered in zip(records, keys, prints, known)
                 if remembered != current]
        all_new = all(remembered is None for remembered, current in zip(known, prints) if remembered != current)
        return fresh, all_new

    def _loader_for(self, conn: Connection) -> PostgresLoader:
        if self._loader is None or self._loader.connection is not conn:
            # after a reconnect: new connection, new staging table
            self._loader = PostgresLoader(conn, self._serialise)
        return self._loader

    def _in_transaction(self, records: list[Record], mark: Any = None) -> Callable[[Any], None] | None:
        """What commits with the batch's last rows: the cursor's new mark (``mark``, or the highest
        among the batch's valid ``records`` it may cover, loaded now or before)."""
        if mark is None and self._cursor_field and self._marks_from_records:
            mark = highest(r.row.get(self._cursor_field) for r in records)
        if mark is None or self._cursor_field is None:
            return None
        field = self._cursor_field
        return lambda cur: CursorStore.advance(cur, field, mark, self._lineage)

    def _feed_transactional_sinks(self, cur: Any, inserted: list[dict[str, Any]]) -> None:
        """In each transaction that inserts rows: the transactional sinks get exactly those rows,
        so what they write commits, or rolls back, with them."""
        for sink in self._sinks_in_transaction:
            sink.consume(inserted)
        for hook in self._hooks:
            hook.on_written(cur, inserted)


def _chained(steps: Sequence[Callable[[Any], None] | None]) -> Callable[[Any], None] | None:
    """One ``in_transaction`` running each of ``steps`` (None ones left out) in order; None if none."""
    present = [step for step in steps if step is not None]
    if not present:
        return None

    def run_all(cur: Any) -> None:
        for step in present:
            step(cur)
    return run_all
