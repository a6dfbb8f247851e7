"""The chaos run, small: source faults, pages that stay unreadable, cursor sources, a
redirecting source and a paginator that never ends, SIGKILLed workers and a PostgreSQL
outage, then a clean re-run: still every served record is loaded once or rejected with its
reason, across the two runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from ingest_workers.testing.chaos import ChaosPlan, run_chaos
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.mock_faults import FaultConfig

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)  # about 70 s here; its plan allows 200 s, and a loaded CI machine is slower
def test_nothing_is_lost_or_duplicated_under_faults_kills_and_a_postgres_outage(
        services: Services, redis_client: redis.Redis, tmp_path: Path) -> None:
    plan = ChaosPlan(sources=4, records=1500, page_size=200, workers=3, rate_limit=20, merge_sources=2, passes=3,
                     faults=FaultConfig(error=0.2, throttle=0.1, malformed=0.05, drop=0.02, retry_after=1),
                     lossy_sources=2, unreadable=0.1, kill_every=4, pg_outage_at=5, pg_outage=6, timeout=200, seed=4)
    lines: list[str] = []
    result = run_chaos(plan, services.redis_url, services.database_url, tmp_path, log=lines.append)
    print(result.line())
    assert result.ok, result.line()
    assert (result.lost, result.duplicated, result.without_reason) == (0, 0, 0)
    # 4 sources and 2 lossy ones of 1,500 records, and the stuck paginator's first page (one batch: 500)
    assert result.loaded + result.rejected == result.served == 6 * 1500 + 500
    assert result.kills >= 1 and result.pg_cut_seconds >= 6  # the chaos really happened
    assert sum(result.faults.values()) > 0
    assert result.page_rejections >= 1 and result.faults["unreadable"] >= 1  # pages were lost, then re-fetched
    # The merge sources: their records changed between passes, and every key holds the last revision.
    assert result.merge.revision == plan.passes - 1 and result.merge.ok, result.line()
    assert result.merge.rows > 0 and result.merge.updated > 0
    # The history and the replace source read the same feed: no version twice, one revision's rows
    assert result.merge.history_broken == 0 and result.merge.replace_revision is not None, result.line()
    # The fan-out source: every comment of the issues (from the fixture's functions) stored once.
    assert result.fanout.ok and result.fanout.comments > 0, result.line()
