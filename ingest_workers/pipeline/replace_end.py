"""At the end of a job of a replace dataset: ask for the switch of its source's rows
(:mod:`ingest_workers.load.replace_switch`), which happens once the source's last job in the run
has ended, and say what it did."""

from __future__ import annotations

import logging

from ..core.connections import postgres_errors
from ..datasets import Dataset
from ..load.pgretry import Connection
from ..load.replace_switch import Switch, switch_if_complete
from .clients import postgres_retry
from .resources import Resources

log = logging.getLogger(__name__)


def switch_replaced_rows(source: str, dataset: Dataset, run_id: str, res: Resources,
                         finishing: str | None = None) -> Switch | None:
    """For a replace dataset's job that has recorded its end: switch (or refuse) if it was the
    source's last job in the run; None otherwise, and for the other write modes. ``finishing``:
    the id of a job about to record ``finished``, counted as finished already."""
    if dataset.write != "replace":
        return None
    done = postgres_retry(res).run(lambda conn: _switch(conn, dataset, source, run_id, finishing))
    if done is not None:
        (log.info if done.outcome == "replaced" else log.warning)("source %s: %s", source, done.detail)
    return done


def _switch(conn: Connection, dataset: Dataset, source: str, run_id: str, finishing: str | None) -> Switch | None:
    with postgres_errors(), conn, conn.cursor() as cur:
        return switch_if_complete(cur, dataset, source, run_id, finishing)
