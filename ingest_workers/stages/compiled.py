"""The record path compiled once per dataset: map, row check and lineage stamp fused into one
generated loop, with each column read by code specialised to its declared type and constraints.

The reference stages (:func:`~.base.default_stages`: ``map`` -> ``validate`` -> ``enrich``) run every
value through the dataset's readers, one Python call (or several) per column, and every record through
a chain of stage objects. The code generated here reads a column inline when its value has the shape
almost every record has (text that is ASCII and needs no escape check, an ``int`` inside the bounds,
a finite ``float`` price, ...) and hands anything else to the reference reader of that column, which
returns the same value or raises the same :class:`Reject`. So the rows and the rejects are those of the
reference path by construction, and a property test (``tests/unit/test_compiled_path.py``) holds the two
to it on random datasets and records.

Only the declared shape is generated, never a name: column names, field paths and constants reach
the code as values of its namespace, so a catalog cannot inject code. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..core.models import Lineage, Record, Reject, Rejected
from ..core.paths import value_at_parts
from ..datasets import Dataset
from ..datasets.model import Column
from ..datasets.rowcheck import text_rule
from ..datasets.types import NUMBER_TYPES, TYPES
from .base import Item, PerRecordChain, Stage, enrich, map_fields, validate

_SIMPLE_TYPES = frozenset({"timestamp", "date", "json", "boolean", "text[]"})  # read by the type's reader


class CompiledRecordPath:
    """Stage: items in, items out, as ``map`` -> ``validate`` (-> ``enrich`` when ``lineage`` is
    given) would yield them, made by one loop generated from ``dataset``, ``fields`` and ``constants``."""

    name = "map+validate"

    def __init__(self, dataset: Dataset, fields: dict[str, str], constants: dict[str, Any] | None = None,
                 lineage: Lineage | None = None, scope: Mapping[str, Any] | None = None) -> None:
        reference: list[Any] = [map_fields(fields, constants, scope), validate(dataset)]
        if lineage is not None:
            reference.append(enrich(lineage))
        scoped = dict(scope or {})
        # A field read from the scope (a child's parent record, a partition) is the same for every record
        from_scope = {target: value_at_parts(scoped, path.split(".")) for target, path in fields.items()
                      if path.split(".")[0] in scoped}
        self._source = _Generator(dataset, fields, dict(constants or {}), lineage, from_scope).source()
        namespace = self._namespace(dataset, fields, dict(constants or {}), lineage,
                                    PerRecordChain(tuple(reference)))
        namespace["SCOPED"] = from_scope
        exec(compile(self._source, f"<record path of dataset {dataset.name}>", "exec"), namespace)  # noqa: S102
        self.process: Callable[[Iterable[Item]], Iterator[Item]] = namespace["process"]

    @property
    def source(self) -> str:
        """The generated Python (for a curious reader and for the profile)."""
        return self._source

    @staticmethod
    def _namespace(dataset: Dataset, fields: dict[str, str], constants: dict[str, Any], lineage: Lineage | None,
                   reference: PerRecordChain) -> dict[str, Any]:
        readers = dict(dataset.check.readers)
        namespace: dict[str, Any] = {
            "Record": Record, "Rejected": Rejected, "Reject": Reject, "REFERENCE": reference.process,
            "D": Decimal, "FINITE": math.isfinite, "UTC_TEXT": _utc_text, "ONLY_TEXT": {str}, "DIG": value_at_parts,
            "K": constants}
        for index, column in enumerate(dataset.columns):
            rule = text_rule(column)
            namespace.update({
                f"N{index}": column.name, f"R{index}": readers[column.name], f"P{index}": fields.get(column.name,
                                                                                                     "").split("."),
                f"RULE{index}": rule, f"READ{index}": TYPES[column.type][0],
                f"LOW{index}": _exact(column.min), f"HIGH{index}": _exact(column.max),
                f"PATTERN{index}": re.compile(column.pattern).fullmatch if column.pattern else None,
                f"ONE_OF{index}": frozenset(column.one_of) if column.one_of is not None else None,
                f"Q{index}": Decimal(1).scaleb(-column.scale) if column.scale is not None else None})
        if lineage is not None:
            namespace.update({"SOURCE": lineage.source, "RUN": lineage.run_id, "JOB": lineage.job_id,
                              "FETCHED": lineage.fetched_at})
        return namespace


def compiled_stages(stages: Sequence[Stage], dataset: Dataset, fields: dict[str, str],
                    constants: dict[str, Any] | None, lineage: Lineage,
                    scope: Mapping[str, Any] | None = None) -> list[Stage] | None:
    """The stage list of a source with its leading ``map`` and ``validate`` (and a trailing
    ``enrich`` right after them) replaced by one :class:`CompiledRecordPath`; ``None`` when the
    dataset has ``prepare`` stages, which must see the mapped record before the checks (the reference
    path then runs). The stages after ``validate`` (the dataset's or the entry's, built-in or a user's)
    run as they are, on the same rows."""
    if dataset.prepare:
        return None
    extra = list(stages[2:-1])  # map, validate, *extra, enrich: see default_stages
    if not extra:
        return [CompiledRecordPath(dataset, fields, constants, lineage, scope)]
    return [CompiledRecordPath(dataset, fields, constants, scope=scope), *extra, stages[-1]]


_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|\+00:00)").fullmatch


def _utc_text(value: Any) -> str | None:
    """A timestamp already in the form the reference writes, but for its offset (``...T10:00:00Z``):
    that text with ``+00:00``, once :meth:`datetime.fromisoformat` accepts it; ``None`` for any other
    value, which the reference reader then reads."""
    if value.__class__ is not str or not _ISO_UTC(value):
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return None
    return value[:19] + "+00:00"


def _exact(bound: int | float | None) -> Decimal | None:
    return None if bound is None else Decimal(repr(bound))


class _Generator:
    """The Python source of ``process`` for one dataset and one source's field mapping."""

    def __init__(self, dataset: Dataset, fields: dict[str, str], constants: dict[str, Any],
                 lineage: Lineage | None, from_scope: dict[str, Any]) -> None:
        self._dataset, self._fields, self._constants, self._lineage = dataset, fields, constants, lineage
        self._from_scope = from_scope
        self._companions = {c.currency_column for c in dataset.columns if c.type == "money" and c.currency_column}

    def source(self) -> str:
        columns = list(enumerate(self._dataset.columns))
        # The reference reads money first: the currency its text names fills the currency column.
        order = [ic for ic in columns if ic[1].type == "money"] + [ic for ic in columns if ic[1].type != "money"]
        body = [line for index, column in order for line in self._column(index, column)]
        entries = [f"N{index}: c{index}" for index, _ in order]
        if self._lineage is not None:
            entries += ["'source': SOURCE", "'run_id': RUN", "'job_id': JOB", "'fetched_at': FETCHED", "'raw': raw"]
        lines = [
            "def process(items):",
            "    for item in items:",
            "        if item.__class__ is not Record or (raw := item.raw).__class__ is not dict:",
            "            yield from (REFERENCE((item,)) if not isinstance(item, Rejected) else (item,))",
            "            continue",
            "        g = raw.get",
            "        implied = {}",
            "        try:",
            *("            " + line for line in body),
            "        except Reject as exc:",
            "            yield Rejected(raw, exc.reason, 'validate')",
            "            continue",
            "        item.row = {" + ", ".join(entries) + "}",
            "        yield item",
        ]
        return "\n".join(lines) + "\n"

    def _value(self, index: int, column: Column) -> str:
        """The expression of the column's mapped value, as ``map`` computes it."""
        if column.name in self._constants:
            return f"K[N{index}]"
        if column.name in self._from_scope:
            return f"SCOPED[N{index}]"
        path = self._fields.get(column.name)
        if path is None:
            return f"g(N{index})"
        return f"g(P{index}[0])" if "." not in path else f"DIG(raw, P{index})"

    def _column(self, index: int, column: Column) -> list[str]:
        value, reference = self._value(index, column), f"R{index}(v, implied)"
        if column.computed and column.type != "money":  # the reference reads a money column even so
            return [f"c{index} = None"]
        fast = self._fast(index, column)
        if fast is None:
            return [f"c{index} = {reference.replace('v,', value + ',')}"]
        condition, result = fast
        missing = self._missing(column)
        lines = [f"v = {value}", f"if {condition}:", f"    c{index} = {result}"]
        if missing is not None:
            lines += ["elif v is None:", f"    c{index} = None"]
        return [*lines, "else:", f"    c{index} = {reference}"]

    def _missing(self, column: Column) -> str | None:
        """A missing value is simply NULL when nothing fills it: no default, not required, and no
        money column names a currency for it."""
        if column.default is None and not column.required and column.name not in self._companions:
            return "None"
        return None

    def _fast(self, i: int, column: Column) -> tuple[str, str] | None:
        """(condition on ``v``, the clean value) for the common shape of the column's values."""
        kind = column.type
        if kind == "text":
            return self._text(i, column), "t"
        if kind == "money":
            bounds = "".join(f" and {bound}" for bound, limit in ((f"LOW{i} <= a", column.min),
                                                                  (f"a <= HIGH{i}", column.max)) if limit is not None)
            return (f"((k := v.__class__) is float and FINITE(v) or k is int) and (a := D(str(v))) is a{bounds}",
                    "a" if column.scale is None else f"a.quantize(Q{i})")
        if kind in NUMBER_TYPES:
            return self._number(i, column)
        if column.one_of is not None:
            return None
        if kind == "boolean":
            return "v is True or v is False", "v"
        if kind == "text[]":
            return self._text_list(i, column)
        if kind == "timestamp":
            return "(t := UTC_TEXT(v)) is not None", "t"
        if kind in _SIMPLE_TYPES:
            return "v is not None", f"READ{i}(N{i}, v)"
        return None

    @staticmethod
    def _text(i: int, column: Column) -> str:
        parts = ["v.__class__ is str and (t := v.strip()) and t.isascii() and '\\x00' not in t"]
        if column.case is not None:
            parts.append(f"(t := t.{column.case}())")
        if column.max_length is not None:
            parts.append(f"len(t) <= {int(column.max_length)}")
        if column.pattern is not None:
            parts.append(f"PATTERN{i}(t) is not None")
        if column.one_of is not None:
            parts.append(f"t in ONE_OF{i}")
        return " and ".join(parts)

    @staticmethod
    def _text_list(i: int, column: Column) -> tuple[str, str]:
        """A non-empty list of ASCII text without NUL, each item within the rules (items are not stripped)."""
        change = f".{column.case}()" if column.case is not None else ""
        result = f"[t{change} for t in v]" if change else "v[:]"
        if column.pattern is None:  # every item checked at once, in C: all text, ASCII, no NUL, short enough
            limit = f" and max(map(len, v)) <= {int(column.max_length)}" if column.max_length is not None else ""
            return (f"v.__class__ is list and v and {{*map(type, v)}} == ONLY_TEXT and (j := ''.join(v)).isascii() "
                    f"and '\\x00' not in j{limit}", result)
        item = ["t.__class__ is str and t.isascii() and '\\x00' not in t"]
        if column.max_length is not None:
            item.append(f"len(t) <= {int(column.max_length)}")
        if column.pattern is not None:
            item.append(f"PATTERN{i}(t{change}) is not None")
        return f"v.__class__ is list and v and all({' and '.join(item)} for t in v)", result

    @staticmethod
    def _number(i: int, column: Column) -> tuple[str, str] | None:
        if column.one_of is not None or column.scale is not None:
            return None
        shape = "v.__class__ is int" if column.type == "integer" else \
            "((k := v.__class__) is int or k is float and FINITE(v))"
        if column.type == "integer":
            shape += " and -9223372036854775807 <= v <= 9223372036854775807"
        bounds = "".join(f" and {bound}" for bound, limit in ((f"LOW{i} <= v", column.min),
                                                              (f"v <= HIGH{i}", column.max)) if limit is not None)
        return shape + bounds, "v"
