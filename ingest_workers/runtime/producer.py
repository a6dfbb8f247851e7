"""Enqueue fetch jobs: one per source and run, with a deterministic job id.

Enqueueing the same run again creates no second job: each job id is claimed, and
the claims and the jobs go to Redis in one ``MULTI``/``EXEC`` transaction under
``WATCH`` of the claim keys: a producer that dies before ``EXEC`` leaves neither
claims nor jobs (enqueueing again creates them), and two producers racing cannot
both claim an id (the second one's ``EXEC`` fails and it looks again).

A backfill splits ``[since, until)`` into windows, one job per source and window,
with ids made from the range and the window: enqueueing the same backfill again
creates no job, and a window job that runs twice loads nothing the second time.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from redis.exceptions import WatchError
from rq import Callback, Queue, Retry
from rq.queue import EnqueueData
from rq.serializers import JSONSerializer

from ..core.config import Settings
from ..core.errors import ConfigError
from ..core.models import SourceSpec, Window
from ..datasets import dataset_of
from ..ops import history
from ..sources.templates import request_values_in

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLAIM_PREFIX = "ingest:claimed:"
FETCH_FUNCTION = "ingest_workers.runtime.jobs.fetch_source"
CHILDREN_FUNCTION = "ingest_workers.runtime.jobs.fetch_children"  # a fan-out's child job (runtime.relay)
MAX_WINDOWS = 10_000  # per source: a typo in --window should not flood the queue


@dataclass(frozen=True)
class Enqueued:
    source: str
    job_id: str
    created: bool  # False when this run already had the job


@dataclass(frozen=True)
class PlannedJob:
    spec: SourceSpec
    job_id: str
    window: Window | None = None


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC time to the second plus 32 random bits (``20261121T235400Z-3fa2c01b``), so
    runs started in the same second stay apart (16 bits collided for about 2% of 50 ids in one second)."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(f"--run-id {run_id!r}: use 1 to 64 letters, digits, '-' or '_'")
    return run_id


def job_id_for(run_id: str, source: str) -> str:
    return f"{run_id}-{source}"


def make_queue(client: redis.Redis, settings: Settings, is_async: bool = True) -> Queue:
    """The ingest queue, always with the JSON serializer (never pickle)."""
    return Queue(settings.queue, connection=client, serializer=JSONSerializer, is_async=is_async)


def enqueue_run(queue: Queue, settings: Settings, specs: Sequence[SourceSpec], run_id: str,
                job_list: history.JobHistory | None = None) -> list[Enqueued]:
    """Enqueue one fetch job per source of ``specs`` for ``run_id``; skip those already enqueued.
    With ``job_list``, the jobs are first written to the run's list in PostgreSQL."""
    check_run_id(run_id)
    return enqueue_jobs(queue, settings, run_id, [PlannedJob(spec, job_id_for(run_id, spec.name)) for spec in specs],
                        job_list)


def backfill_run_id(since: datetime, until: datetime) -> str:
    """The same range always gives the same run id, so its jobs get the same ids."""
    return f"backfill-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}"


