"""``ingest workers``: N plain ``rq worker`` processes under one supervisor (the Procfile's worker line)."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time

import click

from ..runtime.workerpool import redis_down, start_worker, stop_workers, worker_command, worker_name
from .app import App, EnvOption
from .db import check_tables

log = logging.getLogger(__name__)


@click.command()
@click.option("--count", type=click.IntRange(min=1), envvar="WORKERS", default=os.cpu_count() or 1, cls=EnvOption,
              show_default="cores", help="Worker processes. [env: WORKERS]")
@click.option("--worker-class", help="RQ worker class, e.g. rq.worker.SimpleWorker (default: the forking Worker).")
@click.option("--queues", envvar="WORKER_QUEUES", cls=EnvOption, help="Queues to work on, highest priority first, "
              "separated by commas (default: INGEST_QUEUE; add the catalog's per-source queues). [env: WORKER_QUEUES]")
@click.pass_obj
def workers(app: App, count: int, worker_class: str | None, queues: str | None) -> None:
    """Run COUNT `rq worker` processes until SIGTERM or SIGINT, restarting any that die.

    Each is exactly (its first log line shows it in full):

    \b
      rq worker --serializer json --with-scheduler --name HOST.PID.N --url $REDIS_URL
        --worker-class ingest_workers.runtime.worker.IngestWorker
        --queue-class ingest_workers.runtime.worker.IngestQueue
        --job-monitoring-interval 5 --maintenance-interval 10 --worker-ttl 25 QUEUES...

    On SIGTERM they get RQ's warm shutdown (the job in hand finishes). It first waits up to
    INGEST_SERVICE_WAIT seconds for Redis and the database schema; while Redis is down no worker
    is restarted into it, and after that wait the pool stops with exit status 1.
    """
    settings = app.settings
    names = [name.strip() for name in (queues or settings.queue).split(",") if name.strip()]
    app.redis().close()
    app.postgres().close()  # jobs on a database without the schema could only fail
    if app.optional_catalog is not None:
        check_tables(settings, list(app.optional_catalog.used_datasets().values()))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("starting %d x %s", count, " ".join(worker_command(settings, worker_name(0), worker_class, names)))
    # A new name for every start: RQ refuses a name whose dead owner is still registered.
    numbers = itertools.count()
    processes = [start_worker(settings, next(numbers), app.env, None, worker_class, names) for _ in range(count)]
    down_since: float | None = None
    try:
        while not stop.wait(1.0):
            exited = [slot for slot, process in enumerate(processes) if process.poll() is not None]
            if not exited:
                continue
            reason = redis_down(settings)
            if reason is not None:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= settings.service_wait:
                    click.secho(f"error: {reason} (waited {settings.service_wait:g}s); stopping the workers",
                                fg="red", err=True)
                    sys.exit(1)
                continue
            down_since = None
            for slot in exited:
                log.warning("a worker exited with status %s; starting another", processes[slot].returncode)
                processes[slot] = start_worker(settings, next(numbers), app.env, None, worker_class, names)
    finally:
        stop_workers(processes)
