"""The lifecycle modes of a dataset's declaration (issue 27): ``write = "replace"`` and
``"history"``, ``deleted_column``, and what each refuses, in one sentence naming the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Counts, SourceSpec
from ingest_workers.datasets import parse_dataset
from ingest_workers.load.dedup import fingerprint
from ingest_workers.load.history_schema import mode_refusal, table_key
from ingest_workers.runtime.producer import not_windowable

COLUMNS = {"sku": "text", "price": "money", "updated_at": "timestamp", "is_deleted": "boolean", "version": "integer"}


def _dataset(**entry: object):
    return parse_dataset("items", {"key": ["sku"], "columns": COLUMNS, **entry}, "catalog.toml: ")


def test_the_issue_s_catalog_syntax_reads_back_from_what_a_job_carries() -> None:
    for entry in ({"write": "replace"}, {"write": "merge", "deleted_column": "is_deleted"},
                  {"write": "history", "version_column": "updated_at"},
                  {"write": "history", "deleted_column": "is_deleted"}):
        dataset = _dataset(**entry)
        assert dataset.write == entry["write"]
        assert parse_dataset("items", dataset.to_dict()) == dataset
    assert _dataset(write="merge", deleted_column="is_deleted").deleted_column == "is_deleted"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"write": "append", "deleted_column": "is_deleted"},
         "key 'deleted_column': only a merge or history dataset has one (write = \"merge\" or \"history\"), "
         "this one is write = 'append'"),
        ({"write": "replace", "deleted_column": "is_deleted"}, "key 'deleted_column': only a merge or history"),
        ({"write": "replace", "version_column": "updated_at"}, "key 'version_column': only a merge or history"),
        ({"write": "merge", "deleted_column": "price"}, "key 'deleted_column': 'price' must be a boolean column"),
        ({"write": "merge", "deleted_column": "gone"}, "key 'deleted_column': 'gone' is not a declared column"),
        ({"write": "history", "version_column": "version"},
         "key 'version_column': a history dataset's version is the time a version starts (valid_from): "
         "'version' must be a timestamp column"),
        ({"write": "history", "columns": {**COLUMNS, "valid_to": "timestamp"}},
         "key 'valid_to': every table has this column already"),
        ({"write": "scd2"}, "key 'write': expected one of 'append', 'merge', 'replace', 'history', got 'scd2'"),
    ],
)
def test_a_mode_that_does_not_fit_is_refused_naming_the_key(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _dataset(**entry)
    assert message in str(caught.value)
    assert str(caught.value).startswith("catalog.toml: [datasets.items")


def test_backfill_windows_and_replace_are_refused_together_in_one_sentence() -> None:
    declaration = _dataset(write="replace", time_column="updated_at").to_dict()
    spec = SourceSpec(name="shop", kind="http_json", dataset="items", url="http://127.0.0.1/x",
                      declaration=declaration, cursor_field="updated_at", since_param="since", until_param="until")
    reason = not_windowable(spec)
    assert reason is not None and reason.count(".") == 0 and "write = \"replace\"" in reason
    merge = SourceSpec(name="shop", kind="http_json", dataset="items", url="http://127.0.0.1/x",
                       declaration={**declaration, "write": "merge"}, cursor_field="updated_at",
                       since_param="since", until_param="until")
    assert not_windowable(merge) is None


def test_a_deletion_that_keeps_the_version_is_not_hidden_by_the_dedup_filter() -> None:
    dataset = _dataset(write="merge", version_column="updated_at", deleted_column="is_deleted")
    row = {"sku": "a", "price": 1, "updated_at": datetime(2026, 3, 1), "is_deleted": False, "version": 1}
    assert fingerprint(dataset, row) != fingerprint(dataset, {**row, "is_deleted": True})
    assert fingerprint(dataset, row) == fingerprint(dataset, {**row, "price": 2})  # the version decides


def test_migrate_refuses_switching_between_history_and_one_row_per_key() -> None:
    history, merge = _dataset(write="history"), _dataset(write="merge")
    assert table_key(history) == ("source", "sku", "valid_from") and table_key(merge) == ("source", "sku")
    one_row = {"sku": ..., "source": ...}
    versions = {**one_row, "valid_from": ..., "valid_to": ...}
    assert "load the history into a new table (table = \"items_history\")" in mode_refusal(history, one_row)
    assert "declare write = \"history\" again" in mode_refusal(merge, versions)
    for write in ("append", "merge", "replace"):
        assert mode_refusal(_dataset(write=write), one_row) is None
    assert mode_refusal(history, versions) is None


def test_deleted_joins_the_counts_identity() -> None:
    counts = Counts(fetched=10, rejected=1, duplicate=2, loaded=3, updated=1, deleted=3)
    assert counts.unaccounted() == 0 and counts.to_dict()["deleted"] == 3


def test_drift_counts_the_top_level_fields_no_column_reads() -> None:
    from ingest_workers.datasets.drift import FieldDrift, merge_drift, new_field_lines, read_fields

    dataset = _dataset(write="merge")
    read = read_fields(dataset, {"updated_at": "meta.updatedAt", "is_deleted": "deleted"}, {"version": 1})
    assert read == frozenset({"sku", "price", "meta", "deleted"})
    drift = FieldDrift(read)
    for record in ({"sku": "a", "meta": {"updatedAt": 1}, "discount": 5, "rating": 1}, {"sku": "b", "discount": 0},
                   "not an object"):
        drift.observe(record)
    assert drift.to_dict() == {"records": 2, "fields": {"discount": 2, "rating": 1}}
    both = merge_drift([drift.to_dict(), {"records": 3, "fields": {"discount": 3}}])
    assert new_field_lines(both) == ["new field 'discount' in 5 of 5 records", "new field 'rating' in 1 of 5 records"]


def test_drift_of_records_of_many_shapes_counts_each_field_once_per_record() -> None:
    """Records are counted by their fields' shape, folded into the counts when shapes pile up."""
    from ingest_workers.datasets.drift import FieldDrift

    drift = FieldDrift(frozenset({"sku"}))
    for i in range(1_000):  # a field of its own every 4th record, the others in one of two orders
        record = {"sku": i, f"extra{i}": 1} if i % 4 == 0 else {"sku": i, "a": 1} if i % 4 == 1 else {"a": 1, "sku": i}
        drift.observe(record)
    drift.observe([1, 2])
    expected = {"a": 750, **{f"extra{i}": 1 for i in range(0, 1_000, 4)}}
    assert drift.to_dict() == {"records": 1_000, "fields": expected}
    drift.observe({"sku": 1, "a": 2})
    assert drift.to_dict() == {"records": 1_001, "fields": {**expected, "a": 751}}


