"""Read a dataset's declaration: a ``[datasets.NAME]`` table of a catalog or of ``builtin.toml``,
or the dict a job carries (:meth:`~.model.Dataset.to_dict`), into a :class:`~.model.Dataset`.

Every error names the dataset and the key it came from, and a misspelt key or type names the
nearest known one. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..core.errors import ConfigError
from ..core.suggest import did_you_mean
from .defaults import check_default
from .model import COLUMN_KEYS, ITEM_INDEX, LINEAGE_COLUMNS, Column, Dataset
from .nesting import attach
from .types import NUMBER_TYPES, TEXT_TYPES, TYPES

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
WRITES = ("append", "merge", "replace", "history")
# Columns every dataset's table has besides its declared ones; a declaration may not use these names.
RESERVED_COLUMNS = frozenset({*LINEAGE_COLUMNS, "raw", "loaded_at", "valid_from", "valid_to"})
# The package's own tables: a dataset may not be stored in one of them.
SYSTEM_TABLES = frozenset({"rejected_records", "ingest_jobs", "source_cursors", "alerts", "schema_migrations"})
DATASET_KEYS = frozenset({"table", "key", "write", "version_column", "time_column", "indexes", "columns", "stages",
                          "prepare", "stats", "nested", "deleted_column"})
# A nested dataset's keys (``nested``: the datasets nested in it, as a job carries them).
NESTED_KEYS = frozenset({"table", "nested_in", "path", "key", "fields", "columns", "indexes", "time_column",
                         "nested"})


def parse_dataset(name: str, entry: Any, where: str = "") -> Dataset:
    """Check one ``[datasets.NAME]`` table (or a dict from :meth:`Dataset.to_dict`); ``where``
    prefixes every error (the catalog's path)."""
    prefix, where = where, f"{where}[datasets.{name}]"
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{where}: a dataset name must be lowercase letters, digits and '_'")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a table")
    if "nested_in" in entry and "nested" in entry:
        raise ConfigError(f"{where} key 'nested': declare a dataset nested in {name!r} as its own "
                          f"[datasets.NAME] with nested_in = \"{name}\"")
    dataset = _parse_nested(name, entry, where) if "nested_in" in entry else _parse_top(name, entry, where, prefix)
    return _with_nested(dataset, entry.get("nested", {}), prefix, where)


def _parse_top(name: str, entry: Mapping[str, Any], where: str, prefix: str) -> Dataset:
    _no_unknown_keys(where, entry, DATASET_KEYS)
    table = _table(where, entry.get("table", name))
    columns_table = entry.get("columns")
    if not isinstance(columns_table, Mapping) or not columns_table:
        raise ConfigError(f"{where}: missing [datasets.{name}.columns], the table of column = type")
    write = entry.get("write", "append")
    if write not in WRITES:
        raise ConfigError(f"{where} key 'write': expected one of {', '.join(map(repr, WRITES))}, got {write!r}")
    key = _names(where, "key", entry.get("key"), columns_table)
    if not key:
        raise ConfigError(f"{where}: missing required key 'key', the list of columns that identify a record")
    version_column, deleted_column = _lifecycle_columns(where, entry, write, columns_table)
    columns = _columns(where, f"{prefix}[datasets.{name}.columns]", columns_table,
                       {*key, *([version_column] if version_column else [])})
    if deleted_column is not None and _declared_type(columns, deleted_column) != "boolean":
        raise ConfigError(f"{where} key 'deleted_column': {deleted_column!r} must be a boolean column")
    if write == "history" and version_column is not None and _declared_type(columns, version_column) != "timestamp":
        raise ConfigError(f"{where} key 'version_column': a history dataset's version is the time a version "
                          f"starts (valid_from): {version_column!r} must be a timestamp column")
    stages, prepare = _stage_lists(where, entry)
    stats = entry.get("stats", False)
    if not isinstance(stats, bool):
        raise ConfigError(f"{where} key 'stats': expected true or false, got {stats!r}")
    return Dataset(name=name, table=table, key=key, columns=columns, write=write, version_column=version_column,
                   deleted_column=deleted_column,
                   time_column=_one_name(where, "time_column", entry.get("time_column"), columns_table),
                   indexes=_indexes(where, entry.get("indexes", []), columns_table), stages=stages,
                   prepare=prepare, stats=stats)


