"""``ingest catalog diff SOURCE``: a sample page of the source's records against its dataset's
declaration. Three kinds of line:

- the column lines to add for the fields no column reads (typed as ``ingest catalog draft``
  would type them, with the ``fields`` mapping a nested path needs);
- the declared columns the API no longer serves (no record of the page has a value there);
- type disagreements: a declared column whose type refuses some of the values served.

Pure: no I/O (the CLI fetches the page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.models import Reject
from .drift import read_fields
from .infer import infer_columns
from .model import Dataset
from .types import TYPES


def catalog_diff(dataset: Dataset, fields: Mapping[str, str], constants: Mapping[str, Any],
                 records: Sequence[Any]) -> list[str]:
    """The lines to print (none: the page and the declaration agree)."""
    records = [r for r in records if isinstance(r, dict)]
    read = read_fields(dataset, fields, constants)
    lines = []
    new = [c for c in infer_columns(records) if c.path.split(".", 1)[0] not in read]
    if new:
        lines.append(f"columns to add to [datasets.{dataset.name}.columns] (fields no column reads):")
        lines += [f'{c.name} = "{c.type}"' + (f'  # and fields.{c.name} = "{c.path}" in the source'
                                             if c.name != c.path else "") for c in new]
    for column in dataset.columns:
        if column.computed or column.name in constants:
            continue
        path = fields.get(column.name, column.name)
        values = [v for v in (_at(r, path) for r in records) if v is not None and v != ""]
        if records and not values:
            lines.append(f"column {column.name!r} ({path}): no record of the page has it (the API no longer "
                         "serves it?)")
            continue
        refused = [v for v in values if _refuses(column.type, column.name, v)]
        if refused:
            lines.append(f"column {column.name!r} is \"{column.type}\": {len(refused)} of {len(values)} values "
                         f"served are not (e.g. {refused[0]!r}); the draft would type it "
                         f"\"{_inferred(records, path)}\"")
    return lines


def _refuses(kind: str, name: str, value: Any) -> bool:
    try:
        TYPES[kind][0](name, value)
    except Reject:
        return True
    return False


def _inferred(records: Sequence[dict[str, Any]], path: str) -> str:
    column = infer_columns([{"value": _at(r, path)} for r in records])
    return column[0].type if column else "text"


def _at(record: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record
