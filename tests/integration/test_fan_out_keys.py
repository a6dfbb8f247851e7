"""A parent's key is one text whichever way its child source runs (issue 24): through the parent job
(the key from the checked record) or named alone (the key from the parent's stored row, as PostgreSQL
returns it: an integer, a ``datetime``), so both ways advance the same per-parent cursor rows.

The GitHub-like fixture's issues, keyed by (number, updated_at): an integer and a timestamp. Their
comments carry a cursor per issue. Run 1 loads both through real workers; revision 2 edits some
issues' comments; run 2 names the comments alone: the cursor rows of the edited issues advance,
the others stay, none is added. Expected keys and marks come from the fixture's functions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extensions
import pytest
import redis

from ingest_workers.load.outbox import parent_key
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.fixture_apis import FixtureApiConfig, FixtureApiServer, github
from tests.integration.test_fan_out import ingest

pytestmark = pytest.mark.integration

ISSUES = 8  # none answers 404 and each has comments: every issue has a cursor row in both revisions
CATALOG = """
[datasets.keyed_issues]
table = "fx_keyed_issues"
key = ["number", "updated_at"]
[datasets.keyed_issues.columns]
number = "integer"
updated_at = "timestamp"
title = "text"

[datasets.keyed_comments]
table = "fx_keyed_comments"
key = ["comment_id"]
write = "merge"
[datasets.keyed_comments.columns]
comment_id = "integer"
issue_number = "integer"
updated_at = "timestamp"
body = "text"

[sources.keyed_issues]
kind = "http_json"
dataset = "keyed_issues"
url = "{url}/repos/acme/widgets/issues"
records_path = ""
pagination = "link"
page_size = 20
rate_limit = 0

[sources.keyed_comments]
kind = "http_json"
dataset = "keyed_comments"
parent = "keyed_issues"
url = "{url}/repos/acme/widgets/issues/{{parent.number}}/comments"
records_path = ""
pagination = "link"
page_size = 20
rate_limit = 0
parents_per_job = 3
cursor_field = "updated_at"
since_param = "since"                 # the fixture ignores it: every comment is read again
fields = {{ comment_id = "id", issue_number = "parent.number" }}
"""


def iso(text: str) -> str:
    """The fixture's ``...Z`` time as the timestamp check writes it (ISO 8601, UTC)."""
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def expected_marks(revision: int) -> dict[str, str]:
    """Parent key -> the highest ``updated_at`` of its comments in ``revision`` (issues keep revision 1's
    ``updated_at``: run 2 does not read them again)."""
    marks = {}
    for number in range(1, ISSUES + 1):
        key = f"{number}\x1f{iso(github.issue(number)['updated_at'])}"
        marks[key] = max(iso(c["updated_at"]) for c in github.comments_of(number, revision))
    return marks


def cursor_rows(pg: psycopg2.extensions.connection) -> dict[str, tuple[str, str]]:
    with pg, pg.cursor() as cur:
        cur.execute("SELECT parent_key, position #>> '{}', run_id FROM parent_cursors WHERE source = 'keyed_comments'")
        return {key: (position, run_id) for key, position, run_id in cur.fetchall()}


def test_the_parent_key_is_the_same_through_the_parent_and_from_stored_parents(
        services: Services, tmp_path: Path, pg: psycopg2.extensions.connection, redis_client: redis.Redis) -> None:
    assert all(not github.comments_missing(n) and github.comments_of(n) for n in range(1, ISSUES + 1))
    changed = {n for n in range(1, ISSUES + 1) if github.comments_changed(n)}
    assert changed and len(changed) < ISSUES
    server = FixtureApiServer(FixtureApiConfig(issues=ISSUES)).start()
    try:
        with pg, pg.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS fx_keyed_issues, fx_keyed_comments")
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(CATALOG.format(url=server.url), encoding="utf-8")
        assert ingest(services, catalog, tmp_path, "db", "migrate")[0] == 0
        status, output, first = ingest(services, catalog, tmp_path, "run", "--workers", "2", "--timeout", "120")
        assert status == 0, output
        before = cursor_rows(pg)
        server.revision = 2
        status, output, second = ingest(services, catalog, tmp_path, "run", "--sources", "keyed_comments",
                                        "--workers", "2", "--timeout", "120")
        assert status == 0, output
        after = cursor_rows(pg)
    finally:
        server.stop()
    assert {key: position for key, (position, _) in before.items()} == expected_marks(1)
    assert {key: position for key, (position, _) in after.items()} == expected_marks(2)  # same keys: none added
    assert set(second["sources"]) == {"keyed_comments"} and second["sources"]["keyed_comments"]["parents"] == ISSUES
    for key, (_, run_id) in after.items():  # the edited issues' marks advanced in run 2, the others stayed
        number = int(key.split("\x1f")[0])
        assert run_id == (second["run_id"] if number in changed else first["run_id"]), key
    # the one function that names a parent, fed the stored row as PostgreSQL returns it
    with pg, pg.cursor() as cur:
        cur.execute("SELECT number, updated_at FROM fx_keyed_issues")
        stored = {parent_key(("number", "updated_at"), {"number": n, "updated_at": at}) for n, at in cur.fetchall()}
    assert stored == set(expected_marks(1))