def test_nested_datasets_follow_a_replace_or_history_parent_one_level_deep_under_history() -> None:
    from ingest_workers.datasets import resolve_nested

    def nested(parent: str, name: str, column: str) -> Any:
        return parse_dataset(name, {"nested_in": parent, "path": column, "key": [column],
                                    "columns": {column: "text"}})

    declared = {"items": _dataset(write="replace"), "item_tags": nested("items", "item_tags", "tag"),
                "tag_notes": nested("item_tags", "tag_notes", "note")}
    resolved = resolve_nested(declared)  # switched with their parents, at any depth
    assert resolved["items"].nested[0].write == resolved["tag_notes"].write == "replace"
    declared["items"] = _dataset(write="history")
    with pytest.raises(ConfigError) as refused:
        resolve_nested(declared)
    assert str(refused.value) == (
        "[datasets.tag_notes] key 'nested_in': 'item_tags' is nested in the history dataset 'items', whose items "
        "are kept per version of their record, and items of those items would need versions of their own, which "
        "are not kept: query the list in the raw column of 'item_tags', or declare 'items' with write = \"merge\" "
        "to nest deeper")
    del declared["tag_notes"]
    assert resolve_nested(declared)["items"].nested[0].write == "history"  # its items are kept per version


def test_drift_counts_the_fields_of_nested_items_no_column_of_their_dataset_reads() -> None:
    from ingest_workers.datasets import resolve_nested
    from ingest_workers.datasets.drift import FieldDrift, merge_drift, new_field_lines, read_fields

    declared = {"items": _dataset(write="replace"),
                "item_labels": parse_dataset("item_labels", {"nested_in": "items", "path": "meta.labels",
                                                             "key": ["label_id"], "fields": {"label_id": "id"},
                                                             "columns": {"label_id": "integer", "name": "text"}}),
                "label_votes": parse_dataset("label_votes", {"nested_in": "item_labels", "path": "votes",
                                                             "columns": {"user": "text"}})}
    items = resolve_nested(declared)["items"]
    drift = FieldDrift(read_fields(items, {}, {}), items)
    drift.observe({"sku": "a", "meta": {"labels": [{"id": 1, "name": "x", "color": "red"},
                                                   {"id": 2, "color": "blue", "votes": [{"user": "u", "up": 1}]},
                                                   "not an object"]}})
    drift.observe({"sku": "b", "meta": {"labels": {"not": "a list"}}})
    drift.observe({"sku": "c", "meta": {"labels": [{"id": 3, "name": "y"}]}, "rating": 4})
    assert drift.to_dict() == {"records": 3, "items": {"meta.labels": 3, "meta.labels[].votes": 1},
                               "fields": {"meta.labels[].color": 2, "meta.labels[].votes[].up": 1, "rating": 1}}
    assert new_field_lines(merge_drift([drift.to_dict(), {"records": 1, "fields": {}}])) == [
        "new field 'meta.labels[].color' in 2 of 3 items", "new field 'meta.labels[].votes[].up' in 1 of 1 items",
        "new field 'rating' in 1 of 4 records"]
