"""Apply the numbered SQL files in ``migrations/`` once each, in order, then create or evolve
the tables of the declared datasets (:mod:`.schema`).

Safe to run from many processes at once: an advisory lock serialises them, and
``schema_migrations`` records what was applied. Each file runs in its own
transaction, so a failing file leaves the schema at the previous version.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

import psycopg2.extensions

from ..datasets import BUILTIN, Dataset
from .schema import evolve

_LOCK_ID = 0x1A6E57  # arbitrary, constant: "ingest" migrations


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) for each packaged migration, in order."""
    folder = resources.files("ingest_workers.load") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(conn: psycopg2.extensions.connection, datasets: Iterable[Dataset] = ()) -> list[str]:
    """Apply what is missing; return the versions applied now and the tables created or changed
    (empty when up to date). ``datasets``: the catalog's declared ones, besides the built-in ones.

    Raises :class:`~.schema.SchemaRefused` when a table differs from its declaration in a way
    only a person should resolve (the SQL files are applied all the same)."""
    applied_now = []
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.commit()
            for version, text in migration_files():
                with conn:
                    cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,))
                    if cur.fetchone():
                        continue
                    cur.execute(text)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                    applied_now.append(version)
            applied_now += evolve(conn, [*BUILTIN.values(), *datasets])
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
            conn.commit()
    return applied_now