def _lifecycle_columns(where: str, entry: Mapping[str, Any], write: str,
                       columns_table: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``version_column`` and ``deleted_column``: only a merge or history dataset has them."""
    version_column = _one_name(where, "version_column", entry.get("version_column"), columns_table)
    deleted_column = _one_name(where, "deleted_column", entry.get("deleted_column"), columns_table)
    for key_name, value in (("version_column", version_column), ("deleted_column", deleted_column)):
        if value is not None and write not in ("merge", "history"):
            raise ConfigError(f"{where} key {key_name!r}: only a merge or history dataset has one "
                              f"(write = \"merge\" or \"history\"), this one is write = {write!r}")
    if deleted_column is not None and deleted_column in entry.get("key", []):
        raise ConfigError(f"{where} key 'deleted_column': {deleted_column!r} is part of the key")
    return version_column, deleted_column


def _declared_type(columns: tuple[Column, ...], name: str) -> str | None:
    """The declared type of column ``name``, if it is declared."""
    return next((c.type for c in columns if c.name == name), None)


def _parse_nested(name: str, entry: Mapping[str, Any], where: str) -> Dataset:
    """A nested dataset alone (its parent's key is added by :func:`~.nesting.attach`): its key is
    the declared one, else the item's position (``item_index``)."""
    _no_unknown_keys(where, entry, NESTED_KEYS)
    parent, path = entry["nested_in"], entry.get("path")
    if not isinstance(parent, str) or not IDENTIFIER.fullmatch(parent):
        raise ConfigError(f"{where} key 'nested_in': expected a dataset's name, got {parent!r}")
    if not isinstance(path, str) or not path or "" in path.split("."):
        raise ConfigError(f"{where} key 'path': expected the dotted path of a list in the parent's records "
                          f"(\"labels\", \"lines.data\"), got {path!r}")
    columns_table = entry.get("columns")
    if not isinstance(columns_table, Mapping) or not columns_table:
        raise ConfigError(f"{where}: missing [datasets.{name}.columns], the table of column = type "
                          "(a list of scalars: value = \"text\")")
    if ITEM_INDEX in columns_table:
        raise ConfigError(f"{where} key 'columns': {ITEM_INDEX!r} is the item's position, every nested table "
                          "without a key has it; choose another name")
    key = _names(where, "key", entry.get("key"), columns_table) or (ITEM_INDEX,)
    fields = entry.get("fields", {})
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) and v for v in fields.values()):
        raise ConfigError(f"{where} key 'fields': expected a table of column = \"dotted.path\" in the item")
    _names(where, "fields", list(fields), columns_table)
    columns = _columns(where, f"{where}.columns", columns_table, set(key))
    if key == (ITEM_INDEX,):
        columns = (Column(ITEM_INDEX, "integer", required=True), *columns)
    return Dataset(name=name, table=_table(where, entry.get("table", name)), key=key, columns=columns,
                   time_column=_one_name(where, "time_column", entry.get("time_column"), columns_table),
                   indexes=_indexes(where, entry.get("indexes", []), columns_table), nested_in=parent,
                   path=path, fields=tuple(fields.items()))


