"""A replace dataset (``write = "replace"``): each complete run's rows replace its source's rows.

During the run, each batch's rows go to the table's run staging table ``TABLE_staged`` (keyed by
``(source, run_id, *key)``; the first record of a key in the run stays), never to the table
readers use; each is counted against the table as it stands: ``loaded`` (a new key), ``updated``
(its values differ), ``duplicate`` (the same values, or a key already staged in this run). The
switch, once every job of the source in the run ended ``finished``, is :mod:`.replace_switch`.

:func:`ensure_staged_table` is what ``ingest db migrate`` adds for a replace dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from psycopg2 import sql

from ..datasets import Dataset
from ..datasets.types import TYPES


def staged_table(dataset: Dataset) -> str:
    """The name of ``dataset``'s run staging table."""
    return f"{dataset.table[:56]}_staged"


def ensure_staged_table(cur: Any, dataset: Dataset) -> None:
    """Create (or extend with the declaration's new columns) the run staging table of a replace dataset."""
    if dataset.write != "replace":
        return
    staged, table = sql.Identifier(staged_table(dataset)), sql.Identifier(dataset.table)
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(staged, table))
    for column in dataset.columns:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
            staged, sql.Identifier(column.name), sql.SQL(TYPES[column.type][1])))
    cur.execute(sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(f"{staged_table(dataset)}_key"[:63]), staged,
        sql.SQL(", ").join(map(sql.Identifier, _staged_key(dataset)))))


def first_per_key(dataset: Dataset, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per natural key: the first one (as the run keeps the first record of a key)."""
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        chosen.setdefault(dataset.natural_key(row), row)
    return list(chosen.values())


class Staged(NamedTuple):
    inserted: int  # new keys of the table
    updated: int  # keys of the table whose values differ
    written: list[dict[str, Any]]  # those rows (the others staged now change nothing)
    staged: list[dict[str, Any]]  # every row staged now (a key staged earlier in the run is not again)


def changed(dataset: Dataset, table: str, new: str) -> sql.Composable:
    """SQL: the row ``new`` differs from the stored row ``table`` (a data column, or, with nested
    datasets, a list they read: a changed list changes the record, as for a merge)."""
    data = [c for c in dataset.column_names if c not in dataset.unique_key]
    t, n = sql.Identifier(table), sql.Identifier(new)
    parts = [sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("{}.{}").format(t, sql.Identifier(c)) for c in data),
        sql.SQL(", ").join(sql.SQL("{}.{}").format(n, sql.Identifier(c)) for c in data))] if data else []
    parts += [sql.SQL("{t}.raw #> {p} IS DISTINCT FROM {n}.raw #> {p}").format(
        t=t, n=n, p=sql.Literal(child.path.split("."))) for child in dataset.nested]
    return sql.SQL("({})").format(sql.SQL(" OR ").join(parts)) if parts else sql.SQL("false")


def stage_rows(cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]], batch: sql.Composable) -> Staged:
    """Stage ``rows`` (one per key, numbered in the temporary table ``batch``) for the run."""
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    key = sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))
    match = sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in dataset.unique_key)
    cur.execute(sql.SQL(
        "WITH staged AS (INSERT INTO {staged} ({columns}) SELECT {columns} FROM {batch} ORDER BY row_number "
        "ON CONFLICT ({staged_key}) DO NOTHING RETURNING {key}) "
        "SELECT s.row_number, t.source IS NULL, t.source IS NOT NULL AND {changed} "
        "FROM staged w JOIN {batch} s USING ({key}) LEFT JOIN {target} t ON {match} ORDER BY 1").format(
        staged=sql.Identifier(staged_table(dataset)), columns=columns, batch=batch, key=key,
        staged_key=sql.SQL(", ").join(map(sql.Identifier, _staged_key(dataset))), match=match,
        target=sql.Identifier(dataset.table), changed=changed(dataset, "t", "s")))
    found = cur.fetchall()
    inserted = sum(1 for _, new, _ in found if new)
    updated = sum(1 for _, _, differs in found if differs)
    return Staged(inserted, updated, [rows[number] for number, new, differs in found if new or differs],
                  [rows[number] for number, _, _ in found])


def _staged_key(dataset: Dataset) -> tuple[str, ...]:
    return ("source", "run_id", *dataset.key)
