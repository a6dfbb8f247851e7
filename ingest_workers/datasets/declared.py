"""Datasets declared in TOML (``[datasets.NAME]``): a table, its natural key, typed columns with
constraints, and how a changed record is written. Read from the user's catalog and from the
package's own ``builtin.toml``; the declaration travels inside each RQ job (as the dict of
:meth:`Dataset.to_dict`), so a worker needs no catalog file.

Every error names the dataset and the key it came from. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.errors import ConfigError
from ..core.models import Reject
from .base import LINEAGE_COLUMNS, Domain
from .checks import checked_text
from .types import NUMBER_TYPES, TEXT_TYPES, TYPES, UNLIMITED, as_money, as_text

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
WRITES = ("append", "merge")
# Columns every dataset's table has besides its declared ones; a declaration may not use these names.
RESERVED_COLUMNS = frozenset({*LINEAGE_COLUMNS, "raw", "loaded_at"})
# The package's own tables: a dataset may not be stored in one of them.
SYSTEM_TABLES = frozenset({"rejected_records", "ingest_jobs", "source_cursors", "alerts", "schema_migrations"})
_DATASET_KEYS = {"table", "key", "write", "version_column", "time_column", "indexes", "columns", "stages", "prepare"}
_COLUMN_KEYS = {"type", "required", "min", "max", "max_length", "one_of", "pattern", "default", "case",
                "currency_column", "scale", "computed"}


@dataclass(frozen=True)
class Column:
    """One declared column: its type, its constraints, and where its value comes from."""

    name: str
    type: str
    required: bool = False
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    one_of: tuple[Any, ...] | None = None
    pattern: str | None = None
    default: Any = None  # the value of a record that has none
    case: str | None = None  # "lower" | "upper": text is changed to that case before the checks
    currency_column: str | None = None  # money: the column that receives the currency the amount named
    scale: int | None = None  # numeric, money: decimals kept (rounded half to even)
    computed: bool = False  # filled by a stage (sentiment, moving average, ...), not read from the record

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in sorted(_COLUMN_KEYS - {"type"}):
            value = getattr(self, name)
            if value is not None and value is not False:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Dataset:
    name: str
    table: str
    key: tuple[str, ...]  # the natural key; the table's unique key is (source, *key)
    columns: tuple[Column, ...]
    write: str = "append"
    version_column: str | None = None
    time_column: str | None = None
    indexes: tuple[tuple[str, ...], ...] = ()
    stages: tuple[Any, ...] | None = None  # run after the checks unless a source names its own
    prepare: tuple[Any, ...] = ()  # stages run on the mapped record before the checks (what no type covers)
    _domain: Domain | None = field(default=None, compare=False, repr=False)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The declaration as the catalog would write it (what travels in a job)."""
        out: dict[str, Any] = {"table": self.table, "key": list(self.key), "write": self.write,
                               "columns": {c.name: c.to_dict() for c in self.columns},
                               "indexes": [list(i) for i in self.indexes], "prepare": list(self.prepare)}
        for name in ("version_column", "time_column"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.stages is not None:
            out["stages"] = list(self.stages)
        return out

    @property
    def domain(self) -> Domain:
        """What the stages, the loader and the sinks work with."""
        if self._domain is None:
            domain = Domain(name=self.name, table=self.table, key=("source", *self.key),
                            fields=tuple(c.name for c in self.columns), check=RowCheck(self.columns),
                            time_field=self.time_column, default_stages=self.stages or (), prepare=self.prepare,
                            write=self.write, version_column=self.version_column, dataset=self)
            object.__setattr__(self, "_domain", domain)
        return self._domain  # type: ignore[return-value]


class RowCheck:
    """A mapped record -> the dataset's row, each column read by its type and checked against its
    constraints; the first value that fails raises :class:`Reject` naming the column and the rule.

    Each column's reading is put together once, from only the checks it declares: this runs for
    every record."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        # Money first: the currency its text names fills the currency column read after it.
        self._readers = tuple([(c.name, _money_reader(c)) for c in columns if c.type == "money"]
                              + [(c.name, _column_reader(c)) for c in columns if c.type != "money"])

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        implied: dict[str, Any] = {}  # a currency the money text named, for its currency column
        get = record.get
        return {name: read(get(name), implied) for name, read in self._readers}


Reader = Callable[[Any, dict[str, Any]], Any]


def _column_reader(column: Column) -> Reader:
    name, default, required = column.name, column.default, column.required
    if column.computed:
        return lambda value, implied: None
    if column.type == "text":
        return _text_reader(column)
    read = TYPES[column.type][0]
    steps = _steps(column)

    def value_of(value: Any, implied: dict[str, Any]) -> Any:
        if value is not None:
            value = read(name, value)
        if value is None:
            value = implied.get(name, default) if implied else default
            if value is None:
                if required:
                    raise Reject(f"{name}: required value missing")
                return None
        for step in steps:
            value = step(value)
        return value

    return value_of


def _text_reader(column: Column) -> Reader:
    """The most common column, read in one function (it runs for most columns of every record)."""
    name, default, required, limit = column.name, column.default, column.required, column.max_length
    pattern = re.compile(column.pattern) if column.pattern else None
    change = None if column.case is None else str.lower if column.case == "lower" else str.upper
    allowed = frozenset(column.one_of) if column.one_of is not None else None
    listed = ", ".join(map(str, column.one_of or ()))

    def text_of(value: Any, implied: dict[str, Any]) -> Any:
        if value.__class__ is str:
            text = value.strip() or None
            if text is not None and ("\x00" in text or not text.isascii()):
                checked_text(name, text, UNLIMITED)  # NUL or a lone surrogate: refused with its reason
        else:
            text = None if value is None else as_text(name, value)
        if text is None:
            text = implied.get(name, default) if implied else default
            if text is None:
                if required:
                    raise Reject(f"{name}: required value missing")
                return None
        if change is not None:
            text = change(text)
        if limit is not None and len(text) > limit:
            raise Reject(f"{name}: {len(text)} characters is above the maximum length {limit}")
        if pattern is not None and not pattern.fullmatch(text):
            raise Reject(f"{name}: {_shown(text)} does not match the pattern {column.pattern}")
        if allowed is not None and text not in allowed:
            raise Reject(f"{name}: {_shown(text)} is not one of {listed}")
        return text

    return text_of


def _money_reader(column: Column) -> Reader:
    name, default, required, companion = column.name, column.default, column.required, column.currency_column
    bounded = _bounds_step(column)

    def amount_of(value: Any, implied: dict[str, Any]) -> Any:
        if value is None:
            value = default
        if value is None:
            if required:
                raise Reject(f"{name}: required value missing")
            return None
        amount, currency = as_money(name, value)
        if companion and currency:
            implied[companion] = currency
        return bounded(amount) if bounded is not None else amount

    return amount_of


def _steps(column: Column) -> list[Callable[[Any], Any]]:
    """What a present value goes through after its type's reader, in order."""
    name, steps = column.name, []
    if column.case is not None:
        change = str.lower if column.case == "lower" else str.upper
        steps.append(lambda value: change(value) if isinstance(value, str) else value)
    if column.type in TEXT_TYPES and (column.max_length is not None or column.pattern):
        limit, pattern = column.max_length, re.compile(column.pattern) if column.pattern else None

        def check_text(text: str) -> None:
            if limit is not None and len(text) > limit:
                raise Reject(f"{name}: {len(text)} characters is above the maximum length {limit}")
            if pattern is not None and not pattern.fullmatch(text):
                raise Reject(f"{name}: {_shown(text)} does not match the pattern {column.pattern}")

        def texts(value: Any) -> Any:
            for text in value if isinstance(value, list) else (value,):
                check_text(text)
            return value

        steps.append(texts)
    if column.one_of is not None:
        allowed, listed = frozenset(column.one_of), ", ".join(map(str, column.one_of))

        def one_of(value: Any) -> Any:
            if value not in allowed:
                raise Reject(f"{name}: {_shown(value)} is not one of {listed}")
            return value

        steps.append(one_of)
    bounded = _bounds_step(column) if column.type in NUMBER_TYPES else None
    if bounded is not None:
        steps.append(bounded)
    return steps


def _bounds_step(column: Column) -> Callable[[Any], Any] | None:
    # Bounds as exact decimals: the float 9999999999.99 is a little below the amount "9999999999.99".
    name, low, high = column.name, _exact(column.min), _exact(column.max)
    quantum = Decimal(1).scaleb(-column.scale) if column.scale is not None else None
    if low is None and high is None and quantum is None:
        return None

    def bounded(number: Any) -> Any:
        if low is not None and number < low:
            raise Reject(f"{name}: {number} is below the minimum {low:f}")
        if high is not None and number > high:
            raise Reject(f"{name}: {number} is above the maximum {high:f}")
        if quantum is not None:
            return (number if isinstance(number, Decimal) else Decimal(str(number))).quantize(quantum)
        return number

    return bounded


def _exact(bound: int | float | None) -> Decimal | None:
    return None if bound is None else Decimal(repr(bound))


def _shown(value: Any) -> str:
    return repr(value[:40]) if isinstance(value, str) else str(value)


def parse_dataset(name: str, entry: Any, where: str = "") -> Dataset:
    """Check one ``[datasets.NAME]`` table (or a dict from :meth:`Dataset.to_dict`)."""
    prefix, where = where, f"{where}[datasets.{name}]"
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{where}: a dataset name must be lowercase letters, digits and '_'")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _DATASET_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_DATASET_KEYS))}")
    table = entry.get("table", name)
    if not isinstance(table, str) or not IDENTIFIER.fullmatch(table):
        raise ConfigError(f"{where} key 'table': expected a lowercase table name, got {table!r}")
    if table in SYSTEM_TABLES:
        raise ConfigError(f"{where} key 'table': {table!r} is one of the package's own tables; choose another")
    columns_table = entry.get("columns")
    if not isinstance(columns_table, Mapping) or not columns_table:
        raise ConfigError(f"{where}: missing [datasets.{name}.columns], the table of column = type")
    write = entry.get("write", "append")
    if write not in WRITES:
        raise ConfigError(f"{where} key 'write': expected \"append\" or \"merge\", got {write!r}")
    key = _names(where, "key", entry.get("key"), columns_table)
    if not key:
        raise ConfigError(f"{where}: missing required key 'key', the list of columns that identify a record")
    version_column = _one_name(where, "version_column", entry.get("version_column"), columns_table)
    if version_column is not None and write != "merge":
        raise ConfigError(f"{where} key 'version_column': only a merge dataset has one (write = \"merge\")")
    # The key and the version are what a row is matched and ordered by: a record without them is refused.
    must_have = {*key, *([version_column] if version_column else [])}
    columns_where = f"{prefix}[datasets.{name}.columns]"
    columns = tuple(_parse_column(columns_where, column, spec, column in must_have)
                    for column, spec in columns_table.items())
    _check_cross_references(columns_where, columns)
    for column in columns:
        if column.name in must_have and column.computed:
            raise ConfigError(f"{where} key 'key': {column.name!r} is computed by a stage; a key is read from "
                              "the record")
    indexes_value = entry.get("indexes", [])
    if not isinstance(indexes_value, list) or not all(isinstance(i, list) and i for i in indexes_value):
        raise ConfigError(f"{where} key 'indexes': expected a list of column lists, e.g. [[\"email\"]]")
    indexed = {**columns_table, **dict.fromkeys(RESERVED_COLUMNS)}
    indexes = tuple(_names(where, "indexes", i, indexed) for i in indexes_value)
    stages, prepare = entry.get("stages"), entry.get("prepare", [])
    for key_name, value in (("stages", stages), ("prepare", prepare)):
        if value is not None and not isinstance(value, list):
            raise ConfigError(f"{where} key {key_name!r}: expected a list of stage names or tables")
    return Dataset(name=name, table=table, key=key, columns=columns, write=write, version_column=version_column,
                   time_column=_one_name(where, "time_column", entry.get("time_column"), columns_table),
                   indexes=indexes, stages=tuple(stages) if stages is not None else None, prepare=tuple(prepare))


