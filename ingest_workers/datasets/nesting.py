"""Nested datasets: rows from a list inside each record of another dataset (an issue's labels, a
product's reviews), as dlt makes child tables.

- :func:`attach`: a nested dataset given its parent: the parent's key columns come first in its
  columns and its key, so its unique key is ``(source, *parent_key, *item_key)``; it is written as
  its parent is (append, merge, replace: switched with it; history: per version, one level deep).
- :func:`resolve_nested`: a catalog's datasets with each nested one attached to its parent and
  listed in the parent's ``nested`` (so it travels in the parent's jobs).
- :func:`item_rows`: the rows of one nested dataset for some parent rows, and the items refused,
  each with a reason naming its place (``labels[2].color: ...``).

Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..core.errors import ConfigError
from ..core.models import Reject, Rejected
from ..core.paths import value_at_parts
from .model import ITEM_INDEX, LINEAGE_COLUMNS, Column, Dataset


def attach(parent: Dataset, child: Dataset) -> Dataset:
    """``child`` (parsed alone: its key is its item key) under ``parent``."""
    if parent.write == "history" and parent.nested_in is not None:
        raise ConfigError(f"[datasets.{child.name}] key 'nested_in': {parent.name!r} is nested in the history "
                          f"dataset {parent.nested_in!r}, whose items are kept per version of their record, and "
                          f"items of those items would need versions of their own, which are not kept: query the "
                          f"list in the raw column of {parent.name!r}, or declare {parent.nested_in!r} with "
                          "write = \"merge\" to nest deeper")
    clash = [c for c in child.column_names if c in parent.key]
    if clash:
        raise ConfigError(f"[datasets.{child.name}] key 'columns': {clash[0]!r} is a key column of "
                          f"{parent.name!r}, which every row of {child.name!r} has already; choose another name")
    inherited = tuple(Column(c.name, c.type, required=True) for name in parent.key
                      if (c := parent.column(name)) is not None)
    return replace(child, key=(*parent.key, *child.key), columns=(*inherited, *child.columns),
                   parent_key=parent.key, write=parent.write)


def resolve_nested(datasets: Mapping[str, Dataset], where: str = "") -> dict[str, Dataset]:
    """Every dataset of ``datasets`` resolved: nested ones attached to their parents (raising
    :class:`ConfigError` for an unknown parent or a circle), parents carrying their nested ones."""
    keyed: dict[str, Dataset] = {}

    def with_key(name: str, seen: tuple[str, ...] = ()) -> Dataset:
        if name in keyed:
            return keyed[name]
        dataset = datasets[name]
        if dataset.nested:  # the form a job carries; a catalog names the parent in each nested dataset
            raise ConfigError(f"{where}[datasets.{name}] key 'nested': declare each dataset nested in {name!r} "
                              f"as its own [datasets.NAME] with nested_in = \"{name}\"")
        parent = dataset.nested_in
        if parent is not None:
            if parent not in datasets:
                raise ConfigError(f"{where}[datasets.{name}] key 'nested_in': unknown dataset {parent!r}; "
                                  f"declared: {', '.join(datasets)}")
            if parent in seen:
                raise ConfigError(f"{where}[datasets.{name}] key 'nested_in': datasets nested in a circle: "
                                  f"{' -> '.join((*seen, name))}")
            dataset = attach(with_key(parent, (*seen, name)), dataset)
        keyed[name] = dataset
        return dataset

    def whole(name: str) -> Dataset:
        children = tuple(whole(n) for n, d in datasets.items() if d.nested_in == name)
        return replace(with_key(name), nested=children)

    for name in datasets:  # every parent found and no circle, before walking down
        with_key(name)
    return {name: whole(name) for name in datasets}


def item_rows(child: Dataset, parents: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """The rows of nested dataset ``child`` for the ``parents`` (loaded rows of its parent, each
    with ``raw``): one per item of the list at ``child.path`` in the parent's ``raw``, checked
    like a record; an item that fails goes to the refused with its place (``labels[2].color: ...``)."""
    rows: list[dict[str, Any]] = []
    refused: list[Rejected] = []
    parts = child.path.split(".")
    fields = tuple((column, path.split(".")) for column, path in child.fields)
    for parent in parents:
        listed = value_at_parts(parent.get("raw"), parts)
        if listed is None:
            continue
        if not isinstance(listed, list):
            reason = f"{child.path}: expected a list, got a JSON {type(listed).__name__}"
            refused.append(Rejected(_payload(child, parent, None, listed), reason, "nested"))
            continue
        for index, item in enumerate(listed):
            try:
                rows.append(_row(child, parent, index, item, fields))
            except Reject as exc:
                reason = f"{child.path}[{index}].{exc.reason}"
                refused.append(Rejected(_payload(child, parent, index, item), reason, "nested"))
    return rows, refused


def _row(child: Dataset, parent: dict[str, Any], index: int, item: Any,
         fields: tuple[tuple[str, list[str]], ...]) -> dict[str, Any]:
    mapped = dict(item) if isinstance(item, dict) else {"value": item}
    for column, parts in fields:
        mapped[column] = value_at_parts(item, parts)
    for column in child.parent_key:
        mapped[column] = parent[column]
    if ITEM_INDEX in child.key:
        mapped[ITEM_INDEX] = index
    row = child.check(mapped)
    for column in LINEAGE_COLUMNS:
        row[column] = parent[column]
    # An object is written as jsonb by the loader; anything else goes as its JSON text.
    row["raw"] = item if isinstance(item, dict) else json.dumps(item, ensure_ascii=False)
    return row


def _payload(child: Dataset, parent: dict[str, Any], index: int | None, item: Any) -> dict[str, Any]:
    """What ``rejected_records`` keeps of a refused item: the item and where it was."""
    return {"dataset": child.name, "parent": {k: _plain(parent[k]) for k in child.parent_key},
            "index": index, "item": item}


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def nested_lists(dataset: Dataset, raw: Any) -> Iterator[Any]:
    """The lists the datasets nested in ``dataset`` read from one record (what must be compared
    to see whether a record changed)."""
    for child in dataset.nested:
        yield value_at_parts(raw, child.path.split("."))
