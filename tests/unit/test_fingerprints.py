"""Fingerprints of merge datasets (pure); the Redis filter itself runs Lua scripts, so its tests use the
real server (tests/integration/test_dedup.py)."""

from ingest_workers.core.config import load_settings
from ingest_workers.datasets import parse_dataset
from ingest_workers.load.dedup import fingerprint


def test_a_fingerprint_is_of_the_values_loaded() -> None:
    dataset = parse_dataset("items", {"key": ["id"], "write": "merge",
                                     "columns": {"id": "text", "price": "numeric"}})
    first, same, changed = {"id": "a", "price": 1}, {"id": "a", "price": 1, "raw": {"x": 1}}, {"id": "a", "price": 2}
    assert fingerprint(dataset, first) == fingerprint(dataset, same)  # lineage and payload do not count
    assert fingerprint(dataset, first) != fingerprint(dataset, changed)


def test_with_a_version_column_the_version_is_the_fingerprint() -> None:
    dataset = parse_dataset("items", {"key": ["id"], "write": "merge", "version_column": "v",
                                     "columns": {"id": "text", "v": "integer", "price": "numeric"}})
    same_version = fingerprint(dataset, {"id": "a", "v": 3, "price": 1})
    assert same_version == fingerprint(dataset, {"id": "a", "v": 3, "price": 9})


def test_the_filter_expiry_is_a_setting() -> None:
    assert load_settings(env={"INGEST_DEDUP_TTL": "86400"}).dedup_ttl == 86400
