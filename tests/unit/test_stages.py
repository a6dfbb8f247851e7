import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_workers.catalog import load_catalog
from ingest_workers.core.models import Lineage, Record, Reject, Rejected, SourceSpec
from ingest_workers.datasets import BUILTIN, PRODUCTS
from ingest_workers.load.loader import copy_text
from ingest_workers.stages.base import PerRecord, compose, default_stages, map_fields
from ingest_workers.stages.registry import source_stages
from ingest_workers.testing import DEMO_CATALOG
from tests.helpers import served_record

LINEAGE = Lineage("shop", "run-1", "job-1", "2026-01-01T00:00:00+00:00")
FIELDS = {"product_id": "id", "name": "title", "price": "price.amount"}


def run(raw: list[Any]) -> list[Record | Rejected]:
    return list(compose(default_stages(FIELDS, PRODUCTS, LINEAGE), (Record(r) for r in raw)))


def test_records_are_mapped_validated_and_stamped() -> None:
    [item] = run([{"id": 7, "title": "Kettle", "price": {"amount": "12,50 EUR"}}])
    assert isinstance(item, Record)
    assert item.row["product_id"] == "7"
    assert item.row["currency"] == "EUR"
    assert item.row["source"] == "shop" and item.row["run_id"] == "run-1" and item.row["job_id"] == "job-1"
    assert item.row["raw"] == {"id": 7, "title": "Kettle", "price": {"amount": "12,50 EUR"}}


def test_a_bad_record_is_rejected_and_the_rest_flow_on() -> None:
    items = run([{"id": 1, "title": "A", "price": {"amount": 1}}, "not an object",
                 {"id": 2, "title": "B", "price": {"amount": -3}}, {"id": 3, "title": "C", "price": {"amount": 2}}])
    assert [type(i).__name__ for i in items] == ["Record", "Rejected", "Rejected", "Record"]
    assert items[1].reason == "record is a JSON str, not an object" and items[1].stage == "map"
    assert items[2].reason == "price: -3 is below the minimum 0" and items[2].stage == "validate"


def test_stages_are_lazy() -> None:
    pulled = []

    def source():
        for i in range(1_000_000):
            pulled.append(i)
            yield Record({"id": i, "title": "x", "price": {"amount": 1}})

    stream = compose(default_stages(FIELDS, PRODUCTS, LINEAGE), source())
    next(stream)
    next(stream)
    assert pulled == [0, 1]


def test_rejections_pass_later_stages_untouched() -> None:
    rejected = Rejected({"a": 1}, "earlier", "map")
    boom = PerRecord("boom", lambda record: 1 / 0)
    assert list(boom.process([rejected])) == [rejected]


def test_missing_mapped_path_is_none() -> None:
    [item] = list(map_fields({"name": "a.b.c"}).process([Record({"a": {"b": 5}})]))
    assert item.row["name"] is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
product_like = st.fixed_dictionaries(
    {}, optional={"id": json_values, "title": json_values, "price": json_values, "currency": json_values,
                  "category": json_values, "in_stock": json_values, "updated_at": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(product_like | json_values, max_size=5))
def test_arbitrary_json_is_loaded_or_rejected_never_raised(raw: list[Any]) -> None:
    items = run(raw)
    assert len(items) == len(raw)
    for item in items:
        if isinstance(item, Rejected):
            assert item.reason
        else:
            json.dumps({k: v for k, v in item.row.items() if k not in ("price", "raw")})
            assert item.row["price"] >= 0


def _mutate(record: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    for path, value in changes:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[last] = value
    return record


def served_then_broken(source: str, paths: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A record as the source serves it, with up to three fields replaced by arbitrary JSON values:
    this reaches every stage and the loader's encoding, where wholly random objects stop at the first check."""
    return st.builds(_mutate, st.integers(0, 2000).map(lambda i: served_record(source, i)),
                     st.lists(st.tuples(st.sampled_from(paths), json_values), max_size=3))


CATALOG_SPECS = list(load_catalog(DEMO_CATALOG, {}).sources.values())


@pytest.mark.parametrize("spec", CATALOG_SPECS, ids=lambda spec: spec.name)
def test_every_catalog_source_turns_arbitrary_json_into_loadable_rows_or_rejections(spec: SourceSpec) -> None:
    dataset = BUILTIN[spec.dataset]
    paths = sorted({*spec.fields.values(), *served_record(spec.name, 0), *dataset.column_names})

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(served_then_broken(spec.name, paths) | json_values, max_size=5))
    def check(raw: list[Any]) -> None:
        items = list(compose(source_stages(spec, dataset, LINEAGE), (Record(r) for r in raw)))
        assert len(items) == len(raw)
        for item in items:
            if isinstance(item, Rejected):
                assert item.reason and item.stage
            else:
                assert set(dataset.load_columns) <= set(item.row)
                copy_text([item.row], dataset.load_columns)  # what the loader sends: must not raise
                dataset.natural_key(item.row)

    check()


def _refuse_when(name: str, divisor: int) -> PerRecord:
    def apply(record: Record) -> Record:
        if isinstance(record.raw, int) and record.raw % divisor == 0:
            raise Reject(f"{name}: {record.raw} divisible by {divisor}")
        record.row = {**record.row, name: True}
        return record

    return PerRecord(name, apply)


class _Doubler:
    """A stage that is not a PerRecord: breaks a run of PerRecord stages in two."""

    name = "double"

    def process(self, items):
        for item in items:
            if isinstance(item, Record):
                item.row = {**item.row, "doubled": True}
            yield item


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60) | st.just("earlier"), max_size=40),
       st.lists(st.sampled_from([2, 3, 5, 7, 0]), min_size=1, max_size=6))
def test_fused_stages_give_what_stage_by_stage_gives(raws: list[Any], divisors: list[int]) -> None:
    """compose() runs consecutive PerRecord stages in one loop: the same items, rejections naming
    the stage that refused, earlier rejections passed through, in the same order."""
    stages = [_Doubler() if d == 0 else _refuse_when(f"s{i}", d) for i, d in enumerate(divisors)]

    def items() -> list[Record | Rejected]:
        return [Rejected(r, "before", "fetch") if r == "earlier" else Record(r) for r in raws]

    one_by_one: Any = items()
    for stage in stages:
        one_by_one = stage.process(one_by_one)
    expected = [(type(i).__name__, i.raw, getattr(i, "row", None), getattr(i, "reason", None),
                 getattr(i, "stage", None)) for i in one_by_one]
    got = [(type(i).__name__, i.raw, getattr(i, "row", None), getattr(i, "reason", None),
            getattr(i, "stage", None)) for i in compose(stages, items())]
    assert got == expected
