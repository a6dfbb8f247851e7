"""The HTTP client's retry policy against a real local HTTP server that scripts its answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest_workers.core.errors import ApiErrorBody, PermanentError, RetryLater, TransientError, UnreadableBody
from ingest_workers.core.models import LostPage, SourceSpec
from ingest_workers.sources import SourceContext
from ingest_workers.sources.http import HttpClient, RetryPolicy, make_session, safe_url
from ingest_workers.sources.http_json import HttpJsonSource
from tests.helpers import answer, serving


class Scripted(ThreadingHTTPServer):
    """Answers each GET with the next (status, headers, body) of ``script``; repeats the last."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[dict[str, str]] = []


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(dict(self.headers))
        status, headers, body = self.server.script.pop(0) if len(self.server.script) > 1 else self.server.script[0]
        answer(self, status, headers, body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    server = Scripted()
    with serving(server):
        yield server


OK = (200, {"Content-Type": "application/json"}, json.dumps({"items": [1]}).encode())


def client(statuses: list[str], sleeps: list[float], retries: list[str], attempts: int = 4) -> HttpClient:
    return HttpClient(make_session(), (2, 2), RetryPolicy(max_attempts=attempts, initial_backoff=0.1, max_backoff=8),
                      on_response=statuses.append, on_retry=lambda error, delay: retries.append(str(error)),
                      sleep=sleeps.append)


def url(server: Scripted) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/x?token=sekrit"


def test_5xx_is_retried_then_succeeds(server: Scripted) -> None:
    server.script = [(503, {}, b""), (502, {}, b""), OK]
    statuses, sleeps, retries = [], [], []
    assert client(statuses, sleeps, retries).get_json(url(server)) == {"items": [1]}
    assert statuses == ["5xx", "5xx", "2xx"]
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)
    assert "sekrit" not in " ".join(retries)


def test_429_waits_at_least_retry_after(server: Scripted) -> None:
    server.script = [(429, {"Retry-After": "3"}, b""), OK]
    sleeps: list[float] = []
    client([], sleeps, []).get_json(url(server))
    assert sleeps[0] >= 3


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_beyond_the_cap_defers_instead_of_asking_too_early(server: Scripted, status: int) -> None:
    server.script = [(status, {"Retry-After": "120"}, b""), OK]
    sleeps: list[float] = []
    with pytest.raises(RetryLater, match="Retry-After 120s") as caught:
        client([], sleeps, []).get_json(url(server))
    assert caught.value.retry_after == 120  # what the server asked, not the 8 s cap
    assert sleeps == [] and len(server.requests) == 1  # neither slept out nor asked again
    assert "sekrit" not in str(caught.value)


def test_a_200_with_a_value_at_error_path_is_retried_then_fails_quoting_the_message(server: Scripted) -> None:
    message = "Rate quota exceeded for project 42 " + "x" * 300
    failed = (200, {"Content-Type": "application/json"},
              json.dumps({"items": [], "error": {"code": 9, "message": message}}).encode())
    server.script = [failed, failed, OK]
    sleeps: list[float] = []
    assert client([], sleeps, []).get_json_document(url(server), error_path="error").body == {"items": [1]}
    assert len(sleeps) == 2 and len(server.requests) == 3
    server.script = [failed]
    with pytest.raises(ApiErrorBody) as caught:
        client([], [], [], attempts=3).get_json_document(url(server), error_path="error")
    assert caught.value.reason == ("the API answered 200 with an error at 'error': " + message[:200] + "...")
    assert len(server.requests) == 3 + 3  # the usual attempts, not the fewer an unreadable body gets


@pytest.mark.parametrize("value", [None, False, 0, "", [], {}])
def test_an_empty_value_at_error_path_is_no_error(server: Scripted, value: object) -> None:
    server.script = [(200, {"Content-Type": "application/json"}, json.dumps({"items": [2], "error": value}).encode())]
    assert client([], [], []).get_json_document(url(server), error_path="error").body["items"] == [2]


def test_transient_failures_stop_after_max_attempts(server: Scripted) -> None:
    server.script = [(500, {}, b"")]
    sleeps: list[float] = []
    with pytest.raises(TransientError, match="HTTP 500"):
        client([], sleeps, [], attempts=3).get_json(url(server))
    assert len(sleeps) == 2 and len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_other_4xx_are_permanent_and_not_retried(server: Scripted, status: int) -> None:
    server.script = [(status, {}, b"")]
    with pytest.raises(PermanentError, match=f"HTTP {status}") as caught:
        client([], [], []).get_json(url(server))
    assert len(server.requests) == 1
    assert "sekrit" not in str(caught.value)


