"""ingest-workers: fetch sources with RQ workers, deduplicate in Redis, load PostgreSQL exactly once.

The layers, highest first; each imports only from the layers below it (``setup.cfg``'s import
contracts, checked by ``lint-imports`` in the test command)::

    cli/         the ``ingest`` command: parse, build settings, call one function
    testing/     mock sources, faults, chaos, the fault demo, embedded services (only cli imports it)
    runtime/     RQ job functions, worker and queue classes, worker pool, producer, scheduler
    pipeline/    one job, end to end: source -> stages -> dedup -> load
    catalog.py   the user's TOML, checked against the kinds, stages and sinks there are
    ops/         metrics, metrics server, job history, status, failed jobs, logs
    load/  guards/  sources/  stages/     PostgreSQL and Redis I/O; protection; connectors; stages
    datasets/    the tables records land in, and their checks
    core/        errors, models, settings, redaction, plugin names, connections
"""

from types import MappingProxyType
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__"]

# Jobs queued by earlier versions name ``ingest_workers.jobs.fetch_source`` (and their failure
# callback ``ingest_workers.jobs.on_failure``); hand-written ``rq worker`` command lines name
# ``ingest_workers.worker.IngestWorker``. RQ resolves such a path attribute by attribute from the
# package when the module is gone, so these two names keep working without modules of their own.
_MOVED = MappingProxyType({"jobs": "ingest_workers.runtime.jobs", "worker": "ingest_workers.runtime.worker"})


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'ingest_workers' has no attribute {name!r}")
