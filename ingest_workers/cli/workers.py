"""``ingest workers``: N plain ``rq worker`` processes under one supervisor (the Procfile's worker line)."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading

import click

from ..runtime.workerpool import start_worker, stop_workers, worker_command, worker_name
from .app import App
from .db import check_tables

log = logging.getLogger(__name__)


@click.command()
@click.option("--count", type=click.IntRange(min=1), envvar="WORKERS", default=os.cpu_count() or 1,
              show_default="cores", help="Worker processes. [env: WORKERS]")
@click.option("--worker-class", help="RQ worker class, e.g. rq.worker.SimpleWorker (default: the forking Worker).")
@click.option("--queues", envvar="WORKER_QUEUES", help="Queues to work on, highest priority first, separated by "
              "commas (default: INGEST_QUEUE; add the catalog's per-source queues). [env: WORKER_QUEUES]")
@click.pass_obj
def workers(app: App, count: int, worker_class: str | None, queues: str | None) -> None:
    """Run COUNT `rq worker` processes until SIGTERM or SIGINT, restarting any that die.

    Each is exactly `rq worker --serializer json --with-scheduler --name HOST.PID.N
    --url $REDIS_URL QUEUE`; on SIGTERM they get RQ's warm shutdown (the job in
    hand finishes).
    """
    settings = app.settings
    if app.optional_catalog is not None:
        check_tables(settings, list(app.optional_catalog.used_datasets().values()))
    names = [name.strip() for name in (queues or settings.queue).split(",") if name.strip()]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("starting %d x %s", count, " ".join(worker_command(settings, worker_name(0), worker_class, names)))
    # A new name for every start: RQ refuses a name whose dead owner is still registered.
    numbers = itertools.count()
    processes = [start_worker(settings, next(numbers), app.env, None, worker_class, names) for _ in range(count)]
    try:
        while not stop.wait(1.0):
            for slot, process in enumerate(processes):
                if process.poll() is not None:
                    log.warning("a worker exited with status %s; starting another", process.returncode)
                    processes[slot] = start_worker(settings, next(numbers), app.env, None, worker_class, names)
    finally:
        stop_workers(processes)
