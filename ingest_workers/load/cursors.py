"""Per-source high-water marks for incremental runs, kept in PostgreSQL.

The mark is advanced by :meth:`CursorStore.advance` on the cursor of the batch's own
transaction, so it commits together with the rows it covers: a crash can never
leave the mark past records that were not loaded. It only moves forward.

This holds for a source that serves records in the order of its cursor field (what
``updated_since``-style APIs do): a source that serves a later record before an
earlier one must not have a ``cursor_field``.
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2.extras import Json

from ..core.connections import postgres_errors
from ..core.models import Lineage


class CursorStore:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn

    def position(self, source: str) -> Any:
        """The source's mark (a timestamp text or a number), or None before its first run."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT position FROM source_cursors WHERE source = %s", (source,))
            row = cur.fetchone()
        return row[0] if row else None

    def reset(self, source: str) -> None:
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("DELETE FROM source_cursors WHERE source = %s", (source,))

    @staticmethod
    def advance(cur: Any, field: str, position: Any, lineage: Lineage) -> None:
        """Move the mark of ``lineage.source`` to ``position`` if that is further, on ``cur``
        (the caller's open transaction). Row-locks the mark, so concurrent runs keep the highest."""
        cur.execute("INSERT INTO source_cursors (source, field, position, run_id, job_id) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (source) DO NOTHING",
                    (lineage.source, field, Json(position), lineage.run_id, lineage.job_id))
        if cur.rowcount:
            return
        cur.execute("SELECT field, position FROM source_cursors WHERE source = %s FOR UPDATE", (lineage.source,))
        stored_field, stored = cur.fetchone()
        if stored_field == field and not is_after(position, stored):
            return
        cur.execute("UPDATE source_cursors SET field = %s, position = %s, run_id = %s, job_id = %s, updated_at = now() "
                    "WHERE source = %s", (field, Json(position), lineage.run_id, lineage.job_id, lineage.source))


class ParentCursors:
    """A child source's marks, one per parent record (or partition): ``parent_cursors``, advanced in
    the transaction of that parent's rows, like :class:`CursorStore`'s."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn

    def position(self, source: str, parent_key: str) -> Any:
        """The mark of ``source`` for the parent ``parent_key``, or None before its first rows."""
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT position FROM parent_cursors WHERE source = %s AND parent_key = %s",
                        (source, parent_key))
            row = cur.fetchone()
        return row[0] if row else None

    @staticmethod
    def advance(cur: Any, parent_key: str, field: str, position: Any, lineage: Lineage) -> None:
        """Move the mark of ``lineage.source`` for ``parent_key`` to ``position`` if that is further, on
        ``cur`` (the caller's open transaction)."""
        cur.execute("INSERT INTO parent_cursors (source, parent_key, field, position, run_id, job_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, parent_key) DO NOTHING",
                    (lineage.source, parent_key, field, Json(position), lineage.run_id, lineage.job_id))
        if cur.rowcount:
            return
        cur.execute("SELECT field, position FROM parent_cursors WHERE source = %s AND parent_key = %s FOR UPDATE",
                    (lineage.source, parent_key))
        stored_field, stored = cur.fetchone()
        if stored_field == field and not is_after(position, stored):
            return
        cur.execute("UPDATE parent_cursors SET field = %s, position = %s, run_id = %s, job_id = %s, "
                    "updated_at = now() WHERE source = %s AND parent_key = %s",
                    (field, Json(position), lineage.run_id, lineage.job_id, lineage.source, parent_key))


def is_after(candidate: Any, stored: Any) -> bool:
    """True when ``candidate`` is a later mark than ``stored`` (numbers by value, ISO UTC text by text)."""
    numeric = (int, float)
    if isinstance(candidate, numeric) and isinstance(stored, numeric):
        return candidate > stored
    if isinstance(candidate, str) and isinstance(stored, str):
        return candidate > stored
    return True  # the field's type changed: the new mark wins


def highest(values: Any) -> Any:
    """The highest mark among ``values`` (None entries ignored), or None."""
    present = [value for value in values if value is not None]
    kinds = {*map(type, present)}
    if len(kinds) == 1 and kinds <= _ONE_KIND:  # all text, or all int: max finds the mark the loop would
        return max(present)
    best = None
    for value in present:
        if best is None or is_after(value, best):
            best = value
    return best


_ONE_KIND = frozenset({str, int})
