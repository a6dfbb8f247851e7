"""The ``ingest`` command: one module per group of subcommands, wired here."""

from .app import main
from .db import db
from .failed import failed
from .runs import demo, enqueue, run
from .servers import metrics_server, mock_sources

for command in (db, enqueue, run, demo, mock_sources, metrics_server, failed):
    main.add_command(command)

__all__ = ["main"]
