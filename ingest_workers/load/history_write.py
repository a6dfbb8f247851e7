"""A history dataset's batch (``write = "history"``): every version of a record is kept, each
with ``valid_from`` and ``valid_to`` (null: the current version), in the batch's transaction.

- A new key: its first version is inserted (counted ``loaded``).
- A changed record: the current version is closed (``valid_to`` = the new one's ``valid_from``)
  and the new one inserted (counted ``updated``).
- An unchanged record, or one served with a version no newer than the current one: nothing is
  written, no row is rewritten (its ``xmin`` stays), counted ``duplicate``. So running a job or a
  batch again adds no version.
- With ``deleted_column``: a record flagged deleted closes the current version (``deleted``).

``valid_from`` is the record's ``version_column`` (a timestamp) or, without one, the load time.
Batches of one source are serialised on the table (a transaction-level advisory lock), so two
jobs never close the same version twice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, NamedTuple

from psycopg2 import sql

from ..datasets import Dataset


class HistoryResult(NamedTuple):
    inserted: int  # first versions of new keys
    updated: int  # new versions of stored keys (the current one closed)
    deleted: int  # current versions a record flagged deleted closed
    written: list[dict[str, Any]]  # the rows inserted as versions, for the sinks


def write_history(cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]], payload: bytes) -> HistoryResult:
    """Write one batch's ``rows`` (one per key: the caller keeps each key's latest; ``payload``: their
    COPY text in ``dataset.load_columns``) as versions."""
    target = sql.Identifier(dataset.table)
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (dataset.table, rows[0]["source"]))
    staging = _staged(cur, dataset, payload)
    parts = {"target": target, "staging": staging, "match": _match(dataset), "valid_from": _valid_from(dataset),
             "live": _live(dataset)}
    deleted = 0
    if dataset.deleted_column is not None:
        cur.execute(sql.SQL("UPDATE {target} t SET valid_to = {valid_from} FROM {staging} s WHERE NOT {live} "
                            "AND t.valid_to IS NULL AND {match} AND t.valid_from <= {valid_from}").format(**parts))
        deleted = cur.rowcount
    cur.execute(sql.SQL("SELECT s.row_number, t.source IS NOT NULL FROM {staging} s LEFT JOIN {target} t "
                        "ON t.valid_to IS NULL AND {match} WHERE {live} AND (t.source IS NULL OR ({changed}))"
                        ).format(changed=_changed(dataset), **parts))
    changed = cur.fetchall()
    numbers = [number for number, _ in changed]
    if not numbers:
        return HistoryResult(0, 0, deleted, [])
    cur.execute(sql.SQL("UPDATE {target} t SET valid_to = {valid_from} FROM {staging} s "
                        "WHERE s.row_number = ANY(%s) AND t.valid_to IS NULL AND {match}").format(**parts), (numbers,))
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    key = sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))
    cur.execute(sql.SQL("WITH written AS (INSERT INTO {target} ({columns}, valid_from) "
                        "SELECT {columns}, {valid_from} FROM {staging} s WHERE s.row_number = ANY(%s) "
                        "ON CONFLICT DO NOTHING RETURNING {key}) "
                        "SELECT s.row_number FROM written w JOIN {staging} s USING ({key}) ORDER BY 1"
                        ).format(columns=columns, key=key, **parts), (numbers,))
    written = {number for (number,) in cur.fetchall()}
    updated = sum(1 for number, had_current in changed if had_current and number in written)
    return HistoryResult(len(written) - updated, updated, deleted, [rows[n] for n in sorted(written)])


def _staged(cur: Any, dataset: Dataset, payload: bytes) -> sql.Composable:
    """The batch COPYed into this connection's staging table (emptied at each commit), numbered."""
    staging = sql.Identifier(f"history_{dataset.table}")
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS, row_number integer) "
                        "ON COMMIT DELETE ROWS").format(staging, sql.Identifier(dataset.table)))
    numbered = b"".join(b"%s\t%d\n" % (line, n) for n, line in enumerate(payload.split(b"\n")[:-1]))
    columns = sql.SQL(", ").join(map(sql.Identifier, dataset.load_columns))
    cur.copy_expert(sql.SQL("COPY {} ({}, row_number) FROM STDIN").format(staging, columns).as_string(cur),
                    io.BytesIO(numbered))
    return staging


def _match(dataset: Dataset) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in dataset.unique_key)


def _valid_from(dataset: Dataset) -> sql.Composable:
    """A version's start: its ``version_column`` (a timestamp), else the load time (the transaction's)."""
    if dataset.version_column is None:
        return sql.SQL("now()")
    return sql.SQL("s.{}").format(sql.Identifier(dataset.version_column))


def _live(dataset: Dataset) -> sql.Composable:
    """The staging rows not flagged deleted."""
    if dataset.deleted_column is None:
        return sql.SQL("true")
    return sql.SQL("s.{} IS NOT TRUE").format(sql.Identifier(dataset.deleted_column))


def _changed(dataset: Dataset) -> sql.Composable:
    """A staged record differs from the current version ``t`` (and, with a version, is newer)."""
    data = [c for c in dataset.column_names if c not in dataset.unique_key]
    if not data:
        return sql.SQL("false")
    distinct = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in data),
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in data))
    if dataset.version_column is None:  # a changed list of a nested dataset is a changed record too
        return sql.SQL(" OR ").join([distinct, *(
            sql.SQL("t.raw #> {p} IS DISTINCT FROM s.raw #> {p}").format(p=sql.Literal(c.path.split(".")))
            for c in dataset.nested)])
    return sql.SQL("{} AND s.{v} > t.{v}").format(distinct, v=sql.Identifier(dataset.version_column))
