"""The catalog's child sources and partitions (issue 24): the keys, their checks (one line each,
naming the file and the key), the ``children`` each parent carries, and ``select``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ingest_workers.catalog import load_catalog, parse_job
from ingest_workers.core.errors import ConfigError, Refused
from ingest_workers.core.models import SourceSpec
from ingest_workers.core.plugins import PluginAllowlist
from ingest_workers.datasets.types import as_timestamp
from ingest_workers.load.outbox import parent_key
from ingest_workers.sources.family import partition_count

FAN_OUT = """
[datasets.issues]
key = ["issue_number"]
[datasets.issues.columns]
issue_number = "integer"
author = "text"

[datasets.issue_comments]
key = ["comment_id"]
[datasets.issue_comments.columns]
comment_id = "integer"
issue_number = "integer"

[datasets.reactions]
key = ["reaction_id"]
[datasets.reactions.columns]
reaction_id = "integer"
comment_id = "integer"

[datasets.cards]
key = ["card_id"]
[datasets.cards.columns]
card_id = "text"
board = "text"

[sources.gh_issues]
kind = "http_json"
dataset = "issues"
url = "https://api.github.com/repos/acme/widgets/issues"
pagination = "link"
fields = { issue_number = "number", author = "user.login" }

[sources.gh_issue_comments]
kind = "http_json"
dataset = "issue_comments"
parent = "gh_issues"
url = "https://api.github.com/repos/acme/widgets/issues/{parent.number}/comments"
pagination = "link"
fields = { comment_id = "id", issue_number = "parent.number" }
parents_per_job = 20
fan_out = "all"
on_status = { 404 = "skip" }

[sources.gh_comment_reactions]
kind = "http_json"
dataset = "reactions"
parent = "gh_issue_comments"
url = "https://api.github.com/repos/acme/widgets/issues/comments/{parent.id}/reactions"
headers = { X-Comment = "{parent.id}" }
fields = { reaction_id = "id", comment_id = "parent.id" }
fan_out = "changed"
parents_per_job = 50

[sources.board_cards]
kind = "http_json"
dataset = "cards"
url = "https://api.boards.example/1/boards/{partition.board}/cards"
params = { list = "{partition.list}" }
partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }
fields = { card_id = "id", board = "partition.board" }
on_status = { 404 = "skip", 409 = "retry", 503 = "fail" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_s_catalog_loads_with_its_keys(tmp_path: Path) -> None:
    sources = load_catalog(write(tmp_path, FAN_OUT), {}).sources
    comments = sources["gh_issue_comments"]
    assert (comments.parent, comments.parents_per_job, comments.fan_out, comments.on_status) == \
        ("gh_issues", 20, "all", {"404": "skip"})
    reactions = sources["gh_comment_reactions"]
    assert (reactions.parent, reactions.parents_per_job, reactions.fan_out) == ("gh_issue_comments", 50, "changed")
    cards = sources["board_cards"]
    assert cards.partitions == {"board": ["5f1a", "5f1b", "5f1c"], "list": [1, 2]} and cards.parent is None
    assert cards.on_status == {"404": "skip", "409": "retry", "503": "fail"}
    assert sources["gh_issues"].parent is None and sources["gh_issues"].partitions == {}


def test_each_parent_carries_its_children_recursively(tmp_path: Path) -> None:
    sources = load_catalog(write(tmp_path, FAN_OUT), {}).sources
    [comments] = sources["gh_issues"].children
    assert comments == sources["gh_issue_comments"].to_dict()  # the full spec, as its job carries it
    assert [child["name"] for child in comments["children"]] == ["gh_comment_reactions"]
    assert comments["children"][0] == sources["gh_comment_reactions"].to_dict()
    assert comments["children"][0].get("children", []) == []
    assert sources["board_cards"].children == []
    # the tree survives the trip through the job's JSON
    assert SourceSpec.from_dict(sources["gh_issues"].to_dict()) == sources["gh_issues"]


def test_select_all_leaves_children_to_their_parents(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, FAN_OUT), {})
    assert [s.name for s in catalog.select("all")] == ["gh_issues", "board_cards"]
    assert [s.name for s in catalog.select("gh_issue_comments")] == ["gh_issue_comments"]
    assert [s.name for s in catalog.select("gh_issues,gh_comment_reactions")] == \
        ["gh_issues", "gh_comment_reactions"]


