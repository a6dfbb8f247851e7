"""``ingest workers``: N plain ``rq worker`` processes under one supervisor (the Procfile's worker line)."""

from __future__ import annotations

import itertools
import logging
import os
import time

import click

from ..core.errors import ServiceUnavailable
from ..runtime.workerpool import PoolStop, redis_down, start_worker, supervise, worker_command, worker_name
from .app import App, EnvOption
from .db import check_tables

log = logging.getLogger(__name__)


@click.command()
@click.option("--count", type=click.IntRange(min=1), envvar="WORKERS", default=os.cpu_count() or 1, cls=EnvOption,
              show_default="cores", help="Worker processes. [env: WORKERS]")
@click.option("--worker-class", help="RQ worker class, e.g. ingest_workers.runtime.worker.IngestSimpleWorker "
              "(jobs in the worker process; default: the forking IngestWorker). Both run only this package's jobs.")
@click.option("--queues", envvar="WORKER_QUEUES", cls=EnvOption, help="Queues to work on, highest priority first, "
              "separated by commas (default: INGEST_QUEUE; add the catalog's per-source queues). [env: WORKER_QUEUES]")
@click.pass_obj
def workers(app: App, count: int, worker_class: str | None, queues: str | None) -> None:
    """Run COUNT `rq worker` processes until SIGTERM or SIGINT, restarting any that die
    (after a back-off that doubles, up to a minute, while a worker keeps dying at once).

    Each is exactly (its first log line shows it in full):

    \b
      rq worker --serializer json --with-scheduler --name HOST.PID.N
        --worker-class ingest_workers.runtime.worker.IngestWorker
        --queue-class ingest_workers.runtime.worker.IngestQueue
        --job-monitoring-interval 5 --maintenance-interval 10 --worker-ttl 25 QUEUES...

    its Redis URL in its environment (RQ_REDIS_URL), never its arguments. On SIGTERM they get
    RQ's warm shutdown (the job in hand finishes) for INGEST_STOP_GRACE seconds (default 1830,
    above the job timeout), then SIGKILL; a second SIGTERM or SIGINT kills them at once; give the
    container the same grace (compose's stop_grace_period). Nothing it started outlives it, even
    when it is killed itself. It first waits up to INGEST_SERVICE_WAIT seconds for Redis and the
    database schema; while Redis is down no worker is restarted into it, and after that wait
    the pool stops with exit status 1.
    """
    settings = app.settings
    names = [name.strip() for name in (queues or settings.queue).split(",") if name.strip()]
    app.redis().close()
    app.postgres().close()  # jobs on a database without the schema could only fail
    if app.optional_catalog is not None:
        check_tables(settings, list(app.optional_catalog.used_datasets().values()))
    stop = PoolStop(settings.stop_grace, log.warning)
    stop.install()
    log.info("starting %d x %s", count, " ".join(worker_command(settings, worker_name(0), worker_class, names)))
    # A new name for every start: RQ refuses a name whose dead owner is still registered.
    numbers = itertools.count()

    def on_exit(status: int | None, delay: float) -> None:
        log.warning("a worker exited with status %s; starting another in %.0fs", status, delay)

    down_since: list[float] = []  # when Redis was first found down, while it stays down

    def redis_answers() -> bool:
        reason = redis_down(settings)
        if reason is None:
            down_since.clear()
            return True
        down_since[:] = down_since or [time.monotonic()]
        if time.monotonic() - down_since[0] >= settings.service_wait:
            raise ServiceUnavailable(f"{reason} (waited {settings.service_wait:g}s); stopping the workers")
        return False

    supervise(lambda: start_worker(settings, next(numbers), app.env, None, worker_class, names), count,
              stop.requested.wait, time.monotonic, stop.stop, on_exit, can_start=redis_answers)
