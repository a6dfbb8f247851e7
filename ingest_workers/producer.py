"""Enqueue fetch jobs: one per source and run, with a deterministic job id.

Enqueueing the same run again creates no second job: each job id is claimed with
``SET NX`` first (atomic, so two producers racing are safe too), and the jobs of
a run go to Redis in one pipelined round trip.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Callback, Queue, Retry
from rq.serializers import JSONSerializer

from .config import Settings
from .errors import ConfigError
from .models import SourceSpec

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLAIM_PREFIX = "ingest:claimed:"
RETRY_INTERVALS = [5, 30, 120]  # seconds before RQ re-runs a job that failed transiently


@dataclass(frozen=True)
class Enqueued:
    source: str
    job_id: str
    created: bool  # False when this run already had the job


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC time to the second plus a random suffix (``20261121T235400Z-3fa2``)."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(f"--run-id {run_id!r}: use 1 to 64 letters, digits, '-' or '_'")
    return run_id


def job_id_for(run_id: str, source: str) -> str:
    return f"{run_id}-{source}"


def make_queue(client: redis.Redis, settings: Settings, is_async: bool = True) -> Queue:
    """The ingest queue, always with the JSON serializer (never pickle)."""
    return Queue(settings.queue, connection=client, serializer=JSONSerializer, is_async=is_async)


def enqueue_run(queue: Queue, settings: Settings, specs: Sequence[SourceSpec], run_id: str) -> list[Enqueued]:
    """Enqueue one fetch job per source of ``specs`` for ``run_id``; skip those already enqueued."""
    check_run_id(run_id)
    job_ids = [job_id_for(run_id, spec.name) for spec in specs]
    claim_ttl = settings.result_ttl + settings.job_timeout
    pipe = queue.connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.set(CLAIM_PREFIX + job_id, run_id, nx=True, ex=claim_ttl)
    claimed = pipe.execute()

    retry = Retry(max=settings.job_retries, interval=RETRY_INTERVALS) if settings.job_retries else None
    datas = [
        Queue.prepare_data(
            "ingest_workers.jobs.fetch_source",
            args=(spec.to_dict(), run_id),
            job_id=job_id,
            description=f"fetch {spec.name} (run {run_id})",  # RQ logs this; the args stay out of logs
            timeout=settings.job_timeout,
            result_ttl=settings.result_ttl,
            failure_ttl=settings.failure_ttl,
            retry=retry,
            on_failure=Callback("ingest_workers.jobs.on_failure"),
            meta={"source": spec.name, "run_id": run_id, "max_kills": settings.max_kills},
        )
        for spec, job_id, new in zip(specs, job_ids, claimed)
        if new
    ]
    if datas:
        queue.enqueue_many(datas)
    return [Enqueued(spec.name, job_id, bool(new)) for spec, job_id, new in zip(specs, job_ids, claimed)]