def test_a_source_without_fan_out_keys_travels_as_before(tmp_path: Path) -> None:
    job = load_catalog(write(tmp_path, FAN_OUT), {}).sources["gh_comment_reactions"].to_dict()
    assert not {"children", "on_status", "partitions"} & set(job)  # at their defaults: not in the job
    plain = SourceSpec(name="a", kind="http_json", dataset="products", url="x").to_dict()
    assert not {"parent", "parents_per_job", "fan_out", "on_status", "partitions", "children"} & set(plain)


COMMENTS = '[sources.gh_issue_comments]'


@pytest.mark.parametrize(("change", "message"), [
    (('parent = "gh_issues"', 'parent = "gh_issuez"'),
     "[sources.gh_issue_comments] key 'parent': no source 'gh_issuez' in this catalog; known sources: "
     "board_cards, gh_comment_reactions, gh_issue_comments, gh_issues"),
    (('parent = "gh_issues"', 'parent = 7'),
     "[sources.gh_issue_comments] key 'parent': expected text, got 7"),
    (('[sources.gh_issues]\nkind = "http_json"', '[sources.gh_issues]\nparent = "gh_comment_reactions"\n'
      'kind = "http_json"'),
     "[sources.gh_issues] key 'parent': a cycle of parents: gh_issues -> gh_comment_reactions -> "
     "gh_issue_comments -> gh_issues"),
    (('parent = "gh_issues"', 'parent = "gh_issue_comments"'),
     "[sources.gh_issue_comments] key 'parent': a cycle of parents: gh_issue_comments -> gh_issue_comments"),
    (('parent = "gh_issues"\n', ''),
     "[sources.gh_issue_comments] key 'url': {parent.number} reads a parent record, but the source has no "
     "'parent'"),
    (('url = "https://api.github.com/repos/acme/widgets/issues"\n',
      'url = "https://api.github.com/repos/acme/widgets/issues"\nparams = { since = "{parent.updated_at}" }\n'),
     "[sources.gh_issues] key 'params.since': {parent.updated_at} reads a parent record, but the source has no "
     "'parent'"),
    (('fields = { issue_number = "number", author = "user.login" }',
      'fields = { issue_number = "number", author = "parent.user.login" }'),
     "[sources.gh_issues] key 'fields.author': 'parent.user.login' reads a parent record, but the source has no "
     "'parent'"),
    (('{partition.board}/cards', '{partition.boards}/cards'),
     "[sources.board_cards] key 'url': {partition.boards} names no partition (its partitions: board, list)"),
    (('fields = { card_id = "id", board = "partition.board" }', 'fields = { card_id = "id", board = "partition.b" }'),
     "[sources.board_cards] key 'fields.board': 'partition.b' names no partition (its partitions: board, list)"),
    (('issues/{parent.number}/comments', 'issues/{partition.number}/comments'),
     "[sources.gh_issue_comments] key 'url': {partition.number} names no partition (the source has no "
     "'partitions')"),
    (('issues/{parent.number}/comments', 'issues/{parent}/comments'),
     "[sources.gh_issue_comments] key 'url': {parent} names no value; write {parent.PATH}"),
    (('partitions = { board', 'parent = "gh_issues"\npartitions = { board'),
     "[sources.board_cards] key 'partitions': a source runs for the records of a parent or for partitions, "
     "not both"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }', 'partitions = { board = [] }'),
     "[sources.board_cards] key 'partitions.board': expected a list of values, at least one, got []"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }', 'partitions = { board = "5f1a" }'),
     "[sources.board_cards] key 'partitions.board': expected a list of values, at least one, got '5f1a'"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }',
      'partitions = { board = ["5f1a", { id = 1 }], list = [1] }'),
     "[sources.board_cards] key 'partitions.board': expected text or numbers, got {'id': 1}"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }',
      'partitions = { board = ["5f1a", "5f1a"], list = [1] }'),
     "[sources.board_cards] key 'partitions.board': a value is listed twice"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }', 'partitions = ["5f1a"]'),
     "[sources.board_cards] key 'partitions': expected a table, got ['5f1a']"),
    (('partitions = { board = ["5f1a", "5f1b", "5f1c"], list = [1, 2] }',
      'partitions = { board = ["5f1a"], "my-list" = [1] }'),
     "[sources.board_cards] key 'partitions.my-list': a partition name is letters, digits and '_', starting "
     "with a letter"),
    (('parents_per_job = 20', 'parents_per_job = 0'),
     "[sources.gh_issue_comments] key 'parents_per_job': expected a whole number from 1 to 10000, got 0"),
    (('parents_per_job = 20', 'parents_per_job = "20"'),
     "[sources.gh_issue_comments] key 'parents_per_job': expected a whole number from 1 to 10000, got '20'"),
    (('fan_out = "all"', 'fan_out = "some"'),
     "[sources.gh_issue_comments] key 'fan_out': expected one of all, changed, got 'some'"),
    (('pagination = "link"\nfields = { issue_number', 'pagination = "link"\nfan_out = "changed"\n'
      'fields = { issue_number'),
     "[sources.gh_issues] key 'fan_out': only a source with a 'parent' fans out from its records"),
    (('on_status = { 404 = "skip" }', 'on_status = { 404 = "ignore" }'),
     "[sources.gh_issue_comments] key 'on_status.404': expected one of skip, retry, fail, got 'ignore'"),
    (('on_status = { 404 = "skip" }', 'on_status = { 200 = "skip" }'),
     "[sources.gh_issue_comments] key 'on_status.200': expected an HTTP status from 400 to 599"),
    (('on_status = { 404 = "skip" }', 'on_status = { not_found = "skip" }'),
     "[sources.gh_issue_comments] key 'on_status.not_found': expected an HTTP status from 400 to 599"),
    (('on_status = { 404 = "skip" }', 'on_status = "skip"'),
     "[sources.gh_issue_comments] key 'on_status': expected a table, got 'skip'"),
    (('[sources.board_cards]', '[sources.files]\nkind = "csv"\ndataset = "cards"\nurl = "x.csv"\n'
      'on_status = { 404 = "skip" }\n\n[sources.board_cards]'),
     "[sources.files] key 'on_status.404': a csv file is one request; skipping it would load nothing without a "
     "word (use \"fail\")"),
    ((COMMENTS, COMMENTS + '\nchildren = []'), "[sources.gh_issue_comments]: unknown key 'children'"),
])
def test_each_refusal_is_one_line_naming_the_file_and_the_key(tmp_path: Path, change: tuple[str, str],
                                                             message: str) -> None:
    text = FAN_OUT.replace(*change, 1)
    assert text != FAN_OUT
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path, {})
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_generations_are_bounded(tmp_path: Path) -> None:
    chain = "".join(f'[sources.s{i}]\nkind = "http_json"\ndataset = "issues"\nurl = "https://h/{{parent.n}}"\n'
                    f'parent = "s{i - 1}"\n\n' for i in range(1, 10))
    text = '[sources.s0]\nkind = "http_json"\ndataset = "issues"\nurl = "https://h/"\n\n' + chain
    with pytest.raises(ConfigError, match=r"\[sources.s9\] key 'parent': 9 generations of parents "
                                          r"\(s9 -> s8 .* -> s0\); at most 8"):
        load_catalog(write(tmp_path, FAN_OUT.split("[sources.")[0] + text), {})


