"""`ingest workers --help` shows the command line it runs."""

from __future__ import annotations

from click.testing import CliRunner

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import worker_command


def test_workers_help_shows_every_flag_of_the_command_it_runs() -> None:
    shown = " ".join(CliRunner().invoke(main, ["workers", "--help"]).output.split())
    command = worker_command(Settings(), "HOST.PID.N")
    flags = command[command.index("worker") + 1:-1]  # after `python -m rq.cli worker`, before the queue
    for flag, value in zip(flags, [*flags[1:], ""]):
        if flag.startswith("--"):
            expected = flag if value.startswith("--") or value == Settings().redis_url else f"{flag} {value}"
            assert expected in shown, expected
