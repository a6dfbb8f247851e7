"""The write modes beyond append and plain merge, for :class:`~.loader.PostgresLoader`, inside the
batch's transaction: a merge dataset's ``deleted_column`` (:mod:`.deletions`), ``write = "history"``
(:mod:`.history_write`) and ``write = "replace"`` (:mod:`.replace_rows`, its nested items
:mod:`.replace_items`; the run's switch is :mod:`.replace_switch`). The loader keeps one hook:
:func:`handles`, then :func:`write_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from psycopg2 import sql

from ..core.models import Lineage, Rejected
from ..datasets import Dataset
from .deletions import delete_rows, split_flagged
from .history_items import write_version_items
from .history_write import write_history
from .replace_items import stage_items
from .replace_rows import first_per_key, stage_rows


class RowWriter(Protocol):
    """What the loader offers: its merge, its staging table, and its COPY text."""

    def merge_rows(self, cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]],
                   all_new: bool) -> tuple[int, int, list[dict[str, Any]]]: ...

    def staged(self, cur: Any, dataset: Dataset, payload: bytes) -> sql.Composable: ...

    def copy_payload(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes: ...

    def insert_rejections(self, cur: Any, rejected: Sequence[Rejected], lineage: Lineage) -> None: ...


class Written(NamedTuple):
    inserted: int
    updated: int
    deleted: int
    written: list[dict[str, Any]]
    nested: dict[str, dict[str, int]]  # nested dataset -> {"deleted": rows removed with their parents}


def handles(dataset: Dataset) -> bool:
    """Whether ``dataset``'s rows are written here rather than by the loader's append or merge."""
    return dataset.write in ("history", "replace") or dataset.deleted_column is not None


def handles_nested(dataset: Dataset) -> bool:
    """Whether the items of ``dataset``'s nested datasets are written here too: with each version
    (history, :mod:`.history_items`), or staged with their parents (replace, :mod:`.replace_items`)."""
    return dataset.write in ("history", "replace")


def write_rows(writer: RowWriter, cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]],
               all_new: bool, lineage: Lineage) -> Written:
    """Write one batch's ``rows`` of ``dataset`` (:func:`handles` it) in the transaction of ``cur``."""
    if dataset.write == "replace":  # staged for the run's switch; the first record of a key in the run stays
        return _stage(writer, cur, dataset, rows, lineage)
    rows = latest_per_key(dataset, rows)
    if dataset.write == "history":
        done = write_history(cur, dataset, rows, writer.copy_payload(rows, dataset.load_columns))
        items, refused = write_version_items(cur, dataset, done.written, writer.copy_payload)
        if refused:
            writer.insert_rejections(cur, refused, lineage)
        return Written(done.inserted, done.updated, done.deleted, done.written, items)
    live, flagged = split_flagged(dataset, rows)  # distinct keys: one record per key now
    merged = writer.merge_rows(cur, dataset, live, all_new and not flagged) if live else (0, 0, [])
    removed, nested = delete_rows(cur, dataset, flagged)
    return Written(merged[0], merged[1], len(removed), merged[2], nested)


def _stage(writer: RowWriter, cur: Any, dataset: Dataset, rows: Sequence[dict[str, Any]],
           lineage: Lineage) -> Written:
    """A replace dataset's rows, and their nested items, staged for the run's switch."""
    def staging(cur: Any, staged: Dataset, rows: Sequence[dict[str, Any]]) -> sql.Composable:
        return writer.staged(cur, staged, writer.copy_payload(rows, staged.load_columns))

    once = first_per_key(dataset, rows)
    done = stage_rows(cur, dataset, once, staging(cur, dataset, once))
    items, refused = stage_items(cur, dataset, done.staged, staging)
    if refused:
        writer.insert_rejections(cur, refused, lineage)
    return Written(done.inserted, done.updated, 0, done.written, items)


def latest_per_key(dataset: Dataset, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per natural key: the last one (the one with the highest version, the last of equal
    versions), so that ``ON CONFLICT DO UPDATE`` never meets a key twice in one statement (the
    loader's merge uses it too)."""
    chosen: dict[str, dict[str, Any]] = {}
    version = dataset.version_column
    for row in rows:
        key = dataset.natural_key(row)
        kept = chosen.get(key)
        if kept is None or version is None or not (row[version] < kept[version]):
            chosen[key] = row
    return list(chosen.values()) if len(chosen) < len(rows) else list(rows)
