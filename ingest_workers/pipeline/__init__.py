"""One fetch job, end to end: source -> stages -> dedup -> load, counting as it goes.

The modules name the steps:

- :mod:`.job`: the job's run and its outcome (history, metrics, the check that the counts add up).
- :mod:`.entry`: the job's catalog entry as this worker may run it (permissions, ``${VAR}``).
- :mod:`.tables`: the dataset's table checked against the declaration, once per process.
- :mod:`.clients`: the HTTP client with its guards, and PostgreSQL units that wait out an outage.
- :mod:`.stream`: the source read ahead, through the stages, in batches.
- :mod:`.resume`: where a job that runs again starts.
- :mod:`.batches`: one batch: dedup, load, account (:class:`BatchOutcome`).
- :mod:`.resources`: what the pipeline needs of its process (:class:`Resources`).

May import: ``ops``, ``load``, ``guards``, ``sources``, ``stages``, ``datasets``, ``core``.
"""

from __future__ import annotations

from .batches import BatchLoader, BatchOutcome
from .clients import breaker_policy, http_client, postgres_retry
from .entry import resolved
from .job import JobRun, lost_pages_reason, run_fetch_job
from .resources import Resources
from .stream import Tally, ingest

__all__ = ["BatchLoader", "BatchOutcome", "JobRun", "Resources", "Tally", "breaker_policy", "http_client", "ingest",
           "lost_pages_reason", "postgres_retry", "resolved", "run_fetch_job"]
