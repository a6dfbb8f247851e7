"""A dataset: the declared table records land in (``[datasets.NAME]``). One frozen object is the
declaration (what the catalog wrote, what travels inside each RQ job as :meth:`Dataset.to_dict`)
and what the stages, the loader and the sinks work with: its unique key, its columns, its row check.

Pure: no I/O. Parsed from TOML or a job's dict by :mod:`.parsing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .rowcheck import RowCheck
from .types import NUMBER_TYPES

# Columns every dataset's table has besides its declared ones, filled from the job's lineage.
LINEAGE_COLUMNS = ("source", "run_id", "job_id", "fetched_at")
ITEM_INDEX = "item_index"  # a nested dataset without a declared key: the item's position in its list
COLUMN_KEYS = frozenset({"type", "required", "min", "max", "max_length", "one_of", "pattern", "default", "case",
                         "currency_column", "scale", "computed"})


@dataclass(frozen=True)
class Column:
    """One declared column: its type, its constraints, and where its value comes from."""

    name: str
    type: str
    required: bool = False
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    one_of: tuple[Any, ...] | None = None
    pattern: str | None = None
    default: Any = None  # the value of a record that has none
    case: str | None = None  # "lower" | "upper": text is changed to that case before the checks
    currency_column: str | None = None  # money: the column that receives the currency the amount named
    scale: int | None = None  # numeric, money: decimals kept (rounded half to even)
    computed: bool = False  # filled by a stage (sentiment, moving average, ...), not read from the record

    def to_dict(self) -> dict[str, Any]:
        """The column as the catalog would write it (only what differs from the defaults)."""
        out: dict[str, Any] = {"type": self.type}
        for name in sorted(COLUMN_KEYS - {"type"}):
            value = getattr(self, name)
            if value is not None and value is not False:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Dataset:
    """A declared table: its natural key, typed columns, and how a changed record is written.

    Frozen, and not slotted: the row check is built once per object (:attr:`check`)."""

    name: str
    table: str
    key: tuple[str, ...]  # the natural key; the table's unique key is (source, *key): :attr:`unique_key`
    columns: tuple[Column, ...]
    # "append": the first version stays; "merge": a changed record replaces the row; "replace": each
    # complete run's rows replace the source's rows; "history": every version kept (valid_from, valid_to)
    write: str = "append"
    version_column: str | None = None  # merge, history: a record replaces the row only when this is higher
    deleted_column: str | None = None  # merge, history: a record whose value here is true deletes its row
    time_column: str | None = None  # when a record happened (cursors, backfill windows)
    indexes: tuple[tuple[str, ...], ...] = ()
    stages: tuple[Any, ...] | None = None  # run after the checks unless a source names its own
    prepare: tuple[Any, ...] = ()  # stages run on the mapped record before the checks (what no type covers)
    stats: bool = False  # each job records count, min, max and mean of the numeric columns it loaded
    # A nested dataset (rows from a list inside each record of dataset ``nested_in``): :mod:`.nesting`.
    nested_in: str | None = None
    path: str = ""  # nested: where the list is in the parent's record as served (dotted)
    fields: tuple[tuple[str, str], ...] = ()  # nested: (column, dotted path in the item)
    parent_key: tuple[str, ...] = ()  # nested: the parent's key columns, first in ``key`` and ``columns``
    nested: tuple[Dataset, ...] = ()  # the datasets nested in this one (each with its own ``nested``)

    def column(self, name: str) -> Column | None:
        """The declared column called ``name``, if any."""
        return next((c for c in self.columns if c.name == name), None)

    @cached_property
    def check(self) -> RowCheck:
        """Mapped record -> row, or :class:`~ingest_workers.core.models.Reject` naming the column and rule."""
        return RowCheck(self.columns)

    @property
    def unique_key(self) -> tuple[str, ...]:
        """The table's unique key: ``source`` first, then the natural key."""
        return ("source", *self.key)

    @property
    def compares_versions(self) -> bool:
        """Whether a changed record of a stored key is written (merge, history): the dedup filter
        then compares what was loaded, not just the key."""
        return self.write in ("merge", "history")

    @property
    def column_names(self) -> tuple[str, ...]:
        """The declared columns' names, in order: what the row check and the stages produce."""
        return tuple(c.name for c in self.columns)

    @property
    def load_columns(self) -> tuple[str, ...]:
        """Every column the loader writes, in order; ``raw`` holds the payload as served."""
        return (*self.column_names, *LINEAGE_COLUMNS, "raw")

    @property
    def default_stages(self) -> tuple[Any, ...]:
        """Stages a source of this dataset runs after the checks unless its catalog entry names its own."""
        return self.stages or ()

    @property
    def stats_columns(self) -> tuple[str, ...]:
        """With ``stats``: the numeric columns that are not part of the key (ids are no measurements)."""
        if not self.stats:
            return ()
        return tuple(c.name for c in self.columns if c.type in NUMBER_TYPES and c.name not in self.key)

    def natural_key(self, row: dict[str, Any]) -> str:
        """The row's unique key without ``source`` (Redis sets and alerts are per source already)."""
        if len(self.key) == 1:  # the common case, without a generator per row (the dedup asks for every record)
            return str(row[self.key[0]])
        return "\x1f".join(str(row[column]) for column in self.key)

    @property
    def family(self) -> tuple[Dataset, ...]:
        """This dataset and every dataset nested in it, parents before their children."""
        return (self, *(d for child in self.nested for d in child.family))

    @property
    def item_key(self) -> tuple[str, ...]:
        """A nested dataset's key within its parent (``item_index`` unless declared)."""
        return self.key[len(self.parent_key):]

    def to_dict(self) -> dict[str, Any]:
        """The declaration as the catalog would write it (what travels in a job), with the datasets
        nested in it under ``nested``."""
        if self.nested_in is not None:
            return self._nested_dict()
        out: dict[str, Any] = {"table": self.table, "key": list(self.key), "write": self.write,
                               "columns": {c.name: c.to_dict() for c in self.columns},
                               "indexes": [list(i) for i in self.indexes], "prepare": list(self.prepare)}
        if self.version_column is not None:
            out["version_column"] = self.version_column
        if self.deleted_column is not None:
            out["deleted_column"] = self.deleted_column
        if self.time_column is not None:
            out["time_column"] = self.time_column
        if self.stages is not None:
            out["stages"] = list(self.stages)
        if self.stats:
            out["stats"] = True
        if self.nested:
            out["nested"] = {d.name: d.to_dict() for d in self.nested}
        return out

    def _nested_dict(self) -> dict[str, Any]:
        """A nested dataset as declared: without its parent's key columns and ``item_index``."""
        own = [c for c in self.columns if c.name not in self.parent_key and c.name != ITEM_INDEX]
        out: dict[str, Any] = {"table": self.table, "nested_in": self.nested_in, "path": self.path,
                               "columns": {c.name: c.to_dict() for c in own},
                               "indexes": [list(i) for i in self.indexes]}
        if self.item_key != (ITEM_INDEX,):
            out["key"] = list(self.item_key)
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.time_column is not None:
            out["time_column"] = self.time_column
        if self.nested:
            out["nested"] = {d.name: d.to_dict() for d in self.nested}
        return out
