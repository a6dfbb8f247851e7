"""The compiled record path (``stages/compiled.py``) and the generated COPY serialiser
(``load/copygen.py``) against the reference they replace: the same random pages (valid records,
every kind of invalid value, unicode, huge numbers, missing and nested fields, every column type and
constraint) through both must give the same rows, in the same key order, and the same rejects with
the same reasons, and the same COPY text. The expected values are the reference path's, which the
rest of the suite pins down on its own fixtures."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Lineage, Record, Reject, Rejected
from ingest_workers.datasets import BUILTIN, Dataset, parse_dataset
from ingest_workers.load.copygen import copy_serialiser
from ingest_workers.load.loader import copy_text
from ingest_workers.stages.base import PerRecord, compose, default_stages
from ingest_workers.stages.compiled import CompiledRecordPath, compiled_stages

LINEAGE = Lineage("src", "run-1", "job-1", "2026-01-01T00:00:00+00:00")
NAMES = ("a", "b", "c", "d", "e", "f")

texts = st.one_of(
    st.text(max_size=12), st.text(alphabet="ABCxyz09 .-\t\n\\", max_size=8),
    st.sampled_from(["", "  ", "USD", "eur", " x ", "a\x00b", "\ud800", "ÉCLAIR", "ß", "12,50 EUR", "$1,299.00",
                     "€3", "2026-01-31", "2026-01-31T10:00:00Z", "2026-01-31T10:00:00+02:00", "2026-13-01",
                     "true", "FALSE", "42", " -7 ", "1e3", "NaN", "Infinity", "9" * 30, "99999999999.999"]))
numbers = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
                    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, -(2**63), 1e11, 1.5e12, 9999999999.99,
                                     0.000001, 1e308, math.inf, math.nan]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["amount", "currency", "x", "0"]), inner,
                                                 max_size=3)), max_leaves=6)


@st.composite
def columns(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "integer", "numeric", "money", "boolean", "timestamp", "date", "json",
                                 "text[]"]))
    spec: dict[str, Any] = {"type": kind}
    if draw(st.booleans()):
        spec["required"] = True
    if kind in ("integer", "numeric", "money"):
        for bound in ("min", "max"):
            if draw(st.booleans()):
                spec[bound] = draw(st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)))
        if kind != "integer" and draw(st.booleans()):
            spec["scale"] = draw(st.integers(0, 6))
    if kind in ("text", "text[]"):
        if draw(st.booleans()):
            spec["max_length"] = draw(st.integers(1, 10))
        if draw(st.booleans()):
            spec["pattern"] = draw(st.sampled_from(["[A-Z]{3}", "[a-z0-9 ]*", ".*x.*"]))
        if draw(st.booleans()):
            spec["case"] = draw(st.sampled_from(["lower", "upper"]))
    if kind in ("text", "integer") and draw(st.booleans()):
        spec["one_of"] = draw(st.lists(st.sampled_from(["USD", "usd", "x", 1, 2, 42]) if kind == "text" else
                                       st.integers(-3, 50), min_size=1, max_size=3))
    if draw(st.integers(0, 4)) == 0:
        spec["default"] = draw(scalars)
    if draw(st.integers(0, 8)) == 0:
        spec["computed"] = True
    return spec


@st.composite
def datasets(draw: st.DrawFn, most: int = 5) -> Dataset:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=most, unique=True))
    declared = {name: draw(columns(name)) for name in names}
    money = [n for n, spec in declared.items() if spec["type"] == "money"]
    text = [n for n, spec in declared.items() if spec["type"] == "text"]
    if money and text and draw(st.booleans()):
        declared[money[0]]["currency_column"] = draw(st.sampled_from(text))
    key = [n for n in names if not declared[n].get("computed")][:1] or [names[0]]
    declared[key[0]].pop("computed", None)
    try:
        return parse_dataset("random", {"table": "random", "key": key, "columns": declared})
    except ConfigError:
        assume(False)
        raise


@st.composite
def mappings(draw: st.DrawFn, dataset: Dataset) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """Some columns read from another field, a nested one or a list item; some are constants; some
    come from the scope (a child source's parent record)."""
    fields, constants, parent = {}, {}, {}
    for column in dataset.columns:
        choice = draw(st.integers(0, 8))
        if choice < 3:
            fields[column.name] = (f"src_{column.name}", f"nested.{column.name}", f"list_{column.name}.0")[choice]
        elif choice == 3:
            constants[column.name] = draw(st.one_of(valid(column), scalars))
        elif choice == 4:
            fields[column.name] = f"parent.{column.name}"
            if draw(st.integers(0, 3)):
                parent[column.name] = draw(st.one_of(valid(column), scalars))
    return fields, constants, ({"parent": parent} if draw(st.booleans()) or parent else {})


def valid(column: Any) -> st.SearchStrategy[Any]:
    """Values a column of this declaration takes (mostly): what makes a whole record get through."""
    low = column.min if column.min is not None else -1e9
    high = column.max if column.max is not None else 1e9
    if column.one_of is not None:
        return st.sampled_from(column.one_of)
    if column.type == "text":
        plain = st.from_regex(column.pattern, fullmatch=True) if column.pattern else st.text(min_size=1, max_size=12)
        return st.one_of(plain, plain.map(lambda t: f" {t} "))
    if column.type == "text[]":  # items up to one past the limit, now and then one that is refused
        item = st.text(alphabet="abcXYZ 19\"\\\\\t", max_size=(column.max_length or 8) + 1)
        return st.lists(st.one_of(item, item, item, st.sampled_from(["a\x00b", "é", "\ud800", 1])), max_size=3)
    whole = st.integers(math.ceil(low), math.floor(high)) if math.ceil(low) <= math.floor(high) else st.integers()
    if column.type == "integer":
        return whole
    if column.type in ("numeric", "money"):
        return st.one_of(st.floats(low, high), whole) if low <= high else st.floats()
    kinds = {"boolean": st.booleans(), "json": values,
             "timestamp": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.integers(0, 2 * 10**12),
                                    st.datetimes().map(lambda d: d.isoformat(timespec="seconds") + "Z"),
                                    st.datetimes().map(lambda d: d.isoformat(timespec="seconds") + "+00:00"),
                                    st.sampled_from(["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z"])),
             "date": st.dates().map(lambda d: d.isoformat())}
    return kinds[column.type]


