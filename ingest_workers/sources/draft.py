"""``ingest catalog draft``: a catalog fragment (a dataset and a source) for an API, from
what :mod:`.probe` saw of it, for the user to read and edit.

Columns are what the sample's records hold (nested objects flattened to ``a_b_c`` columns
read from ``a.b.c``), typed from the values seen (:mod:`ingest_workers.datasets.infer`); no
checks are guessed beyond the key being required, so the draft, used as it is, refuses no
record whose values have the types seen. A list of objects (an issue's labels) becomes a nested
dataset of its own (``nested_in``), its items' columns drafted the same way; a list of scalars
stays a ``text[]`` column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from ..datasets import BUILTIN
from ..datasets.infer import (
    DraftColumn,
    column_name,
    infer_columns,
    item_key_candidate,
    key_candidate,
    object_lists,
)
from ..datasets.model import ITEM_INDEX
from .probe import ApiShape

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SOURCE_KEYS = ("records_path", "pagination", "page_param", "offset_param", "token_param", "next_token_path",
                "next_url_path", "after_param", "after_field", "has_more_path", "page_size_param", "page_size")
_DEFAULTS = {"page_param": "page", "offset_param": "offset", "token_param": "cursor", "next_token_path": "next_cursor",
             "next_url_path": "next", "after_param": "starting_after", "after_field": "id",
             "has_more_path": "has_more", "page_size_param": "per_page", "pagination": "page"}
_TIME_WORDS = ("updated", "modified", "changed")


def default_name(url: str) -> str:
    """A dataset and source name from the URL's last path part (``/v2/getUpdates`` -> ``get_updates``);
    one a built-in dataset or table has is prefixed with the part before it (``shop_c_products``),
    or ``my_``."""
    parts = [p.rsplit(".", 1)[0] for p in urlsplit(url).path.split("/") if p and not re.fullmatch(r"v\d+", p)]
    name = column_name((parts[-1] if parts else urlsplit(url).hostname or "api",)).removesuffix("_value")
    taken = {*BUILTIN, *(d.table for d in BUILTIN.values())}
    if name in taken:
        name = column_name((parts[-2], parts[-1])) if len(parts) > 1 else f"my_{name}"
    return name[:63]


def draft_catalog(shape: ApiShape, name: str, auth: Mapping[str, str] | None = None) -> str:
    """The TOML text of ``[datasets.NAME]`` and ``[sources.NAME]`` for ``shape``, and a nested
    dataset ``[datasets.NAME_LIST]`` for each list of objects in the records."""
    lists = object_lists(shape.records)
    columns = [c for c in infer_columns(shape.records) if c.path not in lists]
    key = key_candidate(columns, shape.records)
    times = [c for c in columns if c.type == "timestamp"]
    changed = next((c for c in times if any(w in c.name for w in _TIME_WORDS)), None)
    lines = [f"# Drafted by `ingest catalog draft` from {shape.url}",
             f"# ({shape.requests} requests, {len(shape.records)} sample records).",
             *(f"# - {note}" for note in shape.notes),
             "# Read it through: the types come from the values seen, the key from the values being unique.",
             "# Add the checks you know (required, min, max, max_length, one_of, pattern).",
             "",
             f"[datasets.{name}]",
             f"table = {_toml(name)}"]
    if key:
        reason = "unique in every record seen" if len(key) == 1 else "unique together in every record seen"
        lines.append(f"key = {_toml(key)}  # {reason}")
    else:
        lines.append("key = []  # no unique field was found in the sample: name the record's natural key")
    lines.append('write = "merge"  # a changed record replaces the stored one; "append", "replace", "history": '
                 'docs/datasets.md')
    if changed is not None:
        lines.append(f"# version_column = {_toml(changed.name)}  # merge: replace a stored row only with a newer one")
        lines.append(f"# time_column = {_toml(changed.name)}  # the column cursors and backfill windows use")
    lines += ["", f"[datasets.{name}.columns]"]
    for column in columns:
        lines.append(f"{_key(column.name)} = {_column(column, column.name in key)}")
    lines += ["", f"[sources.{name}]", f"kind = {_toml(shape.source['kind'])}", f"dataset = {_toml(name)}",
              f"url = {_toml(shape.url)}"]
    for key_name in _SOURCE_KEYS:
        if key_name in shape.source and shape.source[key_name] != _DEFAULTS.get(key_name):
            lines.append(f"{key_name} = {_toml(shape.source[key_name])}")
    if shape.source.get("params"):
        lines.append(f"params = {_toml(shape.source['params'])}")
    if auth:
        lines.append(f"auth = {_toml(dict(auth))}")
    fields = {c.name: c.path for c in columns if c.name != c.path}
    if fields:
        lines.append(f"fields = {_toml(fields)}")
    if changed is not None:
        lines += ["# Incremental runs: name the API's \"changed since\" query parameter, then uncomment:",
                  f"# cursor_field = {_toml(changed.name)}", '# since_param = "updated_since"']
    for path, found in lists.items():
        lines += ["", *_nested_dataset(name, path, found, key)]
    return "\n".join(lines) + "\n"


def _nested_dataset(parent: str, path: str, lists: list[list[dict[str, Any]]], parent_key: list[str]) -> list[str]:
    """The lines of a nested dataset for the list of objects at ``path`` (``lists``: those seen)."""
    name = f"{parent}_{column_name(tuple(path.split('.')))}"[:63]
    columns = []
    for column in infer_columns([item for items in lists for item in items]):
        if column.name in parent_key or column.name == ITEM_INDEX:  # the parent's key columns come first
            column = replace(column, name=f"item_{column.name}"[:63])
        columns.append(column)
    key = item_key_candidate(columns, lists)
    lines = [f"[datasets.{name}]  # the items of each record's {path!r}, one row each",
             f"nested_in = {_toml(parent)}", f"path = {_toml(path)}"]
    lines.append(f"key = {_toml(key)}  # unique within each record's list" if key
                 else "# no key unique within each list was found: an item is identified by its position (item_index)")
    fields = {c.name: c.path for c in columns if c.name != c.path}
    if fields:
        lines.append(f"fields = {_toml(fields)}")
    lines += ["", f"[datasets.{name}.columns]"]
    lines += [f"{_key(c.name)} = {_column(c, c.name in key)}" for c in columns]
    return lines


def _column(column: DraftColumn, in_key: bool) -> str:
    if in_key:
        return f"{{ type = {_toml(column.type)}, required = true }}"
    return _toml(column.type)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _toml(value: Any) -> str:
    """A TOML value; JSON's strings, numbers and booleans are valid TOML."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
