"""What a history dataset's table has that the others do not, for :mod:`.schema`:

- ``valid_from`` (not null: the version's start) and ``valid_to`` (null: the current version);
- the primary key ``(source, *key, valid_from)`` (a key has many versions), and a unique index on
  ``(source, *key)`` over the current versions only (one current version per key);
- a view ``TABLE_current``: the current versions, as an append or merge table would hold them.

A dataset nested in a history dataset keeps its items per version: its table has ``valid_from``
(its parent version's) in its key, ``(source, *parent_key, valid_from, *item_key)``; a version's
items are written with it and never change.

An append, merge or replace table and a history table differ in key and columns, so migrate never
switches one into the other (:func:`mode_refusal` says what to do instead).
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from ..datasets import Dataset

HISTORY_COLUMNS = (("valid_from", "timestamptz NOT NULL DEFAULT now()"), ("valid_to", "timestamptz"))
ITEM_COLUMNS = HISTORY_COLUMNS[:1]  # the items of a version: their parent version's valid_from


def is_history(dataset: Dataset) -> bool:
    return dataset.write == "history"


def table_key(dataset: Dataset) -> tuple[str, ...]:
    """The table's primary key: ``(source, *key)``, and ``valid_from`` for a history dataset."""
    return (*dataset.unique_key, "valid_from") if is_history(dataset) else dataset.unique_key


def extra_columns(dataset: Dataset) -> tuple[tuple[str, str], ...]:
    """The columns a history table (or the table of a dataset nested in one) has besides the
    declared and the standard ones."""
    if not is_history(dataset):
        return ()
    return ITEM_COLUMNS if dataset.nested_in is not None else HISTORY_COLUMNS


def mode_refusal(dataset: Dataset, columns: dict[str, Any]) -> str | None:
    """Why an existing table (its ``columns``) cannot take ``dataset``'s write mode, or None."""
    has_history = "valid_from" in columns
    if has_history == is_history(dataset):
        return None
    table = dataset.table
    if is_history(dataset):
        return (f"dataset {dataset.name}: table {table} keeps one row per key, declared write = \"history\" "
                "(a row per version, key (source, key, valid_from)); load the history into a new table "
                f"(table = \"{table}_history\"), or declare write = \"merge\" again")
    return (f"dataset {dataset.name}: table {table} keeps every version (write = \"history\"), declared "
            f"write = \"{dataset.write}\"; declare write = \"history\" again, or load into a new table "
            f"(table = \"{table}_v2\"); the current versions are in the view {table}_current")


def create_extras(cur: Any, dataset: Dataset) -> None:
    """A history table's unique index on its current versions and its ``_current`` view."""
    if not is_history(dataset) or dataset.nested_in is not None:
        return
    table = dataset.table
    cur.execute(sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) WHERE valid_to IS NULL").format(
        sql.Identifier(f"{table}_current_key"[:63]), sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, dataset.unique_key))))
    cur.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT * FROM {} WHERE valid_to IS NULL").format(
        sql.Identifier(f"{table}_current"), sql.Identifier(table)))
