"""``python -m ingest_workers`` is the ``ingest`` command."""

from .cli import main

main(prog_name="ingest")
