"""Where a job that runs again starts (resume bookkeeping).

A source that can resume at a page (:class:`~ingest_workers.sources.base.ResumableSource`) and has
no cursor starts where an earlier attempt of the same job left off: the page to resume at is saved
in Redis after each committed batch (:class:`~ingest_workers.guards.progress.JobProgress`) and
cleared when the job has read the whole source. A cursor is itself the resume point: page numbers
under a newer mark address other records, so a source with a cursor never resumes by page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ..core.connections import redis_errors
from ..core.models import Lineage
from ..guards.progress import JobProgress
from ..sources import ResumableSource, Source
from .resources import Resources

log = logging.getLogger(__name__)


def with_resume_page(source: Source) -> Iterator[tuple[object, int | None]]:
    """The source's records, each with the page it would resume at right after that record
    (None for a source that cannot resume)."""
    if not isinstance(source, ResumableSource):
        yield from ((record, None) for record in source.stream())
        return
    for record in source.stream():
        yield record, source.resume_page


class Position:
    """The resume page of the last record the job took (not of the page read ahead)."""

    resume_page: int | None = None

    def follow(self, pairs: Iterable[tuple[object, int | None]]) -> Iterator[object]:
        """The records of ``pairs``, noting each one's resume page as it is taken."""
        for record, resume_page in pairs:
            self.resume_page = resume_page
            yield record


class ResumePoint:
    """A job's saved resume page: read before the source starts, saved after each committed batch,
    cleared at the end. A source that cannot resume (or has a cursor) has none, and this does nothing."""

    def __init__(self, progress: JobProgress | None, position: Position) -> None:
        self._progress = progress
        self.position = position
        self.continued = False  # this attempt started where an earlier one left off (past page 1)

    @classmethod
    def start(cls, source: Source, res: Resources, lineage: Lineage, cursor_field: str | None) -> ResumePoint:
        """Start ``source`` at the job's saved page, if it can resume and has no cursor."""
        if not isinstance(source, ResumableSource) or cursor_field is not None:
            return cls(None, Position())
        point = cls(JobProgress(res.redis, lineage.job_id), Position())
        with redis_errors():
            start = point._progress.page() if point._progress is not None else 1
        if start > 1:
            log.info("job %s: resuming source %s at page %d", lineage.job_id, lineage.source, start)
            point.continued = True
        source.resume_from(start)
        return point

    def save(self, first_lost_page: int | None) -> None:
        """After a batch committed: the page of its last record, or the job's first lost page if that
        is earlier (a resume page past a lost page would skip it, like a cursor: it stops at the gap)."""
        if self._progress is None:
            return
        resume = self.position.resume_page
        if first_lost_page is not None and resume is not None:
            resume = min(resume, first_lost_page)
        if resume is not None:
            with redis_errors():
                self._progress.save(resume)

    def clear(self) -> None:
        """The job read the whole source: the next run starts at page 1."""
        if self._progress is not None:
            with redis_errors():
                self._progress.clear()
