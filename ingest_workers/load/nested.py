"""The items of nested datasets, written in their parents' transaction (:mod:`ingest_workers.datasets.nesting`).

For the parent rows a batch actually wrote (``RETURNING``: inserted, or replaced by a changed record):

- append: the items of the parents inserted now (the parent's first version keeps its items);
- merge: each parent's items are replaced: items gone from its list are deleted, new ones
  inserted, changed ones updated, and unchanged ones left alone (``IS DISTINCT FROM``: no new row
  version, their ``xmin`` stays). Rows nested in a deleted item are deleted with it.

An item that fails its checks goes to ``rejected_records`` (its reason names its place,
``labels[2].color: ...``); its parent and the other items load. Datasets nested in a nested
dataset are written the same way, under the items written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from psycopg2 import sql
from psycopg2.extras import execute_values

from ..core.models import NESTED_COUNT_NAMES, Lineage, Rejected
from ..datasets import Dataset
from ..datasets.nesting import item_rows

NestedCounts = Mapping[str, Mapping[str, int]]  # nested dataset -> {loaded, updated, deleted, rejected}


class RowWriter(Protocol):
    """What :class:`~.loader.PostgresLoader` offers to write rows inside a transaction (``merge_rows``
    leaves the rows it merged in its staging table, ``staging_TABLE``, until the commit)."""

    def merge_rows(self, cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]],
                   all_new: bool) -> tuple[int, int, list[dict[str, Any]]]: ...

    def insert_rows(self, cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def insert_rejections(self, cur: Any, rejected: Sequence[Rejected], lineage: Lineage) -> None: ...


def write_nested(writer: RowWriter, cur: Any, parent: Dataset, parents: Sequence[dict[str, Any]],
                 lineage: Lineage) -> dict[str, dict[str, int]]:
    """Write the items of ``parents`` (rows of ``parent`` just written) for every dataset nested in
    ``parent``, recursively; return the counts per nested dataset."""
    counts: dict[str, dict[str, int]] = {}
    if not parents:
        return counts
    for child in parent.nested:
        rows, refused = item_rows(child, parents)
        mine = counts.setdefault(child.name, dict.fromkeys(NESTED_COUNT_NAMES, 0))
        if child.write == "merge":
            mine["loaded"], mine["updated"], written = writer.merge_rows(cur, child, rows, False)
            parent_keys = _parents_table(cur, child, parents)
            mine["deleted"] = _delete_stale(cur, child, parent_keys)
            for descendant, owner in _descendants(child):
                gone = _delete_orphans(cur, descendant, owner, child.parent_key, parent_keys)
                counts.setdefault(descendant.name, dict.fromkeys(NESTED_COUNT_NAMES, 0))["deleted"] += gone
        else:
            written = writer.insert_rows(cur, child, rows)
            mine["loaded"] = len(written)
        if refused:
            writer.insert_rejections(cur, refused, lineage)
            mine["rejected"] = len(refused)
        add_nested(counts, write_nested(writer, cur, child, written, lineage))
    return counts


def add_nested(total: dict[str, dict[str, int]], more: NestedCounts) -> dict[str, dict[str, int]]:
    """Add ``more`` into ``total``; return ``total``."""
    for name, values in more.items():
        mine = total.setdefault(name, dict.fromkeys(NESTED_COUNT_NAMES, 0))
        for count, value in values.items():
            mine[count] = mine.get(count, 0) + value
    return total


def _parents_table(cur: Any, child: Dataset, parents: Sequence[dict[str, Any]]) -> sql.Composable:
    """The parents' keys ``(source, *parent_key)`` in a temporary table (emptied at each commit);
    the values take the types of the nested table's columns."""
    name = f"nested_parents_{child.table}"  # PostgreSQL would cut a longer name, maybe to another's
    table = sql.Identifier(name if len(name) <= 63 else f"nested_parents_{hashlib.sha1(name.encode()).hexdigest()}")
    names = ("source", *child.parent_key)
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} "
                        "WITH NO DATA").format(table, columns, sql.Identifier(child.table)))
    keys = {tuple(row[c] for c in names) for row in parents}
    execute_values(cur, sql.SQL("INSERT INTO {} ({}) VALUES %s").format(table, columns).as_string(cur), list(keys))
    return table


def _matches(left: str, right: str, columns: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), sql.Identifier(c),
                                                                 sql.Identifier(right), sql.Identifier(c))
                                 for c in columns)


def _delete_stale(cur: Any, child: Dataset, parent_keys: sql.Composable) -> int:
    """Delete the items of the parents in ``parent_keys`` that their new list (the staging table
    of ``child``) no longer has; return how many."""
    staging = sql.Identifier(f"staging_{child.table}")  # what merge_rows staged: the new lists' items
    cur.execute(sql.SQL("DELETE FROM {target} t USING {parents} p WHERE {by_parent} AND NOT EXISTS "
                        "(SELECT 1 FROM {staging} s WHERE {by_key})").format(
        target=sql.Identifier(child.table), parents=parent_keys, staging=staging,
        by_parent=_matches("t", "p", ("source", *child.parent_key)),
        by_key=_matches("t", "s", child.unique_key)))
    return int(cur.rowcount)


def _descendants(dataset: Dataset) -> list[tuple[Dataset, str]]:
    """The datasets nested in ``dataset`` at any depth, each with its parent's table, parents first."""
    return [pair for child in dataset.nested for pair in [(child, dataset.table), *_descendants(child)]]


def _delete_orphans(cur: Any, descendant: Dataset, owner: str, top_key: Sequence[str],
                    parent_keys: sql.Composable) -> int:
    """Delete the rows of ``descendant`` (nested deeper) under the parents in ``parent_keys`` whose
    own parent row is gone; return how many."""
    cur.execute(sql.SQL("DELETE FROM {target} t USING {parents} p WHERE {by_parent} AND NOT EXISTS "
                        "(SELECT 1 FROM {owner} o WHERE {by_owner})").format(
        target=sql.Identifier(descendant.table), parents=parent_keys,
        owner=sql.Identifier(owner),
        by_parent=_matches("t", "p", ("source", *top_key)),
        by_owner=_matches("t", "o", ("source", *descendant.parent_key))))
    return int(cur.rowcount)
