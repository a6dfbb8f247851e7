"""The job's stream: records flow lazily from the source through the stages and are loaded in
batches of ``settings.batch_size`` (:mod:`.batches`), while the source is read ahead in a thread.

An incremental run starts at the source's cursor and advances it with each batch (or window by
window: :mod:`.windows`); a backfill ``window`` reads only that window and leaves the cursor alone.
A source that can resume at a page starts where an earlier attempt of the same job left off (:mod:`.resume`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from ..core.models import Counts, Lineage, LostPage, Record, Rejected, SourceSpec, Window
from ..datasets import Dataset, dataset_of
from ..datasets.drift import FieldDrift, read_fields
from ..load.cursors import CursorStore
from ..load.sinks import SinkContext, make_sink
from ..ops.metrics import RECORDS, REQUESTS_SKIPPED, MetricsRecorder
from ..sources import FetchesAhead, RangedSource, SkipsRequests, Source, SourceContext, make_source
from ..sources.prefetch import read_ahead
from ..stages.base import Item, compose
from ..stages.registry import source_stages
from .batches import BatchLoader
from .clients import http_client, postgres_retry
from .entry import resolved
from .fan_out import FanOut, Handoff
from .resources import Resources
from .resume import ResumePoint, with_resume_page
from .tables import check_table
from .windows import Part, ReadPlan

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What the job learns as it goes: the items taken from the source, counted as they enter the
    pipeline, and whether the job continued where an earlier attempt left off."""

    fetched: int = 0
    continued: bool = False
    drift: FieldDrift | None = None  # the records' fields no column reads
    _metered: int = field(default=0, init=False)  # of ``fetched``, those added to the metric so far
    _metric: tuple[MetricsRecorder, str] | None = field(default=None, init=False)  # recorder, source of :meth:`meter`

    def count(self, items: Iterable[object], recorder: MetricsRecorder, source: str) -> Iterator[Item]:
        """``items`` counted as each is taken, as the stages take them: a record, or a :class:`Rejected`
        the source made itself (a page it could not read). The fetched metric is added by :meth:`meter`
        (before each batch is loaded and when the job ends: before every flush of the recorder)."""
        self._metric = (recorder, source)
        drift = self.drift
        try:
            for item in items:
                self.fetched += 1
                if drift is not None:
                    drift.observe(item)
                yield item if isinstance(item, Rejected) else Record(item)
        finally:
            self.meter()

    def meter(self) -> None:
        """Add the items taken since the last call to the fetched metric."""
        if self._metric is not None and self.fetched != self._metered:
            recorder, source = self._metric
            recorder.inc(RECORDS, source, "fetch", "fetched", amount=self.fetched - self._metered)
            self._metered = self.fetched


def ingest(spec: SourceSpec, lineage: Lineage, res: Resources, recorder: MetricsRecorder,
           window: Window | None = None, tally: Tally | None = None, handoff: Handoff | None = None,
           ) -> Iterator[Counts]:
    """Stream the source through the stages and load it batch by batch, part by part of its read
    plan (:mod:`.windows`); yield each batch's counts (``fetched`` as counted at the source, the rest
    where each outcome happened). A source with child sources hands their parents on through
    ``handoff`` (:mod:`.fan_out`)."""
    spec = resolved(spec, res)
    dataset = dataset_of(spec.dataset, spec.declaration)
    postgres = postgres_retry(res)
    check_table(postgres, dataset, res)
    cursor_field = spec.cursor_field if window is None else None
    mark = postgres.run(lambda conn: CursorStore(conn).position(spec.name)) if cursor_field else None
    plan = ReadPlan(spec, mark, window, datetime.now(UTC))
    sinks = [make_sink(entry, SinkContext(dataset, lineage, lambda: res.pg)) for entry in spec.sinks]
    tally = tally if tally is not None else Tally()
    tally.drift = FieldDrift(read_fields(dataset, spec.fields, spec.constants), dataset)
    run = _Run(spec, dataset, lineage, res, recorder, tally,
               BatchLoader(dataset, lineage, res, recorder, postgres, cursor_field, sinks,
                           marks_from_records=plan.marks_from_records,
                           hooks=FanOut.of(spec, dataset, lineage, postgres, handoff)),
               cursor_field if plan.single else "windows")  # page numbers of one window mean nothing in the next
    for part in plan.parts():
        capped = yield from run.read(part, plan)
        if cursor_field and run.loader.lost_pages:
            return  # the mark stays before the gap: the next run reads this window again
        if capped and not plan.cut(part):
            log.warning("source %s: the window %s to %s is capped and cannot be cut further", spec.name,
                        part.since, part.until)