def _with_nested(parent: Dataset, table: Any, prefix: str, where: str) -> Dataset:
    """``parent`` with the datasets nested in it as a job carries them (``nested = {NAME = {...}}``)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} key 'nested': expected a table of nested datasets")
    children = []
    for name, entry in table.items():
        child = parse_dataset(name, {k: v for k, v in entry.items() if k != "nested"}, prefix) \
            if isinstance(entry, Mapping) else parse_dataset(name, entry, prefix)
        if child.nested_in != parent.name:
            raise ConfigError(f"{where} key 'nested': {name!r} is not nested in {parent.name!r}")
        children.append(_with_nested(attach(parent, child), entry.get("nested", {}), prefix, where))
    return replace(parent, nested=tuple(children)) if children else parent


def _no_unknown_keys(where: str, entry: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], known)}; "
                          f"known keys: {', '.join(sorted(known))}")


def _table(where: str, table: Any) -> str:
    if not isinstance(table, str) or not IDENTIFIER.fullmatch(table):
        raise ConfigError(f"{where} key 'table': expected a lowercase table name, got {table!r}")
    if table in SYSTEM_TABLES:
        raise ConfigError(f"{where} key 'table': {table!r} is one of the package's own tables; choose another")
    return table


def _columns(where: str, columns_where: str, table: Mapping[str, Any], must_have: set[str]) -> tuple[Column, ...]:
    """The declared columns; ``must_have`` (the key and the version, what a row is matched and
    ordered by) are required: a record without them is refused."""
    columns = tuple(_parse_column(columns_where, column, spec, column in must_have) for column, spec in table.items())
    _check_cross_references(columns_where, columns)
    for column in columns:
        if column.name in must_have and column.computed:
            raise ConfigError(f"{where} key 'key': {column.name!r} is computed by a stage; a key is read from "
                              "the record")
    return columns


def _indexes(where: str, value: Any, columns_table: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not all(isinstance(i, list) and i for i in value):
        raise ConfigError(f"{where} key 'indexes': expected a list of column lists, e.g. [[\"email\"]]")
    indexed = {**columns_table, **dict.fromkeys(RESERVED_COLUMNS)}
    return tuple(_names(where, "indexes", i, indexed) for i in value)


def _stage_lists(where: str, entry: Mapping[str, Any]) -> tuple[tuple[Any, ...] | None, tuple[Any, ...]]:
    """``stages`` (None: not declared) and ``prepare``, each a list of stage names or tables."""
    stages, prepare = entry.get("stages"), entry.get("prepare", [])
    for key_name, value in (("stages", stages), ("prepare", prepare)):
        if value is not None and not isinstance(value, list):
            raise ConfigError(f"{where} key {key_name!r}: expected a list of stage names or tables")
    return (tuple(stages) if stages is not None else None), tuple(prepare)


def _names(where: str, key: str, value: Any, known: Mapping[str, Any]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} key {key!r}: expected a list of column names, got {value!r}")
    declared = [k for k in known if k not in RESERVED_COLUMNS]
    for name in value:
        if name not in known:
            raise ConfigError(f"{where} key {key!r}: {name!r} is not a declared column{did_you_mean(name, known)}; "
                              f"declared: {', '.join(declared)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} key {key!r}: a column is named twice in {value!r}")
    return tuple(value)


def _one_name(where: str, key: str, value: Any, known: Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} key {key!r}: expected a column name, got {value!r}")
    return _names(where, key, [value], known)[0]


def _parse_column(where: str, name: str, spec: Any, must_have: bool) -> Column:
    here = f"{where} key {name!r}"
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{here}: a column name must be lowercase letters, digits and '_'")
    if name in RESERVED_COLUMNS:
        raise ConfigError(f"{here}: every table has this column already ({', '.join(sorted(RESERVED_COLUMNS))}); "
                          "choose another name")
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{here}: expected a type (\"text\") or a table ({{ type = \"text\", required = true }})")
    _no_unknown_keys(here, spec, COLUMN_KEYS)
    kind = spec.get("type")
    if kind not in TYPES:
        hint = did_you_mean(kind, TYPES) if isinstance(kind, str) else ""
        raise ConfigError(f"{here}: unknown type {kind!r}{hint}; known types: {', '.join(TYPES)}")
    values = {k: v for k, v in spec.items() if k != "type"}
    _check_constraints(here, kind, values)
    if must_have:
        values["required"] = True
    if "one_of" in values:
        values["one_of"] = tuple(values["one_of"])
    column = Column(name=name, type=kind, **values)
    check_default(here, column)
    return column


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _constraint_rules(kind: str, values: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """Each constraint key -> (whether ``values`` holds an allowed value for a ``kind`` column, what is expected)."""
    length, scale = values.get("max_length"), values.get("scale")
    return {
        "required": (isinstance(values.get("required"), bool), "true or false"),
        "computed": (isinstance(values.get("computed"), bool), "true or false"),
        "min": (_is_number(values.get("min")) and kind in NUMBER_TYPES,
                "a number, on an integer, numeric or money column"),
        "max": (_is_number(values.get("max")) and kind in NUMBER_TYPES,
                "a number, on an integer, numeric or money column"),
        "max_length": (isinstance(length, int) and not isinstance(length, bool) and length > 0
                       and kind in TEXT_TYPES, "a whole number above 0, on a text or text[] column"),
        "one_of": (isinstance(values.get("one_of"), list) and bool(values.get("one_of"))
                   and kind in {"text", "integer"}, "a list of values, on a text or integer column"),
        "pattern": (isinstance(values.get("pattern"), str) and kind in TEXT_TYPES,
                    "a regular expression, on a text or text[] column"),
        "case": (values.get("case") in ("lower", "upper") and kind in TEXT_TYPES, "\"lower\" or \"upper\", on text"),
        "currency_column": (isinstance(values.get("currency_column"), str) and kind == "money",
                            "a text column's name, on a money column"),
        "scale": (isinstance(scale, int) and not isinstance(scale, bool) and 0 <= scale <= 20
                  and kind in {"numeric", "money"}, "0 to 20 decimals, on a numeric or money column"),
        "default": (values.get("default") is not None, "a value"),
    }


def _check_constraints(here: str, kind: str, values: dict[str, Any]) -> None:
    rules = _constraint_rules(kind, values)
    for key in values:
        ok, expected = rules[key]
        if not ok:
            raise ConfigError(f"{here} {key!r}: expected {expected}, got {values[key]!r} (type {kind})")
    if "pattern" in values:
        try:
            re.compile(values["pattern"])
        except re.error as exc:
            raise ConfigError(f"{here} 'pattern': not a regular expression: {exc}") from None
    if "min" in values and "max" in values and values["min"] > values["max"]:
        raise ConfigError(f"{here}: min {values['min']} is above max {values['max']}")


def _check_cross_references(where: str, columns: tuple[Column, ...]) -> None:
    names = {c.name: c for c in columns}
    for column in columns:
        target = names.get(column.currency_column or "")
        if column.currency_column and (target is None or target.type != "text"):
            raise ConfigError(f"{where} key {column.name!r} 'currency_column': {column.currency_column!r} is not "
                              "a declared text column")