def test_partitions_are_counted_by_combination(tmp_path: Path) -> None:
    cards = load_catalog(write(tmp_path, FAN_OUT), {}).sources["board_cards"]
    assert partition_count(cards.partitions) == 3 * 2 and partition_count({}) == 1


TESTS_ONLY = PluginAllowlist(("tests.plugins",))


def issues_job(tmp_path: Path) -> dict[str, Any]:
    return load_catalog(write(tmp_path, FAN_OUT), {}).sources["gh_issues"].to_dict()


def test_every_source_of_a_family_reads_back_from_its_job(tmp_path: Path) -> None:
    for spec in load_catalog(write(tmp_path, FAN_OUT), {}).sources.values():
        assert parse_job(spec.to_dict(), TESTS_ONLY) == spec


@pytest.mark.parametrize("generation", [1, 2])
def test_a_plugin_in_a_child_or_grandchild_is_refused_before_it_is_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generation: int) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("FOREIGN_PLUGIN_MARKER", str(marker))
    job = issues_job(tmp_path)
    child = job["children"][0] if generation == 1 else job["children"][0]["children"][0]
    child["kind"] = "tests.foreign_plugin:Source"
    prefix = ("source gh_issues key 'children': " if generation == 1 else
              "source gh_issues key 'children': source gh_issue_comments key 'children': ")
    with pytest.raises(Refused, match=re.escape(
            f"{prefix}source {child['name']} key 'kind': source kind 'tests.foreign_plugin:Source': module "
            "tests.foreign_plugin is not allowed by INGEST_PLUGINS (tests.plugins)")):
        parse_job(job, TESTS_ONLY)
    assert not marker.exists()


