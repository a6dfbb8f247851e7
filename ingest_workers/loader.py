"""Write batches to PostgreSQL idempotently: COPY into a staging table, then
``INSERT ... ON CONFLICT DO NOTHING`` into the target, one transaction per batch.

Running the same batch twice inserts nothing the second time, so an RQ job that
is retried after a crash cannot load a record twice. Rejections are written in
the same transaction, so a batch is either wholly recorded or not at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from .connections import postgres_errors
from .domains import Domain
from .models import Lineage, Rejected


class PostgresLoader:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self._conn = conn
        self._staging_ready: set[str] = set()

    @property
    def connection(self) -> psycopg2.extensions.connection:
        return self._conn

    def load_batch(self, domain: Domain, rows: Sequence[dict[str, Any]], rejected: Sequence[Rejected],
                   lineage: Lineage, in_transaction: Callable[[Any], None] | None = None) -> tuple[int, list[Rejected]]:
        """Insert ``rows`` and record ``rejected`` in one transaction.

        Returns how many rows were new (the rest were in the table already) and the
        rows PostgreSQL itself refused (a value its types or checks reject): those are
        found by splitting the batch, recorded as rejections, and the rest still load.
        ``in_transaction(cursor)`` runs inside the transaction that commits the batch's
        last rows (cursor marks, transactional sinks), so it commits only with all of them.
        Raises :class:`TransientError` when PostgreSQL is unreachable: the whole batch
        can then be retried.
        """
        try:
            return self._load(domain, rows, rejected, lineage, in_transaction), []
        except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
            if len(rows) <= 1:
                reason = f"PostgreSQL refused the row: {exc.diag.message_primary or type(exc).__name__}"
                refused = [Rejected(row.get("raw"), reason, "load") for row in rows]
                self._load(domain, [], [*rejected, *refused], lineage, in_transaction)
                return 0, refused
        middle = len(rows) // 2
        first, refused_first = self.load_batch(domain, rows[:middle], rejected, lineage)
        second, refused_second = self.load_batch(domain, rows[middle:], [], lineage, in_transaction)
        return first + second, refused_first + refused_second

    def _load(self, domain: Domain, rows: Sequence[dict[str, Any]], rejected: Sequence[Rejected],
              lineage: Lineage, in_transaction: Callable[[Any], None] | None = None) -> int:
        with postgres_errors(), self._conn, self._conn.cursor() as cur:
            inserted = self._insert_rows(cur, domain, rows) if rows else 0
            if rejected:
                self._insert_rejections(cur, rejected, lineage)
            if in_transaction is not None:
                in_transaction(cur)
        if rows:  # a rolled-back transaction takes a new staging table with it
            self._staging_ready.add(domain.table)
        return inserted

    def _insert_rows(self, cur: Any, domain: Domain, rows: Sequence[dict[str, Any]]) -> int:
        staging = sql.Identifier(f"staging_{domain.table}")
        columns = sql.SQL(", ").join(map(sql.Identifier, domain.columns))
        if domain.table not in self._staging_ready:
            # Temporary: private to this connection, emptied at each commit.
            cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                                "ON COMMIT DELETE ROWS").format(staging, sql.Identifier(domain.table)))
        buffer = io.BytesIO(copy_text(rows, domain.columns).encode("utf-8"))
        cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, columns).as_string(cur), buffer)
        cur.execute(sql.SQL("INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} "
                            "ON CONFLICT ({key}) DO NOTHING").format(
            target=sql.Identifier(domain.table), columns=columns, staging=staging,
            key=sql.SQL(", ").join(map(sql.Identifier, domain.key))))
        return cur.rowcount

    @staticmethod
    def _insert_rejections(cur: Any, rejected: Sequence[Rejected], lineage: Lineage) -> None:
        values = []
        for item in rejected:
            payload = jsonb_text(item.raw)
            fingerprint = hashlib.sha256(payload.encode("utf-8")).hexdigest()
            values.append((lineage.source, fingerprint, item.stage, item.reason, payload,
                           lineage.run_id, lineage.job_id))
        execute_values(cur, "INSERT INTO rejected_records (source, fingerprint, stage, reason, payload, run_id, job_id)"
                            " VALUES %s ON CONFLICT (source, fingerprint) DO NOTHING", values)


def copy_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows in COPY's text format (tab-separated, ``\\N`` for NULL)."""
    return "".join("\t".join(_copy_field(row.get(c)) for c in columns) + "\n" for row in rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, list):
        return _array_literal(value).translate(_COPY_ESCAPES)
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return jsonb_text(value).translate(_COPY_ESCAPES)


def _array_literal(items: list[Any]) -> str:
    quoted = ('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items)
    return "{" + ",".join(quoted) + "}"


def jsonb_text(value: Any) -> str:
    """JSON text that PostgreSQL's jsonb accepts, for any decoded JSON payload.

    jsonb refuses NUL characters, lone surrogates (from invalid UTF-8 escapes) and
    NaN/Infinity; those are replaced (U+FFFD, or the number as text) so the payload
    can still be audited.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
        if "\\u0000" not in text:
            return text
    except (ValueError, UnicodeEncodeError):
        pass
    return json.dumps(_jsonb_safe(value), ensure_ascii=False, separators=(",", ":"))


def _jsonb_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_jsonb_safe(str(k)): _jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    return value
