"""Metrics counted in Redis (fakeredis here) and exposed in Prometheus's text format."""

import sys
import threading
from types import SimpleNamespace

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest_workers.ops.metrics import (
    FETCH_REQUESTS,
    JOB_DURATION,
    JOBS,
    LAST_SUCCESS,
    RECORDS,
    MetricsRecorder,
    RedisCollector,
    count_job_retry,
    read_counters,
    set_circuit_state,
)
from ingest_workers.pipeline.stream import SkippedSoFar


def scrape(client: fakeredis.FakeRedis) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(RedisCollector(client))
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def flush(client: fakeredis.FakeRedis, recorder: MetricsRecorder) -> None:
    pipe = client.pipeline()
    recorder.flush_to(pipe)
    pipe.execute()


def test_counts_from_many_recorders_add_up() -> None:
    client = fakeredis.FakeRedis()
    for _ in range(3):  # three job processes
        recorder = MetricsRecorder()
        recorder.inc(RECORDS, "shop", "load", "loaded", amount=10)
        recorder.inc(RECORDS, "shop", "validate", "rejected")
        flush(client, recorder)
    samples = scrape(client)
    labels = (("outcome", "loaded"), ("source", "shop"), ("stage", "load"))
    assert samples[("ingest_records_total", labels)] == 30
    assert samples[("ingest_records_total", (("outcome", "rejected"), ("source", "shop"), ("stage", "validate")))] == 3


def test_histograms_are_cumulative_with_sum_and_count() -> None:
    client = fakeredis.FakeRedis()
    recorder = MetricsRecorder()
    for seconds in (0.05, 0.3, 0.3, 5000):
        recorder.observe(JOB_DURATION, seconds, "ingest", "success")
    flush(client, recorder)
    samples = scrape(client)
    labels = (("outcome", "success"), ("queue", "ingest"))
    for le, expected in (("0.1", 1), ("0.5", 3), ("1800.0", 3), ("+Inf", 4)):
        assert samples[("ingest_job_duration_seconds_bucket", (("le", le), *labels))] == expected
    assert samples[("ingest_job_duration_seconds_count", labels)] == 4
    assert samples[("ingest_job_duration_seconds_sum", labels)] == pytest.approx(5000.65)


def test_gauges_keep_the_last_value() -> None:
    client = fakeredis.FakeRedis()
    for value in (100.0, 200.0):
        recorder = MetricsRecorder()
        recorder.set(LAST_SUCCESS, value, "shop")
        flush(client, recorder)
    assert scrape(client)[("ingest_last_success_timestamp_seconds", (("source", "shop"),))] == 200.0


def test_flush_forgets_what_it_sent() -> None:
    client = fakeredis.FakeRedis()
    recorder = MetricsRecorder()
    recorder.inc(RECORDS, "shop", "fetch", "fetched", amount=5)
    flush(client, recorder)
    flush(client, recorder)
    assert scrape(client)[("ingest_records_total", (("outcome", "fetched"), ("source", "shop"),
                                                    ("stage", "fetch")))] == 5


def test_wrong_label_count_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        MetricsRecorder().inc(RECORDS, "shop")


def test_foreign_fields_do_not_break_a_scrape() -> None:
    client = fakeredis.FakeRedis()
    client.hset("ingest:metrics", "garbage", 1)
    client.hset("ingest:metrics", '["unknown_metric",[],""]', 1)
    assert ("ingest_records_total", ()) not in scrape(client)


def test_catalog_sources_have_zero_series_and_a_closed_circuit_until_counted() -> None:
    client = fakeredis.FakeRedis()
    recorder = MetricsRecorder()
    recorder.inc(JOBS, "shop", "success", amount=2)
    flush(client, recorder)
    registry = CollectorRegistry()
    registry.register(RedisCollector(client, sources=["shop", "idle"]))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples[("ingest_jobs_total", (("outcome", "success"), ("source", "shop")))] == 2
    assert samples[("ingest_jobs_total", (("outcome", "failure"), ("source", "shop")))] == 0
    assert samples[("ingest_jobs_total", (("outcome", "success"), ("source", "idle")))] == 0
    assert samples[("ingest_fetch_retries_total", (("source", "idle"),))] == 0
    assert samples[("ingest_circuit_state", (("source", "idle"),))] == 0


def test_circuit_state_and_job_retries_published_for_other_modules() -> None:
    client = fakeredis.FakeRedis()
    set_circuit_state(client, "shop", "open")
    pipe = client.pipeline()
    set_circuit_state(pipe, "other", "half_open")
    pipe.execute()
    count_job_retry(client, "shop")
    count_job_retry(client, "shop")
    samples = scrape(client)
    assert samples[("ingest_circuit_state", (("source", "shop"),))] == 2
    assert samples[("ingest_circuit_state", (("source", "other"),))] == 1
    assert samples[("ingest_job_retries_total", (("source", "shop"),))] == 2
    with pytest.raises(ValueError, match="circuit state must be one of closed, half_open, open"):
        set_circuit_state(client, "shop", "ajar")


def test_read_counters_gives_zero_for_series_not_counted_yet() -> None:
    client = fakeredis.FakeRedis()
    recorder = MetricsRecorder()
    recorder.inc(RECORDS, "shop", "fetch", "fetched", amount=7)
    flush(client, recorder)
    assert read_counters(client, RECORDS, [("shop", "fetch", "fetched"), ("new", "fetch", "fetched")]) == [7, 0]


def test_the_recorder_loses_no_increment_from_another_thread() -> None:
    recorder, client = MetricsRecorder(), fakeredis.FakeRedis()

    sources = [f"shop_{i}" for i in range(50)]

    def count() -> None:
        for i in range(100_000):
            recorder.inc(FETCH_REQUESTS, sources[i % 50], "2xx")

    thread = threading.Thread(target=count)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy machine might
    try:
        thread.start()
        while thread.is_alive():
            recorder.flush_to(pipe := client.pipeline(transaction=False))
            pipe.execute()
    finally:
        sys.setswitchinterval(interval)
    recorder.flush_to(pipe := client.pipeline(transaction=False))
    pipe.execute()
    assert read_counters(client, FETCH_REQUESTS, [(source, "2xx") for source in sources]) == [2000] * 50


def test_requests_skipped_by_on_status_are_counted_by_source_alone() -> None:
    """A source's skipped requests (``on_status = {404 = "skip"}``) as the job reads them, a few at a
    time: the counter adds up, labelled by source only (no URL, no parent key)."""
    client, recorder = fakeredis.FakeRedis(), MetricsRecorder()
    source = SimpleNamespace(skipped=0)
    so_far = SkippedSoFar(source, recorder, "gh_issue_comments")
    seen = []
    for total in (0, 3, 3, 5):  # the source's own running count after each batch
        source.skipped = total
        seen.append(so_far.new())
    flush(client, recorder)
    assert seen == [0, 3, 0, 2]
    assert scrape(client)[("ingest_requests_skipped_total", (("source", "gh_issue_comments"),))] == 5
