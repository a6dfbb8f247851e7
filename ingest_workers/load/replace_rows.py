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
from typing import Any

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


def stage_rows(cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]],
               batch: sql.Composable) -> tuple[int, int, list[dict[str, Any]]]:
    """Stage ``rows`` (one per key, numbered in the temporary table ``batch``) for the run; return
    how many are new keys and changed rows of the table, and those rows (the others staged now are
    the same as the table's: they change nothing)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    key = sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))
    data = [c for c in dataset.column_names if c not in dataset.unique_key]
    changed = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in data),
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in data)) if data else sql.SQL("false")
    match = sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in dataset.unique_key)
    cur.execute(sql.SQL(
        "WITH staged AS (INSERT INTO {staged} ({columns}) SELECT {columns} FROM {batch} ORDER BY row_number "
        "ON CONFLICT ({staged_key}) DO NOTHING RETURNING {key}) "
        "SELECT s.row_number, t.source IS NULL, t.source IS NOT NULL AND {changed} "
        "FROM staged w JOIN {batch} s USING ({key}) LEFT JOIN {target} t ON {match} ORDER BY 1").format(
        staged=sql.Identifier(staged_table(dataset)), columns=columns, batch=batch, key=key, changed=changed,
        staged_key=sql.SQL(", ").join(map(sql.Identifier, _staged_key(dataset))), match=match,
        target=sql.Identifier(dataset.table)))
    found = cur.fetchall()
    inserted = sum(1 for _, new, _ in found if new)
    updated = sum(1 for _, _, differs in found if differs)
    return inserted, updated, [rows[number] for number, new, differs in found if new or differs]


def _staged_key(dataset: Dataset) -> tuple[str, ...]:
    return ("source", "run_id", *dataset.key)
