"""Progress figures read from the metrics hash, and waiting through a Redis outage (fakeredis here)."""

import logging
import threading
import time
from pathlib import Path

import fakeredis
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from ingest_workers.cli.runs import _watch
from ingest_workers.core.config import Settings
from ingest_workers.core.errors import ServiceUnavailable
from ingest_workers.ops.metrics import RECORDS, MetricsRecorder
from ingest_workers.ops.watch import RecordProgress, RedisOutage, wait_for_jobs
from ingest_workers.runtime.producer import Enqueued


def publish(client: fakeredis.FakeRedis, source: str, fetched: int) -> None:
    recorder = MetricsRecorder()
    recorder.inc(RECORDS, source, "fetch", "fetched", amount=fetched)
    recorder.inc(RECORDS, source, "load", "loaded", amount=fetched)  # not a fetch: not counted
    pipe = client.pipeline()
    recorder.flush_to(pipe)
    pipe.execute()


def test_counts_records_of_its_sources_since_it_was_made() -> None:
    client = fakeredis.FakeRedis()
    publish(client, "shop_a", 500)  # an earlier run
    now = [100.0]
    progress = RecordProgress(client, ["shop_a", "shop_b"], clock=lambda: now[0])
    assert progress.describe() == "0 records fetched (0/s)"
    publish(client, "shop_a", 1500)
    publish(client, "shop_b", 500)
    publish(client, "shop_other", 999)
    now[0] = 104.0
    assert progress.describe() == "2,000 records fetched (500/s)"
    assert progress.elapsed() == 4.0


def test_the_summary_counts_updated_rows_and_the_counts_add_up() -> None:
    from ingest_workers.core.models import Counts
    from ingest_workers.ops.history import SourceSummary
    from ingest_workers.ops.watch import format_table, summary_document

    summaries = [SourceSummary("crm", 1, 1, 0, Counts(fetched=100, rejected=5, duplicate=57, loaded=10, updated=25,
                                                               deleted=3), 1.0, ()),
                 SourceSummary("shop", 1, 1, 0, Counts(fetched=10, loaded=10), 1.0, ())]
    document = summary_document("run-1", summaries, 2.0)
    assert document["sources"]["crm"]["updated"] == 25 and document["totals"]["updated"] == 25
    assert document["sources"]["crm"]["deleted"] == 3 and document["totals"]["deleted"] == 3
    for counts in document["sources"].values():
        assert counts["fetched"] == (counts["rejected"] + counts["duplicate"] + counts["loaded"] + counts["updated"]
                                     + counts["deleted"])
    header, _, crm, *_ = format_table(document).splitlines()
    assert header.split() == ["source", "fetched", "rejected", "duplicate", "loaded", "updated", "deleted", "seconds",
                              "success", "health"]
    assert crm.split()[:7] == ["crm", "100", "5", "57", "10", "25", "3"]


def _unreachable_queue() -> tuple[fakeredis.FakeServer, Queue]:
    server = fakeredis.FakeServer()
    server.connected = False  # every command raises redis.ConnectionError
    return server, Queue("q", connection=fakeredis.FakeRedis(server=server), serializer=JSONSerializer)


def test_waiting_gives_up_when_redis_stays_away_past_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    _, queue = _unreachable_queue()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ingest_workers.ops.watch"), \
            pytest.raises(ServiceUnavailable, match=r"Redis did not answer for \d+ s .*limit 0.5 s"):
        wait_for_jobs(queue, ["job-1"], lambda state: None, timeout=30, poll=0.02, outage_limit=0.5)
    assert 0.5 <= time.monotonic() - started < 10
    assert len([r for r in caplog.records if "does not answer" in r.getMessage()]) == 1  # once, not every poll


def test_an_outage_shorter_than_the_limit_is_logged_once_and_its_end_too(caplog: pytest.LogCaptureFixture) -> None:
    server, queue = _unreachable_queue()
    threading.Timer(0.4, lambda: setattr(server, "connected", True)).start()
    with caplog.at_level(logging.WARNING, logger="ingest_workers.ops.watch"):
        state = wait_for_jobs(queue, ["job-1"], lambda state: None, timeout=30, poll=0.02, outage_limit=20)
    assert state.missing == ("job-1",)  # Redis answered: the job is unknown to it
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "does not answer" in m]) == 1
    assert len([m for m in messages if m.startswith("Redis answers again after")]) == 1


def test_an_outage_clock_restarts_after_redis_answered() -> None:
    now = [0.0]
    outage = RedisOutage(10, clock=lambda: now[0])
    outage.failed(redis.ConnectionError("down"))
    now[0] = 9.0
    outage.answered()
    now[0] = 15.0
    outage.failed(redis.ConnectionError("down again"))  # a new outage: 0 s old, not 15
    now[0] = 25.0
    with pytest.raises(ServiceUnavailable, match="down again"):
        outage.failed(redis.ConnectionError("down again"))


def test_a_replace_switchs_rows_are_deleted_in_the_summary_apart_from_the_records_identity() -> None:
    from ingest_workers.core.models import Counts
    from ingest_workers.ops.drift_history import SwitchDone
    from ingest_workers.ops.history import SourceSummary
    from ingest_workers.ops.watch import format_table, summary_document

    switch = SwitchDone("run run-2 replaced the rows of source items in items: 4 gone, 6 new or changed", 4, {},
                        "replaced")
    summaries = [SourceSummary("items", 2, 2, 0, Counts(fetched=30, duplicate=20, loaded=2, updated=8), 1.0, (),
                               switch=switch),
                 SourceSummary("crm", 1, 1, 0, Counts(fetched=10, loaded=7, deleted=3), 1.0, ())]
    document = summary_document("run-2", summaries, 2.0)
    items = document["sources"]["items"]
    assert (items["deleted"], items["replace"]["deleted"], document["totals"]["deleted"]) == (4, 4, 7)
    assert items["fetched"] == (items["rejected"] + items["duplicate"] + items["loaded"] + items["updated"]
                                + items["deleted"] - items["replace"]["deleted"])
    lines = format_table(document).splitlines()
    assert lines[2].split()[:7] == ["items", "30", "0", "20", "2", "8", "4"]
    assert f"items: {switch.detail}" in lines


@pytest.mark.timeout(30)  # unwired, the watch waited a fixed 60 s
def test_a_watched_run_waits_for_redis_as_long_as_the_service_wait_setting(tmp_path: Path) -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    records = RecordProgress(client, ["shop"])
    server.connected = False  # Redis goes away once the run is enqueued
    queue = Queue("q", connection=client, serializer=JSONSerializer)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"limit 1.5 s"):
        _watch(Settings(service_wait=1.5, progress_interval=0.1), queue, "run-1",
               [Enqueued("shop", "run-1-shop", True)], records, None, tmp_path / "summary.json", lambda: [])
    assert 1.5 <= time.monotonic() - started < 20
