"""``ingest schedule``: the long-running scheduler (one line in the Procfile)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from ..runtime.producer import make_queue
from ..runtime.scheduler import SourceScheduler, run_schedule
from .app import App


@click.command()
@click.option("--sources", default="all", show_default=True, help="'all', or source names separated by commas.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between checks for due sources.")
@click.pass_obj
def schedule(app: App, sources: str, poll: float) -> None:
    """Enqueue each source every `interval_seconds`, or at its cron `schedule` (UTC), until stopped.

    Run as many as you like (for availability): together they enqueue each due source
    once, and never while its previous run is still in flight.
    """
    specs = app.catalog.select(sources)
    client = app.redis()
    scheduler = SourceScheduler(make_queue(client, app.settings), app.settings, specs,
                                sources=app.catalog.sources)
    app.postgres().close()  # jobs need the schema: wait for it (the Procfile's worker line applies it)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_schedule(scheduler, stop, poll)
