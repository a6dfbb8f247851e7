"""Nested datasets without I/O: the declaration (parsed, attached to its parent by the catalog, and
read back from the parent's declaration in a job), the item rows made from parent rows, with
each refused item's reason naming its place, the fingerprint that sees a changed list, and the
catalog draft that proposes nested datasets."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ingest_workers.catalog import load_catalog, parse_job
from ingest_workers.cli import main
from ingest_workers.core.errors import ConfigError
from ingest_workers.core.models import Counts
from ingest_workers.core.plugins import PluginAllowlist
from ingest_workers.datasets import parse_dataset, resolve_nested
from ingest_workers.datasets.nesting import item_rows
from ingest_workers.load.dedup import fingerprint
from ingest_workers.testing.fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer

DATASETS = """
[datasets.issues]
key = ["number"]
write = "merge"
[datasets.issues.columns]
number = "integer"
title = "text"

[datasets.issue_labels]
nested_in = "issues"
path = "labels"
key = ["label_id"]
fields = { label_id = "id" }
[datasets.issue_labels.columns]
label_id = { type = "integer", required = true }
name = "text"
color = { type = "text", pattern = "^[0-9a-f]{6}$" }

[datasets.issue_tags]
nested_in = "issues"
path = "tags"
[datasets.issue_tags.columns]
value = "text"

