"""The chaos run's fan-out source: the fixture API's issues (``chaos_issues``) and each issue's
comments (its child source ``chaos_issue_comments``), with the fixture's own faults on (a share of
the paths answer 500 or 429 once, some issues' comments 404), while workers are SIGKILLed and
PostgreSQL is cut like for every other chaos source.

The child jobs the issues fan out are listed in the run's job list as they are planned; the chaos
loop waits for them too (:meth:`FanOutChaos.listed`). The verdict, per key: every comment the fixture
serves for the issues (computed from its pure functions) stored exactly once, none missing, none extra,
and every issue's child work done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.extensions

from ..core.models import SourceSpec
from ..datasets import Dataset, parse_dataset
from ..ops.history import JobHistory
from .fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer, github

ISSUES_TABLE, COMMENTS_TABLE = "chaos_issues", "chaos_issue_comments"
DATASETS: tuple[Dataset, ...] = (
    parse_dataset("chaos_issues", {"table": ISSUES_TABLE, "key": ["issue_number"],
                                   "columns": {"issue_number": "integer", "title": "text"}}),
    parse_dataset("chaos_issue_comments", {"table": COMMENTS_TABLE, "key": ["comment_id"],
                                           "columns": {"comment_id": "integer", "issue_number": "integer"}}),
)


@dataclass(frozen=True)
class FanOutVerdict:
    """Per comment key: ``missing`` (served, never stored), ``duplicated`` (stored more than once),
    ``extra`` (stored, never served); ``parents_not_done``: issues whose child work did not end done."""

    comments: int = 0
    missing: int = 0
    duplicated: int = 0
    extra: int = 0
    parents_not_done: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.extra or self.parents_not_done)

    def text(self) -> str:
        return (f"fanout[comments={self.comments} missing={self.missing} duplicated={self.duplicated} "
                f"extra={self.extra} parents_not_done={self.parents_not_done}]")


class FanOutChaos:
    """The fixture server, the two sources' specs, and the verdict."""

    def __init__(self, issues: int, seed: int | None, rate_limit: float,
                 conn: psycopg2.extensions.connection) -> None:
        """``conn`` (not through the chaos proxy): where :meth:`listed` reads the run's job list."""
        faults = FaultShares(error=0.1, throttle=0.1, retry_after=1, seed=seed or 0)
        self.issues, self.rate_limit = issues, rate_limit
        self.server = FixtureApiServer(FixtureApiConfig(issues=issues, faults=faults))
        self.datasets = DATASETS
        self._conn = conn

    def start(self) -> FanOutChaos:
        """Empty the two tables and the source's outbox, then serve."""
        with self._conn, self._conn.cursor() as cur:
            cur.execute(f"TRUNCATE {ISSUES_TABLE}, {COMMENTS_TABLE}")  # noqa: S608 - constant names
            cur.execute("DELETE FROM fanout_parents WHERE child_source = 'chaos_issue_comments'")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def specs(self) -> list[SourceSpec]:
        """The issues, carrying their child source (as the catalog fills ``children``); none without issues."""
        if not self.issues:
            return []
        base = self.server.url + f"/repos/{github.OWNER}/{github.REPO}/issues"
        child = SourceSpec(name="chaos_issue_comments", kind="http_json", dataset="chaos_issue_comments",
                           declaration=DATASETS[1].to_dict(), url=base + "/{parent.number}/comments",
                           records_path="", pagination="link", page_size=50, rate_limit=self.rate_limit,
                           parent="chaos_issues", parents_per_job=10, on_status={"404": "skip"},
                           fields={"comment_id": "id", "issue_number": "parent.number"})
        return [SourceSpec(name="chaos_issues", kind="http_json", dataset="chaos_issues",
                           declaration=DATASETS[0].to_dict(), url=base, records_path="", pagination="link",
                           page_size=25, rate_limit=self.rate_limit, fields={"issue_number": "number"},
                           children=[child.to_dict()])]

    def listed(self, run_id: str, known: Sequence[str]) -> list[str]:
        """The run's jobs listed since ``known`` (the child jobs fanned out meanwhile)."""
        if not self.issues:
            return []
        seen = set(known)
        return [job_id for job_id in JobHistory(self._conn).job_ids(run_id) if job_id not in seen]

    def verdict(self) -> FanOutVerdict:
        expected = {c["id"] for n in range(1, self.issues + 1) if not github.comments_missing(n)
                    for c in github.comments_of(n)}
        with self._conn, self._conn.cursor() as cur:
            cur.execute(f"SELECT comment_id, count(*) FROM {COMMENTS_TABLE} GROUP BY comment_id")  # noqa: S608
            stored = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM fanout_parents WHERE child_source = 'chaos_issue_comments' "
                        "AND status <> 'done'")
            not_done = int(cur.fetchone()[0])
            cur.execute(f"SELECT count(*) FROM {ISSUES_TABLE}")  # noqa: S608
            not_done += self.issues - int(cur.fetchone()[0])  # an issue never stored fanned out nothing
        return FanOutVerdict(comments=len(expected), missing=len(expected - set(stored)),
                             duplicated=sum(1 for count in stored.values() if count > 1),
                             extra=len(set(stored) - expected), parents_not_done=not_done)
