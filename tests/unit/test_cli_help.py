"""`ingest workers --help` shows the command line it runs."""

from __future__ import annotations

from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import worker_command

# The command each worker runs, as the README and the help state it (the queues at the end).
COMMAND = ("rq worker --serializer json --with-scheduler --name HOST.PID.N"
           " --worker-class ingest_workers.runtime.worker.IngestWorker"
           " --queue-class ingest_workers.runtime.worker.IngestQueue"
           " --job-monitoring-interval 5 --maintenance-interval 10 --worker-ttl 25")


def test_workers_help_shows_the_command_line() -> None:
    shown = " ".join(CliRunner().invoke(main, ["workers", "--help"]).output.split())
    assert f"{COMMAND} QUEUES..." in shown


def test_the_pool_runs_the_command_line_the_help_shows() -> None:
    command = worker_command(Settings(queue="ingest"), "HOST.PID.N")
    assert command[1:3] == ["-m", "rq.cli"]  # `rq`, run by the pool's own interpreter
    assert " ".join(["rq", *command[3:]]) == f"{COMMAND} ingest"
