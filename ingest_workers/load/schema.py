"""Tables from dataset declarations: create each declared table, evolve it as its declaration
grows, and say precisely what differs when a table and its declaration no longer agree.

- A new dataset: ``CREATE TABLE`` with the declared columns, the lineage columns, ``raw jsonb``,
  ``loaded_at``, the unique key ``(source, *key)`` and the declared indexes (plus one on ``run_id``,
  and, for a nested dataset, one on its parent's key columns). A nested dataset's table is a
  table like any other: its key is ``(*parent_key, *item_key)``.
- A column added to the declaration: ``ALTER TABLE ... ADD COLUMN`` (nullable, so the rows there
  stay valid); a declared index that is missing: ``CREATE INDEX``.
- A changed type, a changed key, or a column the declaration no longer has: refused, all of them
  in one :class:`SchemaRefused` naming the dataset, the column, the table's type, the declared
  one, and what to do. Nothing is ever dropped or converted here.

:func:`ingest_workers.load.migrate.migrate` runs :func:`evolve` under its advisory lock, so
many hosts may migrate at once. :func:`differences` is the check workers run before loading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

import psycopg2.extensions
from psycopg2 import sql

from ..core.errors import ConfigError
from ..datasets import Column, Dataset
from ..datasets.types import TYPES
from .history_schema import create_extras, extra_columns, mode_refusal, table_key
from .replace_rows import ensure_staged_table

# The columns every dataset's table has besides its declared ones, as CREATE TABLE writes them.
STANDARD_COLUMNS = (("source", "text NOT NULL"), ("run_id", "text NOT NULL"), ("job_id", "text NOT NULL"),
                    ("fetched_at", "timestamptz NOT NULL"), ("raw", "jsonb NOT NULL"),
                    ("loaded_at", "timestamptz NOT NULL DEFAULT now()"))
# On an existing table a missing standard column is added nullable: its rows have no value for it.
_ADDED_STANDARD = MappingProxyType({"loaded_at": "timestamptz DEFAULT now()"})
_DECLARED_FOR = MappingProxyType({udt: name for name, (_, _, udts) in reversed(TYPES.items()) for udt in udts})


class SchemaRefused(ConfigError):
    """A table differs from its declaration in a way ``ingest db migrate`` will not change by
    itself (a type, the key, a removed column); the message says, per difference, what to do."""


@dataclass(frozen=True)
class TableState:
    columns: dict[str, tuple[str, str]]  # name -> (type name as pg_type has it, the type as SQL writes it)
    unique_keys: list[frozenset[str]]
    indexes: set[tuple[str, ...]]


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    create: bool
    add_columns: tuple[str, ...]  # declared or standard columns the table lacks
    add_indexes: tuple[tuple[str, ...], ...]
    refused: tuple[str, ...]

    @property
    def actions(self) -> list[str]:
        table = self.dataset.table
        if self.create:
            return [f"created table {table} (dataset {self.dataset.name})"]
        return ([f"added column {table}.{c} (dataset {self.dataset.name})" for c in self.add_columns]
                + [f"added index on {table} ({', '.join(i)})" for i in self.add_indexes])


def read_table(cur: psycopg2.extensions.cursor, table: str) -> TableState | None:
    """What the table in the search path named ``table`` has now; None when there is none."""
    cur.execute("SELECT to_regclass(%s)::oid", (sql.Identifier(table).as_string(cur),))
    (oid,) = cur.fetchone()
    if oid is None:
        return None
    cur.execute("SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum", (oid,))
    columns = {name: (udt, shown) for name, udt, shown in cur.fetchall()}
    cur.execute("SELECT i.indisunique OR i.indisprimary, array_agg(a.attname ORDER BY k.ord) "
                "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s AND i.indpred IS NULL GROUP BY i.indexrelid, i.indisunique, i.indisprimary",
                (oid,))
    unique_keys, indexes = [], set()
    for unique, names in cur.fetchall():
        indexes.add(tuple(names))
        if unique:
            unique_keys.append(frozenset(names))
    return TableState(columns, unique_keys, indexes)


def plan(cur: psycopg2.extensions.cursor, dataset: Dataset) -> Plan:
    state = read_table(cur, dataset.table)
    if state is None:
        return Plan(dataset, True, (), (), ())
    refused = []
    name, table = dataset.name, dataset.table
    switched = mode_refusal(dataset, state.columns)
    if switched is not None:
        return Plan(dataset, False, (), (), (switched,))
    for column in dataset.columns:
        found = state.columns.get(column.name)
        if found is not None and found[0] not in TYPES[column.type][2]:
            refused.append(
                f"dataset {name}: column {column.name!r} of table {table} is {found[1]}, declared \"{column.type}\"; "
                f"declare it as \"{_declared_for(found[0])}\" again, or convert the column yourself "
                f"(ALTER TABLE {table} ALTER COLUMN {column.name} TYPE {TYPES[column.type][1]} USING ...) "
                "and migrate again")
    declared = {c.name for c in dataset.columns} | {c for c, _ in (*STANDARD_COLUMNS, *extra_columns(dataset))}
    for column, (udt, shown) in state.columns.items():
        if column not in declared:
            refused.append(
                f"dataset {name}: column {column!r} of table {table} is {shown}, declared: none (removed from the "
                f"declaration); declare it again ({column} = \"{_declared_for(udt)}\"), or drop it yourself "
                f"(ALTER TABLE {table} DROP COLUMN {column}) if its data is no longer needed: migrate never drops")
    key = frozenset(table_key(dataset))
    if key not in state.unique_keys:
        current = sorted(next((k for k in state.unique_keys if "source" in k), frozenset()) - {"source"})
        refused.append(
            f"dataset {name}: the unique key of table {table} is (source, {', '.join(current) or '?'}), declared "
            f"(source, {', '.join(dataset.key)}); declare key = {current!r} again, or load the new key into a "
            f"new table (table = \"{table}_v2\")")
    add_columns = tuple(c for c in (*(c.name for c in dataset.columns), *(c for c, _ in STANDARD_COLUMNS))
                        if c not in state.columns)
    add_indexes = tuple(i for i in _wanted_indexes(dataset) if i not in state.indexes)
    return Plan(dataset, False, add_columns, add_indexes, tuple(refused))


def evolve(conn: psycopg2.extensions.connection, datasets: Iterable[Dataset]) -> list[str]:
    """Create or extend each dataset's table; return what was done. Refuses (and changes nothing)
    when any table differs in a way that needs a person. The caller holds the migration lock."""
    datasets = list({d.table: d for d in datasets}.values())
    with conn, conn.cursor() as cur:
        plans = [plan(cur, dataset) for dataset in datasets]
    refused = [line for p in plans for line in p.refused]
    if refused:
        raise SchemaRefused("ingest db migrate changed nothing:\n  " + "\n  ".join(refused))
    done = []
    for p in plans:
        with conn, conn.cursor() as cur:
            _apply(cur, p)
        done += p.actions
    return done


def differences(conn: psycopg2.extensions.connection, datasets: Iterable[Dataset]) -> list[str]:
    """How the tables differ from their declarations, one line each (empty: they match). A missing
    table or column counts; a missing index does not (it slows queries, it does not stop loading)."""
    lines = []
    with conn, conn.cursor() as cur:
        for dataset in datasets:
            p = plan(cur, dataset)
            if p.create:
                lines.append(f"dataset {dataset.name}: table {dataset.table} does not exist")
                continue
            lines += list(p.refused)
            lines += [f"dataset {dataset.name}: table {dataset.table} has no column {c!r}" for c in p.add_columns]
    return lines


def _apply(cur: psycopg2.extensions.cursor, p: Plan) -> None:
    dataset, table = p.dataset, sql.Identifier(p.dataset.table)
    if p.create:
        parts = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(_sql_type(c))) for c in dataset.columns]
        parts += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(spec))
                  for c, spec in (*STANDARD_COLUMNS, *extra_columns(dataset))]
        parts.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table_key(dataset)))))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(parts)))
        create_extras(cur, dataset)
        indexes: Iterable[tuple[str, ...]] = _wanted_indexes(dataset)
    else:
        columns = {c.name: c for c in dataset.columns}
        for name in p.add_columns:
            spec = _sql_type(columns[name]) if name in columns else _ADDED_STANDARD.get(
                name, dict(STANDARD_COLUMNS)[name].replace(" NOT NULL", ""))
            cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                table, sql.Identifier(name), sql.SQL(spec)))
        indexes = p.add_indexes
    for index in indexes:
        cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(index_name(dataset.table, index)), table, sql.SQL(", ").join(map(sql.Identifier, index))))
    ensure_staged_table(cur, dataset)


def _wanted_indexes(dataset: Dataset) -> list[tuple[str, ...]]:
    """The declared indexes, one on ``run_id``, and a nested dataset's on its parent's key (joins)."""
    parent = [dataset.parent_key] if dataset.parent_key else []
    return list(dict.fromkeys([*dataset.indexes, *parent, ("run_id",)]))


def index_name(table: str, columns: tuple[str, ...]) -> str:
    name = f"{table}_{'_'.join(columns)}_idx"
    if len(name) <= 63:
        return name
    return f"{name[:50]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}_idx"


def _sql_type(column: Column) -> str:
    return TYPES[column.type][1]


def _declared_for(udt: str) -> str:
    return _DECLARED_FOR.get(udt, udt)