@st.composite
def records(draw: st.DrawFn, dataset: Dataset, fields: dict[str, str]) -> Any:
    """Mostly objects holding each column where the mapping reads it, the value mostly valid for
    the column, else anything, or one of its edges (bounds, default, text with blanks around it);
    sometimes a column is missing; sometimes the record is no object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.lists(scalars, max_size=2), scalars))
    edges = [v for c in dataset.columns for v in (c.min, c.max, c.default) if v is not None]
    edgy = st.one_of(st.sampled_from(edges), st.sampled_from(edges).map(str)) if edges else st.nothing()
    wild = st.one_of(texts, texts.map(lambda t: f" {t} "), numbers, values, edgy)
    record: dict[str, Any] = {}
    for column in dataset.columns:
        kind = draw(st.integers(0, 11))
        if kind == 0:
            continue  # missing
        value = draw(wild if kind == 1 else valid(column))
        path = fields.get(column.name, column.name)
        if path.startswith("nested."):
            record.setdefault("nested", {})[column.name] = value
        elif path.startswith("list_"):
            record[path[:-2]] = [value]
        else:
            record[path] = value
    if draw(st.booleans()):
        record["other"] = draw(wild)
    return record


def _shown(items: list[Any]) -> list[tuple[Any, ...]]:
    """Each item by type, row (with its key order, numbers by their repr) or reason and stage."""
    return [(type(i).__name__, repr(list(i.row.items()))) if isinstance(i, Record) else
            (type(i).__name__, i.reason, i.stage, repr(i.raw)) for i in items]


def _both(dataset: Dataset, fields: dict[str, str], constants: dict[str, Any], page: list[Any],
          extra: list[Any] | None = None, scope: dict[str, Any] | None = None) -> tuple[list[Any], list[Any]]:
    reference = default_stages(fields, dataset, LINEAGE, extra or [], constants, (), scope)
    compiled = compiled_stages(reference, dataset, fields, constants, LINEAGE, scope)
    assert compiled is not None
    return _outcome(reference, page), _outcome(compiled, page)


def _outcome(stages: list[Any], page: list[Any]) -> list[Any]:
    """The items, or the exception a declaration the reference cannot apply raised (a default of
    another type under ``case``): the compiled path must fail alike."""
    try:
        return list(compose(stages, [Record(raw) for raw in page]))
    except (TypeError, ValueError, ArithmeticError) as exc:
        return [Rejected(None, type(exc).__name__, "raised")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_compiled_path_gives_the_reference_rows_and_rejects(data: st.DataObject) -> None:
    dataset = data.draw(datasets())
    fields, constants, scope = data.draw(mappings(dataset))
    page = data.draw(st.lists(records(dataset, fields), max_size=6))
    reference, compiled = _both(dataset, fields, constants, page, scope=scope)
    assert _shown(compiled) == _shown(reference)
    rows = [item.row for item in reference if isinstance(item, Record)]
    assert copy_serialiser(dataset)(rows) == copy_text(rows, dataset.load_columns)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_each_column_alone_gives_the_reference_rows_and_rejects(data: st.DataObject) -> None:
    """Datasets of one or two columns: each type's fast branch meets its edges far more often."""
    dataset = data.draw(datasets(most=2))
    fields, constants, scope = data.draw(mappings(dataset))
    page = data.draw(st.lists(records(dataset, fields), min_size=1, max_size=8))
    reference, compiled = _both(dataset, fields, constants, page, scope=scope)
    assert _shown(compiled) == _shown(reference)
    rows = [item.row for item in reference if isinstance(item, Record)]
    assert copy_serialiser(dataset)(rows) == copy_text(rows, dataset.load_columns)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_generated_serialiser_writes_any_row_as_copy_text_does(data: st.DataObject) -> None:
    """Stages may put any value in a row (a user's stage too): the serialiser writes what copy_text writes."""
    dataset = data.draw(st.sampled_from(list(BUILTIN.values())))
    cells = st.one_of(values, st.decimals(allow_nan=True), st.just(Decimal("1.10")))
    rows = data.draw(st.lists(st.fixed_dictionaries({}, optional={c: cells for c in dataset.load_columns}),
                              max_size=4))
    assert copy_serialiser(dataset)(rows) == copy_text(rows, dataset.load_columns)