@pytest.mark.parametrize(("content_type", "body", "reason"), [
    ("application/json", b'{"items": [1, 2', "the body is not JSON"),
    ("text/html", b"<html>502 Bad Gateway</html>", "content type 'text/html' is not JSON"),
    ("application/json", b'{"items": [' + b'"x",' * 3000 + b'"x"]}', "response over the size cap (10000 bytes)"),
])
def test_an_unreadable_body_is_retried_then_reported_with_its_reason(
        server: Scripted, content_type: str, body: bytes, reason: str) -> None:
    server.script = [(200, {"Content-Type": content_type}, body)]
    client = HttpClient(make_session(), (2, 2), RetryPolicy(max_attempts=2, initial_backoff=0.01),
                        sleep=lambda seconds: None, max_body_bytes=10_000)
    with pytest.raises(UnreadableBody) as caught:
        client.get_json(url(server))
    assert caught.value.reason == reason
    assert len(server.requests) == 2
    assert isinstance(caught.value, TransientError)


def test_invalid_utf8_is_replaced_and_the_page_kept(server: Scripted) -> None:
    server.script = [(200, {"Content-Type": "application/json"}, b'{"items": ["ok", "bad \xff byte"]}')]
    assert client([], [], []).get_json(url(server)) == {"items": ["ok", "bad \ufffd byte"]}


def test_an_unreadable_body_that_passes_on_retry_is_used(server: Scripted) -> None:
    server.script = [(200, {"Content-Type": "text/html"}, b"<html>"), OK]
    assert client([], [], []).get_json(url(server)) == {"items": [1]}


MALFORMED = (200, {"Content-Type": "application/json"}, b'{"items": [1, 2')


def test_an_unreadable_body_after_other_failed_tries_still_gets_its_own_two_more(server: Scripted) -> None:
    # The chaos run lost pages this way: two 503s, then a cut body, and the page was lost at once
    # (its three tries were counted from the first 503), though max_attempts allowed five more.
    server.script = [(503, {}, b""), (503, {}, b""), MALFORMED, MALFORMED, OK]
    assert client([], [], [], attempts=8).get_json(url(server)) == {"items": [1]}
    assert len(server.requests) == 5


def test_an_unreadable_body_three_times_loses_the_page_within_max_attempts(server: Scripted) -> None:
    server.script = [(503, {}, b""), MALFORMED, (503, {}, b""), MALFORMED, MALFORMED, OK]
    with pytest.raises(UnreadableBody, match="the body is not JSON"):
        client([], [], [], attempts=8).get_json(url(server))
    assert len(server.requests) == 5  # three unreadable answers: no sixth request
    server.requests.clear()
    server.script = [(503, {}, b""), (503, {}, b""), MALFORMED, OK]
    with pytest.raises(UnreadableBody):
        client([], [], [], attempts=3).get_json(url(server))  # max_attempts still bounds every try
    assert len(server.requests) == 3


def test_connection_refused_is_transient() -> None:
    statuses: list[str] = []
    with pytest.raises(TransientError, match="ConnectionError"):
        client(statuses, [], [], attempts=2).get_json("http://127.0.0.1:1/x")
    assert statuses == ["error", "error"]


def test_headers_are_sent_and_never_in_errors(server: Scripted) -> None:
    server.script = [(404, {}, b"")]
    with pytest.raises(PermanentError) as caught:
        client([], [], []).get_json(url(server), headers={"Authorization": "Bearer top-secret"})
    assert server.requests[0]["Authorization"] == "Bearer top-secret"
    assert "top-secret" not in str(caught.value)


def test_safe_url_drops_query_and_password() -> None:
    assert safe_url("https://u:pw@h:8/p?token=t#f") == "https://u:***@h:8/p"


def test_the_session_names_the_client_in_its_user_agent(server: Scripted) -> None:
    server.script = [OK, OK]
    for session in (make_session(), make_session("ingest-workers/test")):
        HttpClient(session, (2, 2), RetryPolicy(max_attempts=1)).get_json(url(server))
    assert [r["User-Agent"] for r in server.requests] == ["ingest-workers", "ingest-workers/test"]


def test_link_pagination_never_sends_the_token_to_another_host(server: Scripted) -> None:
    page = json.dumps({"data": [1, 2]}).encode()
    server.script = [(200, {"Content-Type": "application/json", "Link": '<http://evil.example/x?page=2>; rel="next"'},
                      page)]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), records_path="data",
                      pagination="link", auth_env="TOKEN")
    source = HttpJsonSource(spec, SourceContext(client([], [], []), {"TOKEN": "Bearer top-secret"}))
    stream = source.stream()
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(PermanentError, match="the next page leaves") as caught:
        next(stream)
    assert len(server.requests) == 1 and "top-secret" not in str(caught.value)


def test_a_cursor_token_served_twice_stops_the_source(server: Scripted) -> None:
    body = json.dumps({"items": [1], "next_cursor": "same"}).encode()
    server.script = [(200, {"Content-Type": "application/json"}, body)]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), pagination="cursor")
    with pytest.raises(PermanentError, match="cursor token twice|repeats the page before it"):
        list(HttpJsonSource(spec, SourceContext(client([], [], []))).stream())
    assert len(server.requests) == 2  # the token came back on the page that used it


