"""What every domain is: a table, its natural key, and a pure check (made from a dataset's
declaration, :mod:`.declared`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LINEAGE_COLUMNS = ("source", "run_id", "job_id", "fetched_at")


@dataclass(frozen=True)
class Domain:
    name: str
    table: str
    key: tuple[str, ...]  # the unique key, ``source`` first
    fields: tuple[str, ...]  # the domain's own columns, as produced by ``check`` and the stages
    check: Callable[[dict[str, Any]], dict[str, Any]]  # mapped record -> row; raises Reject
    time_field: str | None = None  # the column that says when a record happened (cursors, backfill windows)
    # Stages a source of this domain runs after ``check`` unless its catalog entry names its own.
    default_stages: tuple[Any, ...] = field(default=())
    prepare: tuple[Any, ...] = ()  # stages run on the mapped record before ``check``
    write: str = "append"  # "append": the first version stays; "merge": a changed record replaces the row
    version_column: str | None = None  # merge: a record replaces the row only when this is higher
    dataset: Any = None  # the declaration (:class:`~.declared.Dataset`) this domain was made from

    def natural_key(self, row: dict[str, Any]) -> str:
        """The row's unique key without ``source`` (Redis sets and alerts are per source already)."""
        return "\x1f".join(str(row[column]) for column in self.key[1:])

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the loader writes, in order; ``raw`` holds the payload as served."""
        return (*self.fields, *LINEAGE_COLUMNS, "raw")
