"""Drift: the top-level fields of the records that no column reads. APIs add fields; the record
is kept in ``raw``, but nobody would be told that a new column could be declared. A job counts,
per field, how many of its records had one no column reads; the run's summary and ``ingest
status`` name them (``new field 'discountPercentage' in 194 of 194 records``).

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .model import Dataset


def read_fields(dataset: Dataset, fields: Mapping[str, str], constants: Mapping[str, Any]) -> frozenset[str]:
    """The top-level fields a source's columns read: each column's mapped path's first part (or
    its own name); computed columns and constants read none."""
    read = set()
    for column in dataset.columns:
        if column.computed or column.name in constants:
            continue
        read.add(fields.get(column.name, column.name).split(".", 1)[0])
    return frozenset(read)


class FieldDrift:
    """The fields no column reads, counted over the records observed.

    A job's records nearly all have the same fields in the same order, so a record is counted by its
    fields as they come (one tuple and one dict lookup, in C); what they hold that no column reads is
    worked out once per such shape, when asked (or when too many shapes were seen: memory stays bounded).
    """

    _MOST_SHAPES = 256

    def __init__(self, read: frozenset[str]) -> None:
        self._read = read
        self._records = 0
        self._unread: Counter[str] = Counter()
        self._shapes: dict[tuple[str, ...], int] = {}  # a record's fields in order -> records seen with them

    def observe(self, record: object) -> None:
        """Count ``record``'s top-level fields that no column reads (a record that is not an object: none)."""
        if isinstance(record, dict):
            shape = tuple(record)
            self._shapes[shape] = self._shapes.get(shape, 0) + 1
            if len(self._shapes) > self._MOST_SHAPES:
                self._fold()

    def _fold(self) -> None:
        for shape, records in self._shapes.items():
            self._records += records
            for name in set(shape) - self._read:
                self._unread[name] += records
        self._shapes.clear()

    def to_dict(self) -> dict[str, Any]:
        self._fold()
        return {"records": self._records, "fields": dict(self._unread)}


def merge_drift(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The drift of several jobs (a source's jobs in a run) as one."""
    records, fields = 0, Counter[str]()
    for part in parts:
        records += int(part.get("records", 0))
        fields.update({name: int(count) for name, count in part.get("fields", {}).items()})
    return {"records": records, "fields": dict(fields)}


def new_field_lines(drift: Mapping[str, Any]) -> list[str]:
    """``new field 'x' in 194 of 194 records``, the most frequent first."""
    fields = sorted(drift.get("fields", {}).items(), key=lambda item: (-item[1], item[0]))
    return [f"new field {name!r} in {count} of {drift.get('records', 0)} records" for name, count in fields]