def test_open_stream_retries_the_opening_then_streams(server: Scripted) -> None:
    server.script = [(503, {}, b""), (200, {"Content-Type": "text/csv"}, b"a,b\n1,2\n")]
    sleeps: list[float] = []
    response = client([], sleeps, []).open_stream(url(server))
    with response:
        assert response.raw.read() == b"a,b\n1,2\n"
    assert len(sleeps) == 1


def test_an_error_body_under_cursor_paging_loses_its_page_and_ends_paging(server: Scripted) -> None:
    page_1 = json.dumps({"items": [1, 2], "next_cursor": "c2"}).encode()
    failed = json.dumps({"items": [], "errors": [{"message": "cursor c2 expired"}]}).encode()
    server.script = [(200, {"Content-Type": "application/json"}, page_1),
                     (200, {"Content-Type": "application/json"}, failed)]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), pagination="cursor",
                      error_path="errors")
    records = list(HttpJsonSource(spec, SourceContext(client([], [], [], attempts=3))).stream())
    assert records[:2] == [1, 2] and len(records) == 3
    lost = records[2]
    assert isinstance(lost, LostPage) and lost.where == "page 2"
    assert lost.reason == ("page 2: the API answered 200 with an error at 'errors': "
                           '[{"message": "cursor c2 expired"}]')
    assert len(server.requests) == 1 + 3  # page 1, then page 2 tried three times; nothing after it


def on_status_client(on_status: dict[int, str], sleeps: list[float] | None = None) -> HttpClient:
    return HttpClient(make_session(), (2, 2), RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=8),
                      sleep=(sleeps if sleeps is not None else []).append, on_status=on_status)


def test_on_status_skip_makes_an_empty_answer_not_an_error(server: Scripted) -> None:
    server.script = [(404, {}, b"")]
    page = on_status_client({404: "skip"}).get_json_document(url(server))
    assert (page.body, page.next_link, page.skipped) == (None, None, 404)
    assert len(server.requests) == 1  # skipped, never retried


def test_on_status_skip_leaves_other_statuses_as_they_were(server: Scripted) -> None:
    server.script = [(410, {}, b"")]
    with pytest.raises(PermanentError, match="HTTP 410"):
        on_status_client({404: "skip"}).get_json_document(url(server))
    server.script = [OK]
    assert on_status_client({404: "skip"}).get_json_document(url(server)).skipped is None


def test_on_status_retry_makes_a_4xx_transient(server: Scripted) -> None:
    server.script = [(409, {"Retry-After": "2"}, b""), OK]
    sleeps: list[float] = []
    assert on_status_client({409: "retry"}, sleeps).get_json(url(server)) == {"items": [1]}
    assert len(server.requests) == 2 and sleeps[0] >= 2  # retried, after the server's Retry-After
    server.script = [(409, {}, b"")]
    with pytest.raises(TransientError, match=r"HTTP 409 \(on_status: retry\)"):
        on_status_client({409: "retry"}).get_json(url(server))


def test_on_status_fail_makes_a_5xx_permanent(server: Scripted) -> None:
    server.script = [(503, {}, b""), OK]
    with pytest.raises(PermanentError, match=r"HTTP 503 \(on_status: fail\)") as caught:
        on_status_client({503: "fail"}).get_json(url(server))
    assert not isinstance(caught.value, TransientError) and len(server.requests) == 1


def test_on_status_skip_of_a_file_fails_rather_than_loading_nothing(server: Scripted) -> None:
    server.script = [(404, {}, b"")]
    with pytest.raises(PermanentError, match="on_status skip is for JSON sources"):
        on_status_client({404: "skip"}).open_stream(url(server))


@pytest.mark.parametrize("pagination", ["page", "link", "cursor", "none"])
def test_a_skipped_answer_is_a_page_without_records_counted_by_the_source(server: Scripted, pagination: str) -> None:
    server.script = [(404, {}, b"")]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), pagination=pagination,
                      on_status={"404": "skip"})
    source = HttpJsonSource(spec, SourceContext(on_status_client({404: "skip"})))
    assert list(source.stream()) == []
    assert source.skipped == 1 and len(server.requests) == 1


def test_a_detail_object_is_one_record(server: Scripted) -> None:
    detail = {"id": 7, "name": "lamp", "reviews": [{"stars": 5}]}
    server.script = [(200, {"Content-Type": "application/json"}, json.dumps(detail).encode())]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), pagination="none",
                      records_path="")
    assert list(HttpJsonSource(spec, SourceContext(client([], [], []))).stream()) == [detail]


def test_an_object_at_a_records_path_is_still_refused(server: Scripted) -> None:
    server.script = [(200, {"Content-Type": "application/json"}, json.dumps({"items": {"id": 7}}).encode())]
    spec = SourceSpec(name="s", kind="http_json", dataset="quotes", url=url(server), pagination="none")
    with pytest.raises(PermanentError, match="has no list at 'items'"):
        list(HttpJsonSource(spec, SourceContext(client([], [], []))).stream())