def test_builtin_datasets_on_their_own_shapes() -> None:
    """Products as a shop serves them, one of each kind of reject, through both paths."""
    products = BUILTIN["products"]
    page = [{"id": "SKU-1", "title": "Lamp", "price": 12.5, "currency": "EUR", "category": ["home"],
             "in_stock": True, "updated_at": "2026-01-01T00:00:00Z"},
            {"id": "SKU-2", "title": "Desk", "price": "$1,299.00", "in_stock": "yes"},
            {"id": "SKU-3", "title": "", "price": 1},
            {"id": "SKU-4", "title": "Cup", "price": -1},
            ["not", "an", "object"]]
    reference, compiled = _both(products, {"product_id": "id", "name": "title"}, {}, page)
    assert _shown(compiled) == _shown(reference)
    assert [type(item).__name__ for item in compiled] == ["Record", "Rejected", "Rejected", "Rejected", "Rejected"]
    assert compiled[0].row["price"] == Decimal("12.50") and compiled[0].row["source"] == "src"
    assert compiled[1].reason == "in_stock: expected true or false, got 'yes'"
    assert compiled[4].stage == "map"


def test_a_users_stage_still_runs_between_the_checks_and_the_lineage() -> None:
    """An entry's own stage sees the checked row, as on the reference path; its rejects name it."""

    def shout(record: Record) -> Record:
        if record.row["name"] == "quiet":
            raise Reject("too quiet")
        record.row["name"] = record.row["name"].upper()
        return record

    products = BUILTIN["products"]
    page = [{"product_id": "1", "name": "lamp", "price": 1}, {"product_id": "2", "name": "quiet", "price": 1}]
    reference, compiled = _both(products, {}, {}, page, [PerRecord("shout", shout)])
    assert _shown(compiled) == _shown(reference)
    assert compiled[0].row["name"] == "LAMP" and compiled[0].row["run_id"] == "run-1"
    assert isinstance(compiled[1], Rejected) and (compiled[1].stage, compiled[1].reason) == ("shout", "too quiet")


def test_prepare_stages_keep_the_reference_path() -> None:
    mentions = BUILTIN["mentions"]
    assert compiled_stages(default_stages({}, mentions, LINEAGE), mentions, {}, {}, LINEAGE) is None


def test_names_reach_the_generated_code_as_values_only() -> None:
    path = CompiledRecordPath(BUILTIN["products"], {"name": "x'); import os; ('"}, {"currency": "'); 1/0; ('"})
    assert "import os" not in path.source and "1/0" not in path.source
