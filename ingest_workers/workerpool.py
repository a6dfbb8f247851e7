"""Start and stop local ``rq worker`` processes (for ``ingest run`` and the demo).

They are the same workers an operator runs by hand: :func:`worker_command` is the
documented invocation, so what the demo exercises is what production runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .config import ENV_VARS, Settings

DEFAULT_WORKER_CLASS = "ingest_workers.worker.IngestWorker"


def worker_command(settings: Settings, name: str, worker_class: str | None = None) -> list[str]:
    """``rq worker`` with the JSON serializer, the scheduler that runs delayed retries and
    deferred jobs, and short deadlines for noticing a dead worker (see :mod:`ingest_workers.worker`)."""
    return [sys.executable, "-m", "rq.cli", "worker", "--serializer", "json", "--with-scheduler",
            "--name", name, "--url", settings.redis_url,
            "--worker-class", worker_class or DEFAULT_WORKER_CLASS,
            "--queue-class", "ingest_workers.worker.IngestQueue",
            "--job-monitoring-interval", str(settings.job_monitoring_interval),
            "--maintenance-interval", str(settings.maintenance_interval),
            "--worker-ttl", str(settings.worker_ttl), settings.queue]


def worker_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The environment that makes a worker see the same settings as this process."""
    env = dict(base)
    for field, variable in ENV_VARS.items():
        env[variable] = str(getattr(settings, field))
    return env


def worker_name(index: int) -> str:
    """Unique across hosts and runs: host name, this process's pid, worker number."""
    return f"{socket.gethostname()}.{os.getpid()}.{index}"


@contextmanager
def local_workers(settings: Settings, count: int, env: Mapping[str, str], log_path: Path,
                  worker_class: str | None = None,
                  stop_timeout: float = 30.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run ``count`` workers for the duration of the block, their output appended to
    ``log_path``; stop them with SIGTERM (RQ's warm shutdown: the current job
    finishes), then SIGKILL after ``stop_timeout``."""
    child_env = worker_env(settings, env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    processes = [subprocess.Popen(worker_command(settings, worker_name(i), worker_class), env=child_env,
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                 for i in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
