"""The fan-out fixture APIs (ingest_workers/testing/fixture_apis) over real HTTP on 127.0.0.1:
paging ends and Link headers, 404s where documented, faults once per path, revisions that differ
as documented, latency on child requests, and the ``ingest fixture-api`` command."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ingest_workers.testing.fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer, github, shop

pytestmark = pytest.mark.integration

ISSUES, PRODUCTS = 40, 30


@pytest.fixture
def server() -> Iterator[FixtureApiServer]:
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES, products=PRODUCTS)).start()
    yield server
    server.stop()


def walk(session: requests.Session, url: str) -> tuple[list[Any], list[requests.Response]]:
    """Follow rel="next" from ``url`` to the end: every record, and every response."""
    records: list[Any] = []
    responses = []
    while url:
        response = session.get(url, timeout=10)
        assert response.status_code == 200, response.text
        records += response.json()
        responses.append(response)
        url = response.links.get("next", {}).get("url", "")
    return records, responses


def served(server: FixtureApiServer) -> dict[str, Any]:
    """Everything the server serves under its current revision, read over HTTP."""
    session = requests.Session()
    base = server.url + "/repos/acme/widgets/issues"
    issues, _ = walk(session, base + "?per_page=100")
    comments = {n: walk(session, f"{base}/{n}/comments")[0] for n in range(1, ISSUES + 1) if n % 11}
    details = {i: session.get(f"{server.url}/products/{i}", timeout=10).json() for i in range(1, PRODUCTS + 1)}
    return {"issues": issues, "comments": comments, "details": details}


def test_issue_pages_follow_link_headers_to_the_end(server: FixtureApiServer) -> None:
    session = requests.Session()
    first = f"{server.url}/repos/acme/widgets/issues?per_page=7"
    issues, responses = walk(session, first)
    assert [i["number"] for i in issues] == list(range(1, ISSUES + 1))
    assert issues == github.issues(ISSUES)
    assert len(responses) == 6  # 40 issues, 7 a page
    assert responses[0].headers["Link"] == (
        f'<{server.url}/repos/acme/widgets/issues?page=2&per_page=7>; rel="next", '
        f'<{server.url}/repos/acme/widgets/issues?page=6&per_page=7>; rel="last"')
    assert set(responses[2].links) == {"next", "last", "prev", "first"}
    assert set(responses[-1].links) == {"prev", "first"}
    past = session.get(f"{server.url}/repos/acme/widgets/issues?page=7&per_page=7", timeout=10)
    assert past.json() == [] and "next" not in past.links
    sample = issues[9]  # issue 10: three labels, one tag
    assert sample["user"] == {"login": "dave"} and [label["id"] for label in sample["labels"]] == [1001, 1004, 1007]
    assert sample["tags"] == ["p1"]
    assert session.get(f"{server.url}/repos/acme/widgets/issues?per_page=101", timeout=10).status_code == 400


def test_comments_pages_empty_lists_and_404s(server: FixtureApiServer) -> None:
    session = requests.Session()
    base = f"{server.url}/repos/acme/widgets/issues"
    comments, responses = walk(session, f"{base}/13/comments")  # 45 + 13 comments: two pages of 30
    assert len(comments) == 58 and len(responses) == 2
    assert [c["id"] for c in comments] == [13_000 + k for k in range(58)]
    assert set(comments[0]) == {"id", "body", "user", "created_at", "updated_at"}
    none = session.get(f"{base}/9/comments", timeout=10)  # 9 * 7 % 9 == 0: no comments
    assert none.status_code == 200 and none.json() == [] and "Link" not in none.headers
    for number in (11, 22, 33, ISSUES + 1, 0):
        assert session.get(f"{base}/{number}/comments", timeout=10).status_code == 404, number
    for number in range(1, ISSUES + 1):
        if number % 11:
            assert walk(session, f"{base}/{number}/comments?per_page=4")[0] == github.comments_of(number)
    assert sum(len(github.comments_of(n)) for n in range(1, ISSUES + 1)) > ISSUES  # several per issue


def test_product_list_and_details(server: FixtureApiServer) -> None:
    session = requests.Session()
    listed: list[dict[str, Any]] = []
    page = 1
    while True:
        body = session.get(f"{server.url}/products?page={page}&limit=7", timeout=10).json()
        assert body["total"] == PRODUCTS
        if not body["products"]:
            break
        listed += body["products"]
        page += 1
    assert page == 6 and [p["id"] for p in listed] == list(range(1, PRODUCTS + 1))
    missing = []
    for product_id in range(1, PRODUCTS + 1):
        answer = session.get(f"{server.url}/products/{product_id}", timeout=10)
        if answer.status_code == 404:
            missing.append(product_id)
            continue
        detail = answer.json()
        assert isinstance(detail, dict) and set(detail) == {"id", "name", "price", "reviews", "tags"}
        assert detail == shop.product_detail(product_id)
    assert missing == [13, 26]
    assert session.get(f"{server.url}/products/{PRODUCTS + 1}", timeout=10).status_code == 404
    assert shop.product_detail(4)["reviews"] == [  # type: ignore[index]
        {"id": 400, "rating": 5, "comment": "Review 0 of product 4"},
        {"id": 401, "rating": 1, "comment": "Review 1 of product 4"},
        {"id": 402, "rating": 2, "comment": "Review 2 of product 4"},
        {"id": 403, "rating": 3, "comment": "Review 3 of product 4"}]


def test_faults_answer_once_per_path_and_again_under_a_new_revision() -> None:
    faults = FaultShares(error=0.3, throttle=0.3, retry_after=1, seed=7)
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES, products=PRODUCTS, faults=faults)).start()
    try:
        session = requests.Session()
        paths = [f"/repos/acme/widgets/issues/{n}/comments" for n in range(1, ISSUES + 1)]
        paths += [f"/products/{i}" for i in range(1, PRODUCTS + 1)] + [f"/products?page={p}" for p in (1, 2, 3)]
        firsts = {path: session.get(server.url + path, timeout=10) for path in paths}
        seconds = {path: session.get(server.url + path, timeout=10).status_code for path in paths}
        statuses = [answer.status_code for answer in firsts.values()]
        assert statuses.count(500) >= 5 and statuses.count(429) >= 5 and statuses.count(200) >= 5
        assert all(a.headers["Retry-After"] == "1" for a in firsts.values() if a.status_code == 429)
        assert all("Retry-After" not in a.headers for a in firsts.values() if a.status_code == 500)
        assert not {500, 429} & set(seconds.values())
        assert {path for path, status in seconds.items() if status == 404} == {
            *(f"/repos/acme/widgets/issues/{n}/comments" for n in (11, 22, 33)), "/products/13", "/products/26"}
        assert server.requests() == {path: 2 for path in paths}
        server.revision = 2  # a new revision: the same paths fault once more, then answer
        again = {path: session.get(server.url + path, timeout=10).status_code for path in paths}
        assert [again[path] for path in paths] == statuses
        assert server.requests() == {path: 3 for path in paths}
    finally:
        server.stop()


def test_revision_two_changes_what_it_says_and_three_serves_two(server: FixtureApiServer) -> None:
    first = served(server)
    server.revision = 2
    second = served(server)
    server.revision = 3
    assert served(server) == second
    changed_issues = 0
    for old, new in zip(first["issues"], second["issues"], strict=True):
        old_labels = {label["id"]: label["color"] for label in old["labels"]}
        new_labels = {label["id"]: label["color"] for label in new["labels"]}
        if old == new:
            continue
        changed_issues += 1  # one label removed, one added, one recoloured, a tag and a later update
        assert len(old_labels.keys() - new_labels.keys()) == 1 and len(new_labels.keys() - old_labels.keys()) == 1
        assert sum(old_labels[i] != new_labels[i] for i in old_labels.keys() & new_labels.keys()) == 1
        assert new["tags"] == [*old["tags"], "triaged"] and new["updated_at"] > old["updated_at"]
    assert changed_issues == len([n for n in range(1, ISSUES + 1) if n % 5 == 0 and n % 7]) == 7
    changed_comments = 0
    for number, old_comments in first["comments"].items():
        new_comments = second["comments"][number]
        if new_comments == old_comments:
            continue
        changed_comments += 1  # two added; the first edited when there was one
        assert len(new_comments) == len(old_comments) + 2 and new_comments[1:len(old_comments)] == old_comments[1:]
        assert not old_comments or new_comments[0]["body"] == old_comments[0]["body"] + " (edited)"
    assert changed_comments == len([n for n in range(1, ISSUES + 1) if n % 3 == 0 and n % 11]) == 12
    changed_products = [i for i in first["details"] if first["details"][i] != second["details"][i]]
    assert changed_products == [4, 8, 12, 24, 28]  # id % 4 == 0 with at least two reviews, 404s aside
    for product_id in changed_products:
        old_reviews = {r["id"]: r for r in first["details"][product_id]["reviews"]}
        new_reviews = {r["id"]: r for r in second["details"][product_id]["reviews"]}
        assert len(old_reviews.keys() - new_reviews.keys()) == 1 and len(new_reviews.keys() - old_reviews.keys()) == 1
        assert sum(old_reviews[i] != new_reviews[i] for i in old_reviews.keys() & new_reviews.keys()) == 1


def test_revision_set_over_http(server: FixtureApiServer) -> None:
    assert requests.post(f"{server.url}/_revision?revision=2", timeout=10).json() == {"revision": 2}
    assert server.revision == 2
    assert requests.post(f"{server.url}/_revision", json={"revision": 3}, timeout=10).json() == {"revision": 3}
    assert requests.get(f"{server.url}/_revision", timeout=10).json() == {"revision": 3}
    assert requests.post(f"{server.url}/_revision?revision=0", timeout=10).status_code == 400
    assert requests.post(f"{server.url}/_revision", json={"revision": "x"}, timeout=10).status_code == 400
    assert server.revision == 3
    requests.get(f"{server.url}/products/1", timeout=10)
    assert requests.get(f"{server.url}/_requests", timeout=10).json() == {"/products/1": 1}


def test_latency_is_slept_on_child_requests_only() -> None:
    server = FixtureApiServer(FixtureApiConfig(issues=5, products=5, latency=0.5)).start()
    try:
        timings = {}
        for path in ("/repos/acme/widgets/issues", "/repos/acme/widgets/issues/1/comments", "/products",
                     "/products/1"):
            started = time.monotonic()
            assert requests.get(server.url + path, timeout=10).status_code == 200
            timings[path] = time.monotonic() - started
        assert timings["/repos/acme/widgets/issues/1/comments"] >= 0.5 and timings["/products/1"] >= 0.5
        assert timings["/repos/acme/widgets/issues"] < 0.5 and timings["/products"] < 0.5
    finally:
        server.stop()


def test_the_command_serves_and_prints_its_url() -> None:
    process = subprocess.Popen([sys.executable, "-m", "ingest_workers", "fixture-api", "--port", "0", "--issues", "3",
                                "--revision", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        issues = requests.get(f"{url}/repos/acme/widgets/issues", timeout=10).json()
        assert [issue["number"] for issue in issues] == [1, 2, 3]
        assert requests.get(f"{url}/_revision", timeout=10).json() == {"revision": 2}
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_a_stopped_server_answers_no_kept_alive_connection() -> None:
    server = FixtureApiServer(FixtureApiConfig(issues=3)).start()
    session = requests.Session()
    assert session.get(server.url + "/healthz", timeout=10).status_code == 200
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(server.url + "/healthz", timeout=10)
