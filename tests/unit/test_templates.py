"""``{parent.PATH}`` and ``{partition.NAME}`` in a source's requests, and ``parent.``/``partition.``
paths in its field mapping."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest_workers.core.errors import MissingParentValue, PermanentError
from ingest_workers.core.models import Record, SourceSpec
from ingest_workers.sources import SourceContext
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session
from ingest_workers.sources.http_json import HttpJsonSource
from ingest_workers.sources.templates import placeholders, render, rendered_request
from ingest_workers.stages.base import map_fields

ISSUE = {"number": 42, "title": "a/b c", "user": {"login": "ann lee"}, "labels": [{"name": "bug"}],
         "locked": False, "closed_at": None, "milestone": {"id": 3}, "empty": ""}
URL = "https://api.example/repos/acme/widgets/issues/{parent.number}/comments"


def test_a_parent_value_fills_the_url() -> None:
    assert render(URL, {"parent": ISSUE}, in_url=True) == "https://api.example/repos/acme/widgets/issues/42/comments"


def test_a_url_value_is_percent_encoded_and_stays_in_its_segment() -> None:
    assert render("https://h/{parent.title}/x", {"parent": ISSUE}, in_url=True) == "https://h/a%2Fb%20c/x"
    assert render("https://h/u/{parent.user.login}", {"parent": ISSUE}, in_url=True) == "https://h/u/ann%20lee"
    assert render("https://h/a/{parent.v}/b", {"parent": {"v": ".."}}, in_url=True) == "https://h/a/%2E%2E/b"
    assert render("https://h/a/{parent.v}/b", {"parent": {"v": "v1.2"}}, in_url=True) == "https://h/a/v1.2/b"


def test_params_and_headers_values_go_as_text() -> None:
    assert render("{parent.user.login}", {"parent": ISSUE}) == "ann lee"
    assert render("is {parent.locked}", {"parent": ISSUE}) == "is false"  # JSON's words, not Python's
    assert render("{parent.labels.0.name}", {"parent": ISSUE}) == "bug"


def test_a_partition_value_fills_the_url() -> None:
    url = "https://boards.example/1/boards/{partition.board}/cards?list={partition.list}"
    assert (render(url, {"partition": {"board": "5f1a", "list": 2}}, in_url=True)
            == "https://boards.example/1/boards/5f1a/cards?list=2")


def test_braces_of_other_roots_stay_as_written() -> None:
    text = "https://h/{id}/x/{Parent.number}/${TOKEN}"
    assert render(text, {"parent": ISSUE}, in_url=True) == text
    assert list(placeholders(text)) == []


def test_placeholders_lists_roots_and_paths() -> None:
    text = "https://h/{parent.user.login}/{partition.board}/{parent}"
    assert list(placeholders(text)) == [("parent", "user.login"), ("partition", "board"), ("parent", "")]


@pytest.mark.parametrize(("template", "message"), [
    ("{parent.missing}", "{parent.missing}: the parent has no value at 'parent.missing'"),
    ("{parent.closed_at}", "{parent.closed_at}: the parent has no value at 'parent.closed_at'"),
    ("{parent.empty}", "{parent.empty}: the parent has no value at 'parent.empty'"),
    ("{parent.milestone}", "{parent.milestone}: the parent holds a JSON object at 'parent.milestone', not a value"),
    ("{parent.labels}", "{parent.labels}: the parent holds a JSON list at 'parent.labels', not a value"),
    ("{parent.user.login.x}", "{parent.user.login.x}: the parent has no value at 'parent.user.login.x'"),
])
def test_a_missing_value_raises_naming_the_path(template: str, message: str) -> None:
    with pytest.raises(MissingParentValue) as caught:
        render(template, {"parent": ISSUE})
    assert str(caught.value) == message
    assert caught.value.path == template[1:-1]
    assert isinstance(caught.value, PermanentError)


def test_a_placeholder_without_its_root_in_the_scope_raises() -> None:
    with pytest.raises(MissingParentValue, match=r"\{partition.board\}: this source runs without a partition"):
        render("https://h/{partition.board}", {"parent": ISSUE}, in_url=True)


def spec(**values: object) -> SourceSpec:
    return SourceSpec(**{"name": "comments", "kind": "http_json", "dataset": "quotes", "url": URL,
                         "parent": "issues", **values})


def test_rendered_request_fills_url_params_and_headers() -> None:
    rendered = rendered_request(spec(params={"creator": "{parent.user.login}", "per_page": 50},
                                     headers={"X-Issue": "#{parent.number}", "Accept": "application/json"}),
                                {"parent": ISSUE})
    assert rendered.url == "https://api.example/repos/acme/widgets/issues/42/comments"
    assert rendered.params == {"creator": "ann lee", "per_page": 50}
    assert rendered.headers == {"X-Issue": "#42", "Accept": "application/json"}


def test_a_spec_without_placeholders_is_returned_as_is() -> None:
    plain = spec(url="https://api.example/issues", parent=None)
    assert rendered_request(plain, {}) is plain


def test_a_source_with_a_missing_parent_value_fails_when_built_before_any_request() -> None:
    requests: list[str] = []
    session = make_session()
    session.get = lambda url, **kwargs: requests.append(url)  # type: ignore[method-assign]
    context = SourceContext(HttpClient(session, (1, 1), RetryPolicy(max_attempts=1)), parent={"title": "no number"})
    with pytest.raises(MissingParentValue, match=r"\{parent.number\}: the parent has no value at 'parent.number'"):
        HttpJsonSource(spec(), context)
    assert requests == []


def test_the_context_scope_holds_what_is_given() -> None:
    client = HttpClient(make_session(), (1, 1), RetryPolicy())
    assert SourceContext(client).scope() == {}
    assert SourceContext(client, parent=ISSUE).scope() == {"parent": ISSUE}
    assert SourceContext(client, partition={"board": "5f1a"}).scope() == {"partition": {"board": "5f1a"}}


def test_field_paths_read_the_parent_and_the_partition() -> None:
    stage = map_fields({"comment_id": "id", "issue_number": "parent.number", "author": "parent.user.login",
                        "board": "partition.board"},
                       scope={"parent": ISSUE, "partition": {"board": "5f1a"}})
    [record] = stage.process([Record({"id": 42001, "body": "hi", "parent": "not this"})])
    assert isinstance(record, Record)
    assert (record.row["comment_id"], record.row["issue_number"], record.row["author"], record.row["board"]) == \
        (42001, 42, "ann lee", "5f1a")


def test_without_a_scope_a_parent_path_reads_the_record() -> None:
    [record] = map_fields({"parent_id": "parent.id"}).process([Record({"parent": {"id": 9}})])
    assert isinstance(record, Record) and record.row["parent_id"] == 9


@given(st.one_of(st.text(min_size=1), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_any_value_stays_inside_its_path_segment(value: object) -> None:
    url = render("https://api.example/items/{parent.key}/comments", {"parent": {"key": value}}, in_url=True)
    parts = urlsplit(url)
    assert (parts.netloc, parts.query, parts.fragment) == ("api.example", "", "")
    segments = parts.path.split("/")
    assert len(segments) == 4 and segments[-1] == "comments"
    assert unquote(segments[2]) == str(value)
