"""The pipeline's writes to the job history (:class:`~.history.JobHistory`), each one a unit of
:class:`~ingest_workers.load.pgretry.PostgresRetry`, so they ride out a PostgreSQL outage."""

from __future__ import annotations

from ..core.models import Counts
from ..datasets import Dataset
from ..load.pgretry import PostgresRetry
from .history import JobHistory


class HistoryWriter:
    """:class:`JobHistory` writes that survive a PostgreSQL outage."""

    def __init__(self, postgres: PostgresRetry) -> None:
        self._postgres = postgres

    def started(self, job_id: str, run_id: str, source: str) -> None:
        self._postgres.run(lambda conn: JobHistory(conn).started(job_id, run_id, source))

    def ended(self, job_id: str, status: str, counts: Counts, error: str | None = None,
              continued: bool = False) -> None:
        """See :meth:`JobHistory.ended`."""
        self._postgres.run(lambda conn: JobHistory(conn).ended(job_id, status, counts, error, continued))

    def finished(self, job_id: str, counts: Counts, continued: bool = False) -> None:
        self.ended(job_id, "finished", counts, None, continued)

    def failed(self, job_id: str, counts: Counts, error: str, continued: bool = False) -> None:
        self.ended(job_id, "failed", counts, error, continued)

    def partial(self, job_id: str, counts: Counts, reason: str, continued: bool = False) -> None:
        self.ended(job_id, "partial", counts, reason, continued)

    def record_stats(self, job_id: str, dataset: Dataset, source: str, run_id: str) -> None:
        """The column statistics of the rows this job loaded, for a dataset with ``stats``."""
        if dataset.stats_columns:
            self._postgres.run(lambda conn: JobHistory(conn).record_stats(job_id, dataset.table, source, run_id,
                                                                          dataset.stats_columns))
