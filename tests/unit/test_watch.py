"""Progress figures read from the metrics hash (fakeredis here)."""

import fakeredis

from ingest_workers.ops.metrics import RECORDS, MetricsRecorder
from ingest_workers.ops.watch import RecordProgress


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