def _names(where: str, key: str, value: Any, known: Mapping[str, Any]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} key {key!r}: expected a list of column names, got {value!r}")
    for name in value:
        if name not in known:
            raise ConfigError(f"{where} key {key!r}: {name!r} is not a declared column; declared: "
                              f"{', '.join(k for k in known if k not in RESERVED_COLUMNS)}")
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
    unknown = sorted(set(spec) - _COLUMN_KEYS)
    if unknown:
        raise ConfigError(f"{here}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_COLUMN_KEYS))}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{here}: unknown type {kind!r}; known types: {', '.join(TYPES)}")
    values = {k: v for k, v in spec.items() if k != "type"}
    _check_constraints(here, kind, values)
    if must_have:
        values["required"] = True
    if "one_of" in values:
        values["one_of"] = tuple(values["one_of"])
    return Column(name=name, type=kind, **values)


def _check_constraints(here: str, kind: str, values: dict[str, Any]) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    rules: dict[str, tuple[bool, str]] = {
        "required": (isinstance(values.get("required"), bool), "true or false"),
        "computed": (isinstance(values.get("computed"), bool), "true or false"),
        "min": (number(values.get("min")) and kind in NUMBER_TYPES, "a number, on an integer, numeric or money column"),
        "max": (number(values.get("max")) and kind in NUMBER_TYPES, "a number, on an integer, numeric or money column"),
        "max_length": (isinstance(values.get("max_length"), int) and not isinstance(values.get("max_length"), bool)
                       and values.get("max_length", 0) > 0 and kind in TEXT_TYPES,
                       "a whole number above 0, on a text or text[] column"),
        "one_of": (isinstance(values.get("one_of"), list) and bool(values.get("one_of"))
                   and kind in {"text", "integer"}, "a list of values, on a text or integer column"),
        "pattern": (isinstance(values.get("pattern"), str) and kind in TEXT_TYPES,
                    "a regular expression, on a text or text[] column"),
        "case": (values.get("case") in ("lower", "upper") and kind in TEXT_TYPES, "\"lower\" or \"upper\", on text"),
        "currency_column": (isinstance(values.get("currency_column"), str) and kind == "money",
                            "a text column's name, on a money column"),
        "scale": (isinstance(values.get("scale"), int) and 0 <= values.get("scale", -1) <= 20
                  and kind in {"numeric", "money"}, "0 to 20 decimals, on a numeric or money column"),
        "default": (values.get("default") is not None, "a value"),
    }
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
