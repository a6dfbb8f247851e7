"""The items of a history dataset's versions (a dataset nested in it, :mod:`.history_schema`):
each new version's items are inserted with it, in its transaction, under the version's
``valid_from``; a version that is not written (unchanged, older) writes no items, so running a
job again adds none. Closed versions keep their items.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from ..core.models import NESTED_COUNT_NAMES, Rejected
from ..datasets import Dataset
from ..datasets.nesting import item_rows


def write_version_items(cur: Any, parent: Dataset, versions: Sequence[dict[str, Any]],
                        copy_payload: Any) -> tuple[dict[str, dict[str, int]], list[Rejected]]:
    """Insert the items of the parent ``versions`` just inserted; return the counts per nested
    dataset and the items refused (for ``rejected_records``). ``copy_payload(dataset, rows,
    columns)`` makes the COPY text."""
    counts: dict[str, dict[str, int]] = {}
    refused_all: list[Rejected] = []
    for child in parent.nested if versions else ():
        rows, refused = item_rows(child, versions)
        rows = _first_per_key(child, rows)
        columns = child.load_columns
        if parent.version_column is not None:  # else valid_from defaults to now(): the parent's, same transaction
            columns = (*columns, "valid_from")
            starts = {parent.natural_key(v): v[parent.version_column] for v in versions}
            for row in rows:
                row["valid_from"] = starts[_parent_key(child, row)]
        if rows:
            cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(child.table), sql.SQL(", ").join(map(sql.Identifier, columns))).as_string(cur),
                io.BytesIO(copy_payload(rows, columns)))
        counts[child.name] = {**dict.fromkeys(NESTED_COUNT_NAMES, 0), "loaded": len(rows), "rejected": len(refused)}
        refused_all += refused
    return counts, refused_all


def _parent_key(child: Dataset, row: dict[str, Any]) -> str:
    return "\x1f".join(str(row[column]) for column in child.parent_key)


def _first_per_key(child: Dataset, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per key in a version (an item key repeated in one list keeps its first item)."""
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept.setdefault(child.natural_key(row), row)
    return list(kept.values())