def test_a_childs_stage_plugin_is_checked_against_the_allowlist(tmp_path: Path) -> None:
    job = issues_job(tmp_path)
    job["children"][0]["stages"] = [{"name": "tests.plugins:ShoutTitles", "suffix": "?"}]
    assert parse_job(job, TESTS_ONLY).children[0]["stages"] == [{"name": "tests.plugins:ShoutTitles", "suffix": "?"}]
    with pytest.raises(Refused, match=re.escape("source gh_issues key 'children': source gh_issue_comments key "
                                                "'stages': stage 'tests.plugins:ShoutTitles'")):
        parse_job(job, PluginAllowlist())


@pytest.mark.parametrize(("change", "message"), [
    (lambda job: job.update(children={"name": "x"}), "source gh_issues key 'children': expected a list of sources, "
                                                     "got dict"),
    (lambda job: job["children"][0].update(parent="board_cards"),
     "source gh_issues key 'children': child source gh_issue_comments names 'board_cards' as its parent, not "
     "'gh_issues'"),
    (lambda job: job["children"][0].update(on_status={"404": "ignore"}),
     "source gh_issues key 'children': source gh_issue_comments key 'on_status.404': expected one of skip, retry, "
     "fail, got 'ignore'"),
    (lambda job: job["children"][0].update(url="https://h/{partition.board}"),
     "source gh_issues key 'children': source gh_issue_comments key 'url': {partition.board} names no partition"),
    (lambda job: job["children"].append(3), "source gh_issues key 'children': the job's source is not a table but "
                                            "int"),
])
def test_a_job_with_children_of_the_wrong_shape_is_refused_naming_the_key(tmp_path: Path, change: Any,
                                                                         message: str) -> None:
    job = issues_job(tmp_path)
    change(job)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_job(job, TESTS_ONLY)


def test_a_job_s_generations_are_bounded(tmp_path: Path) -> None:
    job = issues_job(tmp_path)
    deepest = job
    for generation in range(9):  # nine generations below the job's source: one too many
        child = {**job["children"][0], "name": f"g{generation}", "parent": deepest["name"], "children": []}
        deepest["children"] = [child]
        deepest = child
    with pytest.raises(ConfigError, match="more than 8 generations of child sources"):
        parse_job(job, TESTS_ONLY)


def test_a_parent_key_is_one_text_from_a_checked_record_or_a_stored_row() -> None:
    """A parent job's batch gives checked values (ISO text, JSON numbers); a child named alone reads
    the stored row (``datetime``, ``Decimal``): both name the parent the same way (its cursor)."""
    key = ("number", "at", "price")
    checked = {"number": 7, "at": as_timestamp("at", "2026-01-05T10:00:00+01:00"), "price": 1.5}
    stored = {"number": 7, "at": datetime(2026, 1, 5, 11, tzinfo=timezone(timedelta(hours=2))),
              "price": Decimal("1.50")}
    assert parent_key(key, checked) == parent_key(key, stored) == "7\x1f2026-01-05T09:00:00+00:00\x1f1.5"
    assert parent_key(("p",), {"p": 100.0}) == parent_key(("p",), {"p": Decimal("1E+2")}) == "100"
    assert parent_key(("at",), {"at": datetime(2026, 1, 5, tzinfo=UTC).date()}) == "2026-01-05"
