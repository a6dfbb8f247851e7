"""The ``ingest`` command: one module per group of subcommands, wired here."""

from .app import main
from .catalog import catalog
from .db import db
from .failed import failed
from .reconcile import runs_group
from .runs import demo, enqueue, run
from .schedule import schedule
from .servers import fixture_api, metrics_server, mock_sources
from .status import status
from .workers import workers

for command in (db, catalog, enqueue, run, runs_group, demo, workers, schedule, status, failed, mock_sources,
                fixture_api, metrics_server):
    main.add_command(command)

__all__ = ["main"]
