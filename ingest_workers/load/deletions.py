"""A merge dataset's ``deleted_column``: a record whose value there is true removes its stored
row, and the rows of the datasets nested in it, inside the batch's transaction (the caller's
cursor). The record passed its checks; it is counted ``deleted`` when it removed a row,
``duplicate`` when there was none (deleted already, or never loaded). A key deleted and served
again later is simply new again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql
from psycopg2.extras import execute_values

from ..datasets import Dataset
from ..datasets.types import TYPES


def flagged(dataset: Dataset, row: dict[str, Any]) -> bool:
    """Whether ``row`` says its record was deleted (its ``deleted_column`` is true)."""
    return dataset.deleted_column is not None and row.get(dataset.deleted_column) is True


def split_flagged(dataset: Dataset, rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                             list[dict[str, Any]]]:
    """(the rows to write, the rows flagged deleted), in batch order."""
    live, deleted = [], []
    for row in rows:
        (deleted if flagged(dataset, row) else live).append(row)
    return live, deleted


def delete_rows(cur: Any, dataset: Dataset,
                rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Delete the stored rows of ``rows``' keys, and their nested rows; return the rows whose
    stored row was removed, and how many rows each nested dataset lost."""
    if not rows:
        return [], {}
    key = dataset.unique_key
    removed = _delete(cur, dataset, dataset.table, [tuple(row[c] for c in key) for row in rows], fetch=True)
    gone = {tuple(values) for values in removed}
    deleted = [row for row in rows if tuple(str(row[c]) for c in key) in gone]
    keys = [tuple(row[c] for c in key) for row in deleted]
    nested = {child.name: {"deleted": len(_delete(cur, dataset, child.table, keys))} for child in _descendants(dataset)}
    return deleted, {name: counts for name, counts in nested.items() if counts["deleted"]}


def _descendants(dataset: Dataset) -> list[Dataset]:
    """Every dataset nested in ``dataset``, at any depth: each has ``dataset``'s key columns first."""
    return [d for child in dataset.nested for d in (child, *_descendants(child))]


def _delete(cur: Any, dataset: Dataset, table: str, keys: list[tuple[Any, ...]], fetch: bool = False) -> list[Any]:
    """Delete the rows of ``table`` whose ``dataset.unique_key`` columns are one of ``keys``; with
    ``fetch``, return their keys as text (else one entry per row deleted)."""
    if not keys:
        return []
    key = dataset.unique_key
    types = ["text", *(TYPES[_column_type(dataset, name)][1] for name in dataset.key)]
    template = sql.SQL("({})").format(sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(kind)) for kind in types)).as_string(cur)
    match = sql.SQL(" AND ").join(sql.SQL("t.{c} = d.{c}").format(c=sql.Identifier(c)) for c in key)
    statement = sql.SQL("DELETE FROM {table} t USING (VALUES %s) AS d ({columns}) WHERE {match} "
                        "RETURNING {returned}").format(
        table=sql.Identifier(table), columns=sql.SQL(", ").join(map(sql.Identifier, key)), match=match,
        returned=sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in key))
    return execute_values(cur, statement.as_string(cur), keys, template=template, fetch=True)


def _column_type(dataset: Dataset, name: str) -> str:
    column = dataset.column(name)
    return column.type if column is not None else "text"
