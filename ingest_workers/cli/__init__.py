"""The ``ingest`` command: one module per group of subcommands, wired here."""

from .app import main
from .db import db
from .runs import demo, enqueue, run
from .schedule import schedule
from .servers import metrics_server, mock_sources
from .status import status

for command in (db, enqueue, run, demo, mock_sources, metrics_server):
    main.add_command(command)
main.add_command(status)
main.add_command(schedule)

__all__ = ["main"]