[datasets.label_words]
nested_in = "issue_labels"
path = "meta.words"
[datasets.label_words.columns]
value = { type = "text", max_length = 5 }
"""
SOURCE = """
[sources.widgets]
kind = "http_json"
dataset = "issues"
url = "http://127.0.0.1:1/issues"
"""
LINEAGE = {"source": "widgets", "run_id": "r", "job_id": "j", "fetched_at": "2026-01-01T00:00:00+00:00"}


def datasets(text: str = DATASETS) -> dict[str, Any]:
    return resolve_nested({n: parse_dataset(n, e) for n, e in tomllib.loads(text)["datasets"].items()})


def catalog(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalog(path, {})


def test_a_nested_table_has_its_parent_s_key_then_the_item_s() -> None:
    resolved = datasets()
    labels, tags, words = resolved["issue_labels"], resolved["issue_tags"], resolved["label_words"]
    assert labels.unique_key == ("source", "number", "label_id") and labels.parent_key == ("number",)
    assert labels.column_names == ("number", "label_id", "name", "color") and labels.write == "merge"
    assert tags.unique_key == ("source", "number", "item_index") and tags.column_names[:2] == ("number", "item_index")
    assert words.parent_key == ("number", "label_id") and words.item_key == ("item_index",)
    assert [d.name for d in resolved["issues"].family] == ["issues", "issue_labels", "label_words", "issue_tags"]


def test_the_parent_s_declaration_carries_its_nested_datasets_into_the_job(tmp_path: Path) -> None:
    found = catalog(tmp_path, DATASETS + SOURCE)
    spec = found.sources["widgets"]
    assert parse_job(spec.to_dict(), PluginAllowlist()) == spec  # the worker's parse of the job
    declaration = spec.declaration
    assert set(declaration["nested"]) == {"issue_labels", "issue_tags"}
    assert set(declaration["nested"]["issue_labels"]["nested"]) == {"label_words"}
    assert parse_dataset("issues", declaration) == found.datasets["issues"]  # what the worker reads
    assert found.datasets["label_words"] == found.datasets["issues"].nested[0].nested[0]


@pytest.mark.parametrize(("text", "message"), [
    (DATASETS.replace('nested_in = "issues"\npath = "labels"', 'nested_in = "issuez"\npath = "labels"'),
     "[datasets.issue_labels] key 'nested_in': unknown dataset 'issuez'"),
    (DATASETS.replace('nested_in = "issues"\npath = "tags"', 'nested_in = "label_words"\npath = "tags"')
     .replace('nested_in = "issue_labels"', 'nested_in = "issue_tags"'), "datasets nested in a circle"),
    (DATASETS.replace('path = "tags"\n', ''), "key 'path': expected the dotted path of a list"),
    (DATASETS.replace('name = "text"', 'number = "text"'), "'number' is a key column of 'issues'"),
    (DATASETS.replace('fields = { label_id = "id" }', 'fields = { label = "id" }'),
     "key 'fields': 'label' is not a declared column"),
    (DATASETS.replace('path = "tags"', 'path = "tags"\nwrite = "append"'), "unknown key 'write'"),
    (DATASETS.replace('value = "text"\n', 'item_index = "integer"\n', 1), "'item_index' is the item's position"),
    (DATASETS.replace('write = "merge"', 'write = "merge"\nnested = { t = { nested_in = "issues", path = "t", '
                                         'columns = { value = "text" } } }'), "as its own [datasets.NAME]"),
])
def test_a_wrong_nested_declaration_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        catalog(tmp_path, text + SOURCE)
    assert message in str(caught.value)


def test_a_source_cannot_load_into_a_nested_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'issue_tags' is nested in 'issues'"):
        catalog(tmp_path, DATASETS + SOURCE.replace('dataset = "issues"', 'dataset = "issue_tags"'))


def parent(number: int, raw: dict[str, Any]) -> dict[str, Any]:
    return {"number": number, "title": raw.get("title"), **LINEAGE, "raw": raw}


def test_items_become_rows_and_a_failing_item_is_refused_with_its_place() -> None:
    resolved = datasets()
    labels = [{"id": 1, "name": "bug", "color": "d73a4a"}, {"id": "x", "name": "ui"},
              {"id": 3, "name": "docs", "color": "zz"}, {"id": 4, "name": "ops"}]
    rows, refused = item_rows(resolved["issue_labels"], [parent(7, {"labels": labels}), parent(8, {})])
    assert [(r["number"], r["label_id"], r["name"], r["color"]) for r in rows] == [(7, 1, "bug", "d73a4a"),
                                                                                   (7, 4, "ops", None)]
    assert rows[0]["raw"] == labels[0] and all(rows[0][k] == v for k, v in LINEAGE.items())
    assert [r.reason for r in refused] == ["labels[1].label_id: expected a whole number, got 'x'",
                                           "labels[2].color: 'zz' does not match the pattern ^[0-9a-f]{6}$"]
    assert refused[1].raw == {"dataset": "issue_labels", "parent": {"number": 7}, "index": 2, "item": labels[2]}


def test_a_list_of_scalars_gives_one_value_column_by_position() -> None:
    rows, refused = item_rows(datasets()["issue_tags"], [parent(3, {"tags": ["p1", "ux"]})])
    assert [(r["number"], r["item_index"], r["value"], r["raw"]) for r in rows] == [(3, 0, "p1", '"p1"'),
                                                                                   (3, 1, "ux", '"ux"')]
    _, refused = item_rows(datasets()["issue_tags"], [parent(3, {"tags": "p1"})])
    assert [r.reason for r in refused] == ["tags: expected a list, got a JSON str"]


def test_items_nested_in_items_name_their_whole_place() -> None:
    resolved = datasets()
    label = {"id": 5, "name": "ui", "color": "fbca04", "meta": {"words": ["ok", "toolong"]}}
    [row], _ = item_rows(resolved["issue_labels"], [parent(2, {"labels": [label]})])
    words, refused = item_rows(resolved["label_words"], [row])
    assert [(w["number"], w["label_id"], w["item_index"], w["value"]) for w in words] == [(2, 5, 0, "ok")]
    assert refused[0].reason == "meta.words[1].value: 7 characters is above the maximum length 5"


def test_a_changed_list_changes_the_parent_s_fingerprint() -> None:
    issues = datasets()["issues"]
    before = parent(1, {"labels": [{"id": 1}], "tags": []})
    after = parent(1, {"labels": [{"id": 1}, {"id": 2}], "tags": []})
    assert fingerprint(issues, before) != fingerprint(issues, after)
    assert fingerprint(issues, before) == fingerprint(issues, parent(1, {"labels": [{"id": 1}], "tags": [],
                                                                         "other": 1}))


def test_nested_counts_add_up_apart_from_the_records() -> None:
    counts = Counts(fetched=2, loaded=2)
    counts.add(Counts(fetched=1, duplicate=1, nested={"issue_labels": {"loaded": 3, "deleted": 1}}))
    counts.add(Counts(nested={"issue_labels": {"loaded": 1, "rejected": 2}}))
    assert counts.to_dict() == {"fetched": 3, "rejected": 0, "duplicate": 1, "loaded": 2, "updated": 0, "deleted": 0}
    assert counts.nested == {"issue_labels": {"loaded": 4, "updated": 0, "deleted": 1, "rejected": 2}}


def test_the_documented_nested_datasets_load(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "datasets.md").read_text(encoding="utf-8")
    block = docs.split("\n## Nested datasets\n", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    readme = (root / "README.md").read_text(encoding="utf-8")
    short = readme.split("```toml\n[datasets.issue_labels]\n", 1)[1].split("```", 1)[0]
    parent = DATASETS.split("[datasets.issue_labels]", 1)[0]
    for text in (block, "[datasets.issue_labels]\n" + short):
        found = catalog(tmp_path, parent + text + SOURCE)
        assert found.datasets["issue_labels"].unique_key == ("source", "number", "label_id")


def draft_issues(env: dict[str, str]) -> tuple[Any, dict[str, int]]:
    """``ingest catalog draft`` of the fixture API's issues, every path of which answers 500 once."""
    server = FixtureApiServer(FixtureApiConfig(issues=40, faults=FaultShares(error=1.0))).start()
    try:
        result = CliRunner().invoke(main, ["catalog", "draft", f"{server.url}/repos/acme/widgets/issues",
                                           "--name", "issues"], env={"INGEST_HTTP_MAX_BACKOFF": "0.1", **env})
        return result, server.requests()
    finally:
        server.stop()


def test_the_draft_proposes_nested_datasets_for_lists_of_objects_and_retries_as_workers_do(tmp_path: Path) -> None:
    refused, _ = draft_issues({"INGEST_HTTP_MAX_ATTEMPTS": "1"})  # the workers' setting decides
    assert refused.exit_code != 0 and "500" in refused.output
    result, requests = draft_issues({})
    assert result.exit_code == 0, result.output
    assert requests["/repos/acme/widgets/issues"] == 2  # a 500, then the answer
    drafted = tomllib.loads(result.output)["datasets"]
    labels = drafted["issues_labels"]
    assert (labels["nested_in"], labels["path"], labels["key"]) == ("issues", "labels", ["id"])
    assert labels["columns"] == {"id": {"type": "integer", "required": True}, "name": "text", "color": "text"}
    assert drafted["issues"]["columns"]["tags"] == "text[]"  # a list of scalars stays a column
    assert "labels" not in drafted["issues"]["columns"]
    found = catalog(tmp_path, result.output)  # the draft is a catalog that loads as it is
    assert found.datasets["issues_labels"].unique_key == ("source", "number", "id")