def split_windows(since: datetime, until: datetime, size: timedelta) -> list[Window]:
    """``[since, until)`` cut into windows of ``size`` (the last one shorter), in UTC."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise ConfigError("--until must be later than --since")
    if size <= timedelta(0):
        raise ConfigError("--window must be longer than 0")
    if (until - since) / size > MAX_WINDOWS:
        raise ConfigError(f"--since/--until/--window make more than {MAX_WINDOWS} windows; use a larger --window")
    windows, start = [], since
    while start < until:
        end = min(start + size, until)
        windows.append(Window(start.isoformat(), end.isoformat()))
        start = end
    return windows


def enqueue_backfill(queue: Queue, settings: Settings, specs: Sequence[SourceSpec], since: datetime,
                     until: datetime, size: timedelta, run_id: str | None = None,
                     job_list: history.JobHistory | None = None) -> tuple[str, list[Enqueued]]:
    """Enqueue one job per source and window of ``[since, until)``; return the run id and the jobs."""
    for spec in specs:
        check_windowable(spec)
    windows = split_windows(since, until, size)
    run_id = check_run_id(run_id) if run_id else backfill_run_id(_utc(since), _utc(until))
    plans = [PlannedJob(spec, f"{run_id}-{spec.name}-{datetime.fromisoformat(w.since):%Y%m%dT%H%M%SZ}", w)
             for spec in specs for w in windows]
    return run_id, enqueue_jobs(queue, settings, run_id, plans, job_list)


def check_windowable(spec: SourceSpec) -> None:
    """Raise :class:`ConfigError` unless ``spec`` can be backfilled by window (see :func:`not_windowable`)."""
    reason = not_windowable(spec)
    if reason:
        raise ConfigError(f"source {spec.name} cannot be backfilled by time: {reason}")


def not_windowable(spec: SourceSpec) -> str | None:
    """Why ``spec`` cannot be backfilled by window, or None: it can when its cursor is its
    dataset's time and it can ask its source for a time range."""
    dataset = dataset_of(spec.dataset, spec.declaration)
    if dataset.write == "replace":  # a window holds part of the source: replacing with it would delete the rest
        return (f"its dataset {dataset.name} is write = \"replace\", and a window's rows cannot replace the whole "
                "source's rows (run it whole with ingest run, or declare write = \"merge\")")
    time_field = dataset.time_column
    if not time_field or spec.cursor_field != time_field:
        return f"its cursor_field is not {time_field or 'a time'}"
    if spec.kind == "csv":
        return "a CSV file cannot be asked for a range"
    placed = request_values_in(spec)
    if spec.kind == "http_json" and not ((spec.since_param or "since" in placed)
                                         and (spec.until_param or "until" in placed)):
        return "it needs since_param and until_param (or {since} and {until} in its request)"
    return None


def enqueue_jobs(queue: Queue, settings: Settings, run_id: str, plans: Sequence[PlannedJob],
                 job_list: history.JobHistory | None = None) -> list[Enqueued]:
    """Claim each job id not claimed yet and enqueue its job (on ``queue``, or the source's own
    ``queue`` from the catalog), claims and jobs in one transaction: both or neither. With
    ``job_list``, the run's jobs are written to PostgreSQL first, so a job Redis loses can be
    enqueued again (runtime.reconcile)."""
    if job_list is not None:
        job_list.planned(run_id, [history.PlannedJob(plan.job_id, plan.spec.name, plan.spec.queue or queue.name,
                                                     job_args(plan, run_id)) for plan in plans])
    if not queue.is_async:  # inline runs execute each job as it is enqueued: nothing to make atomic
        return _claim_then_run_inline(queue, settings, run_id, plans)
    retry_intervals(settings)  # a bad setting fails before anything is claimed
    keys = [CLAIM_PREFIX + plan.job_id for plan in plans]
    with queue.connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*keys)
                taken = pipe.mget(keys)
                new = [plan for plan, owner in zip(plans, taken) if owner is None]
                pipe.multi()
                for plan in new:
                    pipe.set(CLAIM_PREFIX + plan.job_id, run_id, ex=settings.result_ttl + settings.job_timeout)
                _enqueue_prepared(queue, plans, prepare_jobs(settings, run_id, new), pipe)
                pipe.execute()
                break
            except WatchError:  # another producer claimed one of these ids meanwhile: look again
                continue
    created = {plan.job_id for plan in new}
    return [Enqueued(plan.spec.name, plan.job_id, plan.job_id in created) for plan in plans]


def _claim_then_run_inline(queue: Queue, settings: Settings, run_id: str,
                           plans: Sequence[PlannedJob]) -> list[Enqueued]:
    enqueued, datas = claim_jobs(queue, settings, run_id, plans)
    _enqueue_prepared(queue, plans, datas, None)
    return enqueued


