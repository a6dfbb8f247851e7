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


def test_the_summary_counts_updated_rows_and_the_counts_add_up() -> None:
    from ingest_workers.core.models import Counts
    from ingest_workers.ops.history import SourceSummary
    from ingest_workers.ops.watch import format_table, summary_document

    summaries = [SourceSummary("crm", 1, 1, 0, Counts(fetched=100, rejected=5, duplicate=60, loaded=10, updated=25),
                               1.0, ()),
                 SourceSummary("shop", 1, 1, 0, Counts(fetched=10, loaded=10), 1.0, ())]
    document = summary_document("run-1", summaries, 2.0)
    assert document["sources"]["crm"]["updated"] == 25 and document["totals"]["updated"] == 25
    for counts in document["sources"].values():
        assert counts["fetched"] == counts["rejected"] + counts["duplicate"] + counts["loaded"] + counts["updated"]
    header, _, crm, *_ = format_table(document).splitlines()
    assert header.split() == ["source", "fetched", "rejected", "duplicate", "loaded", "updated", "seconds", "success",
                              "health"]
    assert crm.split()[:6] == ["crm", "100", "5", "60", "10", "25"]
