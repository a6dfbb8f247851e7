"""Drift: the top-level fields of the records, and of the items of nested datasets, that no
column reads. APIs add fields; the record is kept in ``raw``, but nobody would be told that a new
column could be declared. A job counts, per field, how many of its records (or items) had one no
column reads; the run's summary and ``ingest status`` name them: ``new field 'discountPercentage'
in 194 of 194 records``, and a nested item's field by its list's path in the record
(``new field 'labels[].description' in 12 of 40 items``: 40 items in the lists at ``labels``).

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.paths import value_at_parts
from .model import ITEM_INDEX, Dataset

ITEMS = "[]."  # between a nested list's path and the field of its items: ``labels[].description``


def read_fields(dataset: Dataset, fields: Mapping[str, str], constants: Mapping[str, Any]) -> frozenset[str]:
    """The top-level fields a source's columns read: each column's mapped path's first part (or
    its own name); computed columns and constants read none."""
    read = {child.path.split(".", 1)[0] for child in dataset.nested}  # the lists nested datasets read
    for column in dataset.columns:
        if column.computed or column.name in constants:
            continue
        read.add(fields.get(column.name, column.name).split(".", 1)[0])
    return frozenset(read)


class _Lists:
    """A nested dataset's lists: where they are in a record (or an item), what its columns read of
    an item, the name of its items' fields (``labels[].``), and its own nested datasets' lists."""

    def __init__(self, child: Dataset, prefix: str) -> None:
        self.parts, self.name = child.path.split("."), f"{prefix}{child.path}"
        self.prefix = self.name + ITEMS
        own = dict(child.fields)
        self.read = frozenset({*(own.get(c.name, c.name).split(".", 1)[0] for c in child.columns
                                 if c.name not in child.parent_key and c.name != ITEM_INDEX),
                               *(grandchild.path.split(".", 1)[0] for grandchild in child.nested)})
        self.nested = tuple(_Lists(grandchild, self.prefix) for grandchild in child.nested)


class FieldDrift:
    """The fields no column reads, counted over the records observed (and their nested items).

    A job's records nearly all have the same fields in the same order, so a record is counted by its
    fields as they come (one tuple and one dict lookup, in C); what they hold that no column reads is
    worked out once per such shape, when asked (or when too many shapes were seen: memory stays bounded).
    Nested items cost one set difference each.
    """

    _MOST_SHAPES = 256

    def __init__(self, read: frozenset[str], dataset: Dataset | None = None) -> None:
        self._read = read
        self._lists = tuple(_Lists(child, "") for child in dataset.nested) if dataset is not None else ()
        self._records = 0
        self._unread: Counter[str] = Counter()
        self._shapes: dict[tuple[str, ...], int] = {}  # a record's fields in order -> records seen with them
        self._items: Counter[str] = Counter()  # nested list path -> items observed

    def observe(self, record: object) -> None:
        """Count ``record``'s top-level fields that no column reads (a record that is not an object: none)."""
        if isinstance(record, dict):
            shape = tuple(record)
            self._shapes[shape] = self._shapes.get(shape, 0) + 1
            if len(self._shapes) > self._MOST_SHAPES:
                self._fold()
            for lists in self._lists:
                self._observe_items(record, lists)

    def _observe_items(self, owner: dict[str, Any], lists: _Lists) -> None:
        """One set difference per item of the list ``lists`` reads in ``owner`` (a record or an item)."""
        listed = value_at_parts(owner, lists.parts)
        if not isinstance(listed, list):
            return
        for item in listed:
            if isinstance(item, dict):
                self._items[lists.name] += 1
                unread = item.keys() - lists.read
                if unread:
                    self._unread.update([lists.prefix + name for name in unread])
                for deeper in lists.nested:
                    self._observe_items(item, deeper)

    def _fold(self) -> None:
        for shape, records in self._shapes.items():
            self._records += records
            for name in set(shape) - self._read:
                self._unread[name] += records
        self._shapes.clear()

    def to_dict(self) -> dict[str, Any]:
        self._fold()
        drift: dict[str, Any] = {"records": self._records, "fields": dict(self._unread)}
        if self._items:
            drift["items"] = dict(self._items)
        return drift


def merge_drift(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The drift of several jobs (a source's jobs in a run) as one."""
    records, fields, items = 0, Counter[str](), Counter[str]()
    for part in parts:
        records += int(part.get("records", 0))
        fields.update({name: int(count) for name, count in part.get("fields", {}).items()})
        items.update({name: int(count) for name, count in part.get("items", {}).items()})
    return {"records": records, "fields": dict(fields), **({"items": dict(items)} if items else {})}


def new_field_lines(drift: Mapping[str, Any]) -> list[str]:
    """``new field 'x' in 194 of 194 records`` (``'labels[].x' in 12 of 40 items``), the most frequent first."""
    fields = sorted(drift.get("fields", {}).items(), key=lambda item: (-item[1], item[0]))
    items = drift.get("items", {})
    lines = []
    for name, count in fields:
        listed = name.rsplit(ITEMS, 1)[0] if ITEMS in name else None
        total, unit = (items.get(listed, 0), "items") if listed is not None else (drift.get("records", 0), "records")
        lines.append(f"new field {name!r} in {count} of {total} {unit}")
    return lines
