"""Sinks besides PostgreSQL (the loader, always the main path): where a batch's newly
loaded rows also go. A sink is ``Sink(context, **params)`` with ``consume(rows)``.

A sink receives exactly the rows PostgreSQL inserted, or updated for a merge dataset
(``RETURNING``): never a row that was in the table already unchanged, nor one PostgreSQL
refused. A sink with ``in_transaction =
True`` is called inside each transaction that writes rows, with those rows (it writes
through ``context.connection()``), so what it writes commits or rolls back with them.
Other sinks are called after the commit; a crash between the commit and the call skips
them for that batch (at most once).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import psycopg2.extensions
from psycopg2.extras import execute_values

from ..core.errors import ConfigError
from ..core.models import Lineage
from ..core.plugins import PluginAllowlist, resolve, split_entry
from ..datasets import Dataset

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """Where a batch's written rows also go, after the commit (at most once)."""

    def consume(self, rows: Iterable[dict[str, Any]]) -> None: ...


@runtime_checkable
class TransactionalSink(Sink, Protocol):
    """A sink called inside each transaction that writes rows: it declares ``in_transaction = True``."""

    in_transaction: Literal[True]


@dataclass(frozen=True)
class SinkContext:
    dataset: Dataset
    lineage: Lineage
    # The job's current PostgreSQL connection: the batch's, which may be a new one after an outage.
    connection: Callable[[], psycopg2.extensions.connection]


def _plain(row: dict[str, Any], skip: Sequence[str] = ("raw",)) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in skip}, default=str, ensure_ascii=False)


class JsonLinesSink:
    """Append each row (without its raw payload) as one JSON line to ``path``."""

    name = "jsonl"

    def __init__(self, context: SinkContext, path: str) -> None:
        self._path = Path(path)

    def consume(self, rows: Iterable[dict[str, Any]]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as out:
            out.writelines(_plain(row) + "\n" for row in rows)


class ConsoleSink:
    """Print each row (without its raw payload) as JSON on standard output."""

    name = "console"

    def __init__(self, context: SinkContext) -> None:
        pass

    def consume(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            print(_plain(row), file=sys.stdout)


class AlertSink:
    """Rows whose ``field`` is above ``above`` (or below ``below``) become rows of the
    ``alerts`` table, once per record and rule, and a warning in the log."""

    name = "alerts"
    in_transaction = True

    def __init__(self, context: SinkContext, field: str, above: float | None = None, below: float | None = None,
                 rule: str | None = None) -> None:
        if (above is None) == (below is None):
            raise ConfigError("sink alerts: give exactly one of above or below")
        threshold = above if above is not None else below
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"sink alerts: the threshold must be a number, got {threshold!r}")
        self._context, self._field = context, field
        self._above, self._threshold = above is not None, float(threshold)
        self._rule = rule or f"{field} {'>' if self._above else '<'} {self._threshold:g}"

    def crosses(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return value > self._threshold if self._above else value < self._threshold

    def consume(self, rows: Iterable[dict[str, Any]]) -> None:
        lineage, dataset = self._context.lineage, self._context.dataset
        values = [(lineage.source, dataset.natural_key(row), self._rule, self._field, float(row[self._field]),
                   self._threshold, _plain(row), lineage.run_id, lineage.job_id)
                  for row in rows if self.crosses(row.get(self._field))]
        if not values:
            return
        with self._context.connection().cursor() as cur:
            new = execute_values(cur, "INSERT INTO alerts (source, record_key, rule, field, value, threshold, row_data,"
                                      " run_id, job_id) VALUES %s ON CONFLICT (source, record_key, rule) DO NOTHING"
                                      " RETURNING record_key, value", values, fetch=True)
        for record_key, value in new[:5]:
            log.warning("alert %s: source %s record %s: %s = %g", self._rule, lineage.source,
                        record_key.replace("\x1f", "/"), self._field, value)
        if len(new) > 5:
            log.warning("alert %s: source %s: %d more alerts in this batch", self._rule, lineage.source, len(new) - 5)


SINKS: Mapping[str, Any] = MappingProxyType({cls.name: cls for cls in (JsonLinesSink, ConsoleSink, AlertSink)})


def sink_class(entry: Any, allow: PluginAllowlist | None = None) -> Any:
    """The class of a sink entry; a plugin's module must be one ``allow`` allows (see :func:`.resolve`)."""
    return resolve(split_entry(entry, "sink")[0], SINKS, "sink", allow)


def make_sink(entry: Any, context: SinkContext) -> Sink:
    """Build one sink from a catalog entry (``"console"`` or ``{name = "alerts", field = "x", above = 1}``)."""
    name, params = split_entry(entry, "sink")
    try:
        sink: Sink = resolve(name, SINKS, "sink")(context, **params)
    except TypeError as exc:
        raise ConfigError(f"sink {name}: {exc}") from None
    if isinstance(sink, TransactionalSink) and sink.in_transaction is not True:
        raise ConfigError(f"sink {name}: in_transaction must be True (a transactional sink) or absent")
    return sink
