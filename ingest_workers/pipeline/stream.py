"""The job's stream: records flow lazily from the source through the stages and are loaded in
batches of ``settings.batch_size`` (:mod:`.batches`), while the source is read ahead in a thread.

An incremental run starts at the source's cursor and advances it with each batch; a backfill
``window`` reads only that window and leaves the cursor alone. A source that can resume at a page
starts where an earlier attempt of the same job left off (:mod:`.resume`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice

from ..core.models import Counts, Lineage, Record, Rejected, SourceSpec, Window
from ..datasets import dataset_of
from ..datasets.drift import FieldDrift, read_fields
from ..load.cursors import CursorStore
from ..load.pgretry import PostgresRetry
from ..load.sinks import SinkContext, make_sink
from ..ops.metrics import RECORDS, MetricsRecorder
from ..sources import FetchesAhead, SkipsRequests, SourceContext, make_source
from ..sources.prefetch import read_ahead
from ..stages.base import compose
from ..stages.registry import source_stages
from .batches import BatchLoader
from .clients import http_client, postgres_retry
from .entry import resolved
from .resources import Resources
from .resume import ResumePoint, with_resume_page
from .tables import check_table


@dataclass
class Tally:
    """What the job learns as it goes: the items taken from the source, counted as they enter the
    pipeline, and whether the job continued where an earlier attempt left off."""

    fetched: int = 0
    continued: bool = False
    drift: FieldDrift | None = None  # the records' fields no column reads

    def count(self, items: Iterable[object], recorder: MetricsRecorder, source: str) -> Iterator[object]:
        for item in items:
            self.fetched += 1
            if self.drift is not None:
                self.drift.observe(item)
            recorder.inc(RECORDS, source, "fetch", "fetched")
            yield item


def ingest(spec: SourceSpec, lineage: Lineage, res: Resources, recorder: MetricsRecorder,
           window: Window | None = None, tally: Tally | None = None) -> Iterator[Counts]:
    """Stream the source through the stages and load it batch by batch; yield each batch's counts
    (``fetched`` as counted at the source, the rest where each outcome happened)."""
    tally = tally if tally is not None else Tally()
    spec = resolved(spec, res)
    dataset = dataset_of(spec.dataset, spec.declaration)
    postgres = postgres_retry(res)
    check_table(postgres, dataset, res)
    cursor_field = spec.cursor_field if window is None else None
    context = _source_context(spec, res, recorder, postgres, window, cursor_field)
    source = make_source(spec, context)
    sinks = [make_sink(entry, SinkContext(dataset, lineage, lambda: res.pg)) for entry in spec.sinks]
    resume = ResumePoint.start(source, res, lineage, cursor_field)
    tally.continued = resume.continued
    tally.drift = FieldDrift(read_fields(dataset, spec.fields, spec.constants))
    # Read ahead in a thread, so the source's latency overlaps the work on what it served. The
    # thread runs pages ahead, so each record carries the page to resume at as of its reading.
    # A source that fetches its own pages ahead (concurrently, handed over in order) needs none.
    depth = 0 if isinstance(source, FetchesAhead) else res.settings.prefetch_pages
    stream = read_ahead(with_resume_page(source), depth, spec.page_size)
    raw = tally.count(resume.position.follow(stream), recorder, spec.name)
    # A source yields a Rejected itself for a page it could not read; stages pass it through.
    items = compose(source_stages(spec, dataset, lineage, context.scope()),
                    (r if isinstance(r, Rejected) else Record(r) for r in raw))
    skipped = SkippedSoFar(source)
    batch_loader = BatchLoader(dataset, lineage, res, recorder, postgres, cursor_field, sinks)
    counted = 0  # what the batches before this one took from the source
    with closing(stream):  # stops the read-ahead thread when a batch fails
        while batch := list(islice(items, res.settings.batch_size)):
            outcome = batch_loader.load(batch)
            resume.save(batch_loader.first_lost_page)
            fetched, counted = tally.fetched - counted, tally.fetched
            counts = outcome.to_counts(fetched)
            counts.skipped = skipped.new()
            yield counts
    if remaining := skipped.new():  # skipped after the last batch, or no batch at all (one 404)
        yield Counts(skipped=remaining)
    resume.clear()


class SkippedSoFar:
    """The requests the source skipped (``on_status``, :class:`SkipsRequests`) since the last
    call to :meth:`new`: requests, not records, so outside ``fetched``."""

    def __init__(self, source: object) -> None:
        self._source = source
        self._counted = 0

    def new(self) -> int:
        total = self._source.skipped if isinstance(self._source, SkipsRequests) else 0
        new, self._counted = total - self._counted, total
        return new


def _source_context(spec: SourceSpec, res: Resources, recorder: MetricsRecorder, postgres: PostgresRetry,
                    window: Window | None, cursor_field: str | None) -> SourceContext:
    """A window's bounds, or the source's cursor (an incremental run), and the HTTP client."""
    client = http_client(spec, res, recorder)
    if window is not None:
        return SourceContext(client, res.env, since=window.since, until=window.until,
                             fetch_concurrency=res.settings.fetch_concurrency)
    since = postgres.run(lambda conn: CursorStore(conn).position(spec.name)) if cursor_field else None
    return SourceContext(client, res.env, since=since, fetch_concurrency=res.settings.fetch_concurrency)