@dataclass
class _Run:
    """What every part of one job's read plan shares: the batch loader keeps the job's lost pages."""

    spec: SourceSpec
    dataset: Dataset
    lineage: Lineage
    res: Resources
    recorder: MetricsRecorder
    tally: Tally
    loader: BatchLoader
    no_page_resume: str | None  # set: the source never starts at a saved page (a cursor or windows)
    reader: _Reader | None = None  # the last part's source: a RangedSource reads the next part too

    def read(self, part: Part, plan: ReadPlan) -> Generator[Counts, None, bool]:
        """Read one part and load it batch by batch; return whether the API capped it (a window
        that served ``max_records_per_window`` records). A part read whole moves the mark to
        ``part.mark`` in its last batch's transaction."""
        spec, res, tally = self.spec, self.res, self.tally
        reader = self._reader_for(part)
        resume = ResumePoint.start(reader.source, res, self.lineage, self.no_page_resume)
        tally.continued = tally.continued or resume.continued
        # Read ahead in a thread, so the source's latency overlaps the work on what it served. The
        # thread runs pages ahead, so each record carries the page to resume at as of its reading.
        # A source that fetches its own pages ahead (concurrently, handed over in order) needs none.
        depth = 0 if isinstance(reader.source, FetchesAhead) else res.settings.prefetch_pages
        pairs = with_resume_page(reader.source)
        stream = read_ahead(pairs, depth, spec.page_size) if depth else pairs
        started = tally.fetched  # what the parts before this one took
        # A source yields a Rejected itself for a page it could not read; stages pass it through.
        # INGEST_RECORD_PATH=compiled: map, checks and lineage as code generated for the dataset (same items)
        compiled = res.settings.record_path == "compiled"
        items = compose(source_stages(spec, self.dataset, self.lineage, reader.context.scope(), compiled),
                        tally.count(resume.position.follow(stream), self.recorder, spec.name))
        with closing(stream):  # stops the read-ahead thread when a batch fails
            capped = yield from self._load(items, part, plan, resume, reader.skipped, started)
        if remaining := reader.skipped.new():  # skipped after the last batch, or no batch at all (one 404)
            yield Counts(skipped=remaining)
        resume.clear()
        return capped

    def _load(self, items: Iterator[Item], part: Part, plan: ReadPlan, resume: ResumePoint,
              skipped: SkippedSoFar, started: int) -> Generator[Counts, None, bool]:
        """The part's items loaded batch by batch; the last batch of a part read whole moves the mark."""
        loader, tally, counted, capped = self.loader, self.tally, started, False
        for batch, last in _batches(items, self.res.settings.batch_size, plan.windowed):
            mark = None
            if last:  # the source is read: the whole part is counted
                capped = plan.capped(tally.fetched - started)
                whole = not capped and not loader.lost_pages and not any(isinstance(i, LostPage) for i in batch)
                mark = part.mark if whole else None
            tally.meter()  # flushed with the batch's own metrics
            outcome = loader.load(batch, mark)
            resume.save(loader.first_lost_page)
            fetched, counted = tally.fetched - counted, tally.fetched
            counts = outcome.to_counts(fetched)
            counts.skipped = skipped.new()
            yield counts
        return capped

    def _reader_for(self, part: Part) -> _Reader:
        """The source pointed at ``part``: the same one as before when it can read another range
        (it keeps its credentials for the job), else a new one."""
        if self.reader is not None and isinstance(self.reader.source, RangedSource):
            self.reader.source.read_range(part.since, part.until)
            return self.reader
        context = _source_context(self.spec, self.res, self.recorder, part)
        source = make_source(self.spec, context)
        self.reader = _Reader(source, context, SkippedSoFar(source, self.recorder, self.spec.name))
        return self.reader


@dataclass(frozen=True)
class _Reader:
    """A source, the context it was built with (its scope: parent, partition) and its skipped requests."""

    source: Source
    context: SourceContext
    skipped: SkippedSoFar


class SkippedSoFar:
    """The requests the source skipped (``on_status``, :class:`SkipsRequests`) since the last
    call to :meth:`new`: requests, not records, so outside ``fetched``; counted in the metrics too
    (``ingest_requests_skipped``, by source)."""

    def __init__(self, source: object, recorder: MetricsRecorder, name: str) -> None:
        self._source, self._recorder, self._name = source, recorder, name
        self._counted = 0

    def new(self) -> int:
        total = self._source.skipped if isinstance(self._source, SkipsRequests) else 0
        new, self._counted = total - self._counted, total
        if new:
            self._recorder.inc(REQUESTS_SKIPPED, self._name, amount=new)
        return new


def _batches(items: Iterator[Item], size: int, windowed: bool) -> Iterator[tuple[list[Item], bool]]:
    """``items`` in batches of ``size``. ``windowed``: each with whether it is the last (found by
    reading the next one first), and an empty one for no items (an empty window still moves the
    mark). Otherwise never marked last: a saved resume page must not run ahead of the batch loaded."""
    if not windowed:
        while batch := list(islice(items, size)):
            yield batch, False
        return
    batch = list(islice(items, size))
    while True:
        following = list(islice(items, size)) if batch else []
        yield batch, not following
        if not following:
            return
        batch = following


def _source_context(spec: SourceSpec, res: Resources, recorder: MetricsRecorder, part: Part) -> SourceContext:
    """The part's bounds (a window's, or the mark) and the HTTP client."""
    return SourceContext(http_client(spec, res, recorder), res.env, since=part.since, until=part.until,
                         fetch_concurrency=res.settings.fetch_concurrency)