def claim_jobs(queue: Queue, settings: Settings, run_id: str,
               plans: Sequence[PlannedJob]) -> tuple[list[Enqueued], list[EnqueueData]]:
    """Claim each job id (``SET NX``) and prepare the jobs claimed now, without enqueueing them
    (for inline runs, which run each job as they enqueue it)."""
    retry_intervals(settings)  # a bad setting fails before anything is claimed
    claimed = claim_ids(queue.connection, settings, run_id, [plan.job_id for plan in plans])
    new = [plan for plan, ok in zip(plans, claimed) if ok]
    return ([Enqueued(plan.spec.name, plan.job_id, bool(ok)) for plan, ok in zip(plans, claimed)],
            prepare_jobs(settings, run_id, new))


def claim_ids(connection: redis.Redis, settings: Settings, run_id: str, job_ids: Sequence[str]) -> list[bool]:
    """Claim each of ``job_ids`` for ``run_id`` (``SET NX``); whether each was claimed now."""
    pipe = connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.set(CLAIM_PREFIX + job_id, run_id, nx=True, ex=settings.result_ttl + settings.job_timeout)
    return [bool(ok) for ok in pipe.execute()]


def _enqueue_prepared(queue: Queue, plans: Sequence[PlannedJob], datas: Sequence[EnqueueData],
                      pipe: redis.client.Pipeline | None) -> None:
    queue_of = {plan.job_id: plan.spec.queue or queue.name for plan in plans}
    by_queue: dict[str, list[EnqueueData]] = {}
    for data in datas:
        by_queue.setdefault(queue_of[data.job_id], []).append(data)
    for name, queued in by_queue.items():
        target = queue if name == queue.name else Queue(name, connection=queue.connection, serializer=queue.serializer,
                                                        is_async=queue.is_async)
        target.enqueue_many(queued, pipeline=pipe)


def prepare_jobs(settings: Settings, run_id: str, plans: Sequence[PlannedJob]) -> list[EnqueueData]:
    """The RQ jobs of ``plans``, ready for ``enqueue_many``."""
    return [job_data(settings, plan.job_id, plan.spec.name, run_id, job_args(plan, run_id)) for plan in plans]


def job_args(plan: PlannedJob, run_id: str) -> list[Any]:
    """``fetch_source``'s arguments for ``plan`` (JSON: they are stored in Redis and PostgreSQL)."""
    return [plan.spec.to_dict(), run_id, *([plan.window.to_list()] if plan.window else [])]


def job_data(settings: Settings, job_id: str, source: str, run_id: str, args: Sequence[Any]) -> EnqueueData:
    """The fetch job ``job_id`` of ``source`` in ``run_id``, ready for ``enqueue_many``."""
    retry = Retry(max=settings.job_retries, interval=retry_intervals(settings)) if settings.job_retries else None
    children = is_child_job(args)
    window = f", window {args[2][0]} to {args[2][1]}" if len(args) > 2 and not children else ""
    return Queue.prepare_data(
        CHILDREN_FUNCTION if children else FETCH_FUNCTION,
        args=tuple(args),
        job_id=job_id,
        description=f"fetch {source}{' for its parents' if children else ''} (run {run_id}{window})",
        timeout=settings.job_timeout,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        retry=retry,
        on_failure=Callback("ingest_workers.runtime.jobs.on_failure"),
        meta={"source": source, "run_id": run_id, "max_kills": settings.max_kills},
    )


def is_child_job(args: Sequence[Any]) -> bool:
    """True for a child job's arguments (``[spec, run_id, {"parent_job": ...}]``, see ``load.outbox``)."""
    return len(args) > 2 and isinstance(args[2], dict)


def retry_intervals(settings: Settings) -> list[int]:
    """Seconds before RQ re-runs a job that failed transiently, from ``job_retry_intervals`` ("5,30,120")."""
    try:
        intervals = [int(part) for part in settings.job_retry_intervals.split(",")]
    except ValueError:
        intervals = []
    if not intervals or min(intervals) < 0:
        raise ConfigError(f"job_retry_intervals: expected whole seconds separated by commas, such as 5,30,120; "
                          f"got {settings.job_retry_intervals!r}")
    return intervals


def queues_of(settings: Settings, specs: Sequence[SourceSpec]) -> list[str]:
    """The queues jobs of ``specs`` go to: the settings' queue, then the sources' own."""
    return list(dict.fromkeys([settings.queue, *(spec.queue for spec in specs if spec.queue)]))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
