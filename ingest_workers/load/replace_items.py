"""The items of a replace dataset's nested datasets: staged with their parents during the run
(each nested dataset has its own run staging table, :mod:`.replace_rows`), never written to the
tables readers use; the run's switch (:mod:`.replace_switch`) replaces them with the parents.

The items of every parent row staged now are staged (a parent whose key the run staged already
keeps the items staged with it), counted against the nested table as it stands: ``loaded`` (a new
item), ``updated`` (its values differ). An item that fails its checks goes to ``rejected_records``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg2 import sql

from ..core.models import NESTED_COUNT_NAMES, Rejected
from ..datasets import Dataset
from ..datasets.nesting import item_rows
from .replace_rows import first_per_key, stage_rows

Staging = Callable[[Any, Dataset, Sequence[dict[str, Any]]], sql.Composable]  # rows -> numbered temp table


def stage_items(cur: Any, parent: Dataset, parents: Sequence[dict[str, Any]],
                staging: Staging) -> tuple[dict[str, dict[str, int]], list[Rejected]]:
    """Stage the items of ``parents`` (rows of ``parent`` staged now) for every dataset nested in
    ``parent``, at any depth; return the counts per nested dataset and the items refused."""
    counts: dict[str, dict[str, int]] = {}
    refused_all: list[Rejected] = []
    for child in parent.nested if parents else ():
        rows, refused = item_rows(child, parents)
        rows = first_per_key(child, rows)
        mine = counts.setdefault(child.name, dict.fromkeys(NESTED_COUNT_NAMES, 0))
        mine["rejected"] = len(refused)
        refused_all += refused
        if not rows:
            continue
        done = stage_rows(cur, child, rows, staging(cur, child, rows))
        mine["loaded"], mine["updated"] = done.inserted, done.updated
        deeper, refused = stage_items(cur, child, done.staged, staging)
        counts.update(deeper)  # each nested dataset has one parent: no name twice
        refused_all += refused
    return counts, refused_all
