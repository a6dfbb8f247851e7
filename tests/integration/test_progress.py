"""Job progress in Redis: where a resumed job starts, and why its deaths stop counting."""

from __future__ import annotations

import pytest
import redis

from ingest_workers.guards.progress import JobProgress
from ingest_workers.guards.quarantine import DEATHS_PREFIX, deaths

pytestmark = pytest.mark.integration


def test_progress_resumes_and_getting_further_clears_the_death_count(redis_client: redis.Redis) -> None:
    progress = JobProgress(redis_client, "job-1")
    assert progress.page() == 1
    redis_client.set(DEATHS_PREFIX + "job-1", 2)
    progress.save(1)  # the same page again: no progress, the deaths still count
    assert deaths(redis_client, "job-1") == 2
    progress.save(4)
    assert deaths(redis_client, "job-1") == 0
    assert JobProgress(redis_client, "job-1").page() == 4

    resumed = JobProgress(redis_client, "job-1")
    assert resumed.page() == 4
    redis_client.set(DEATHS_PREFIX + "job-1", 2)
    resumed.save(4)  # a poison record on page 4 kills it again and again: the count climbs
    assert deaths(redis_client, "job-1") == 2
    resumed.clear()
    assert JobProgress(redis_client, "job-1").page() == 1
