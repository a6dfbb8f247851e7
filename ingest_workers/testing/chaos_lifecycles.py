"""The chaos run's history and replace datasets: one source each reads the same revised feed as
the merge sources (:mod:`.chaos_merge`), pass after pass, while workers are SIGKILLed and
PostgreSQL cut. The verdicts, computed from the feed's own records:

- history: the current versions hold the last revision; each key's versions are the feed's
  distinct successive values (no version added twice by a retried job or batch), each closed
  exactly where the next starts.
- replace: the source's rows are exactly those of one revision, the one of the last run whose
  switch says ``replaced`` (never half of two runs); at least one run switched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from ..datasets import Dataset, parse_dataset
from ..load.replace_rows import staged_table

HISTORY_SOURCE, REPLACE_SOURCE = "chaos_history_0", "chaos_replace_0"
_COLUMNS = {"product_id": {"type": "text", "required": True}, "name": {"type": "text", "required": True},
            "price": {"type": "money", "required": True, "min": 0}, "in_stock": "boolean", "updated_at": "timestamp"}
HISTORY_DATASET: Dataset = parse_dataset("chaos_history", {
    "table": "chaos_history_products", "key": ["product_id"], "write": "history", "columns": _COLUMNS})
REPLACE_DATASET: Dataset = parse_dataset("chaos_replace", {
    "table": "chaos_replace_products", "key": ["product_id"], "write": "replace", "columns": _COLUMNS})
Rows = dict[str, tuple[str, Decimal, Any]]


def history_broken(conn: psycopg2.extensions.connection, revision: int, expected: Callable[[int], Rows]) -> int:
    """Keys whose versions are not the feed's successive values up to ``revision``, or whose
    validity does not chain (each version closed where the next starts, the last one open)."""
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT product_id, name, price, in_stock, valid_from, valid_to FROM {} "
                            "WHERE source = %s ORDER BY product_id, valid_from").format(
            sql.Identifier(HISTORY_DATASET.table)), (HISTORY_SOURCE,))
        versions: dict[str, list[tuple[Any, ...]]] = {}
        for pid, *rest in cur.fetchall():
            versions.setdefault(pid, []).append(tuple(rest))
    revisions = [expected(r) for r in range(revision + 1)]
    broken = 0
    for pid in {k for rows in revisions for k in rows} | set(versions):
        wanted: list[tuple[Any, ...]] = []
        for rows in revisions:
            if pid in rows and (not wanted or wanted[-1] != rows[pid]):
                wanted.append(rows[pid])
        stored = versions.get(pid, [])
        chained = all(a[4] == b[3] for a, b in zip(stored, stored[1:])) and bool(stored) and stored[-1][4] is None
        broken += [v[:3] for v in stored] != wanted or not chained
    return broken


def replaced_revision(conn: psycopg2.extensions.connection, runs: Mapping[str, int]) -> int | None:
    """The revision of the replace source's last run that switched, or None if none did."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_id FROM replace_switches WHERE source = %s AND outcome = 'replaced'",
                    (REPLACE_SOURCE,))
        switched = [runs[run_id] for (run_id,) in cur.fetchall() if run_id in runs]
    return max(switched) if switched else None


def replace_rows(conn: psycopg2.extensions.connection) -> Rows:
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT product_id, name, price, in_stock FROM {} WHERE source = %s").format(
            sql.Identifier(REPLACE_DATASET.table)), (REPLACE_SOURCE,))
        return {pid: (name, price, stock) for pid, name, price, stock in cur.fetchall()}


def forget_lifecycles(conn: psycopg2.extensions.connection) -> None:
    """Drop what an earlier chaos run left in the history and replace tables."""
    with conn, conn.cursor() as cur:
        for dataset, source in ((HISTORY_DATASET, HISTORY_SOURCE), (REPLACE_DATASET, REPLACE_SOURCE)):
            cur.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(sql.Identifier(dataset.table)), (source,))
        cur.execute(sql.SQL("DELETE FROM {} WHERE source = %s").format(
            sql.Identifier(staged_table(REPLACE_DATASET))), (REPLACE_SOURCE,))
        cur.execute("DELETE FROM replace_switches WHERE source = %s", (REPLACE_SOURCE,))
