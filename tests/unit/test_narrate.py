"""The resilience demo's narration: worker log lines, breaker states and request rates in plain words."""

import json
from pathlib import Path

import fakeredis

from ingest_workers.testing.narrate import BreakerWatch, LogTail, RateWatch, describe_log_line


def line(message: str) -> str:
    return json.dumps({"level": "WARNING", "logger": "ingest_workers.pipeline.job", "message": message,
                       "source": "shop", "run_id": "r", "job_id": "r-shop"})


def test_log_lines_in_plain_words() -> None:
    assert describe_log_line(line("source shop_down: GET http://127.0.0.1:9/products: HTTP 503; retrying in 1.3s")) \
        == "shop_down: the source answered 503 (a server error); trying again in 1.3s (each wait longer than the last)"
    assert "'too many requests' (429); waiting 2.0s as it asks" in describe_log_line(
        line("source shop_slow: GET http://127.0.0.1:9/v2/catalog: HTTP 429; retrying in 2.0s"))
    assert describe_log_line(line("source shop_flaky: GET http://127.0.0.1:9/x: ConnectionError; retrying in 0.6s")) \
        == "shop_flaky: the connection broke; trying again in 0.6s"
    assert describe_log_line(line("source shop_flaky: GET http://h/x: the body is not JSON; retrying in 1.4s")) \
        == "shop_flaky: the page came back cut short (not valid JSON); trying again in 1.4s"
    deferred = describe_log_line(line("job r-shop_down: source shop_down: circuit open; next try in 4.2s; "
                                      "deferring after {'fetched': 0, 'rejected': 0, 'duplicate': 0, 'loaded': 0}"))
    assert deferred.startswith("shop_down: circuit open, so the job does not call the source") and "in 4s" in deferred
    assert describe_log_line(line("job r-shop_down: source shop_down failed after {'fetched': 0, 'rejected': 0, "
                                  "'duplicate': 0, 'loaded': 0}: GET http://h/products: HTTP 503")) \
        == "shop_down: this attempt of the job failed (GET http://h/products: HTTP 503)"
    assert describe_log_line(line("job r-shop: source shop done: {'fetched': 10, 'rejected': 1, 'duplicate': 2, "
                                  "'loaded': 7}")) == "shop: finished: 7 loaded, 1 rejected, 2 already there"
    assert describe_log_line(line("job r-shop: fetching source shop (run r)")) is None
    assert describe_log_line("01:02:03 Worker w: ingest: fetch shop (run r)") is None  # RQ's own text lines


def test_the_log_tail_gives_complete_new_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    log.write_text("before\n")
    tail = LogTail(log)
    assert tail.new_lines() == []
    with log.open("a") as out:
        out.write("one\ntw")
    assert tail.new_lines() == ["one"]
    with log.open("a") as out:
        out.write("o\n")
    assert tail.new_lines() == ["two"]


def test_breaker_changes_are_told_once_each() -> None:
    client = fakeredis.FakeRedis()
    watch = BreakerWatch(client, ["shop"], "ingest:breaker:")
    assert watch.changes() == []
    client.hset("ingest:breaker:shop", mapping={"state": "open", "failures": 3, "until": 100})
    [opened] = watch.changes()
    assert opened.startswith("shop: 3 failures in a row: its circuit breaker OPENS")
    assert watch.changes() == []
    client.hset("ingest:breaker:shop", mapping={"state": "half_open", "until": 200})
    assert "ONE probe request" in watch.changes()[0]
    client.hset("ingest:breaker:shop", mapping={"state": "open", "failures": 4, "until": 300})
    assert watch.changes() == ["shop: the probe failed: the circuit opens again, for another cool-down"]
    client.hset("ingest:breaker:shop", mapping={"state": "open", "failures": 5, "until": 400})  # half-open unseen
    assert watch.changes() == ["shop: the probe failed: the circuit opens again, for another cool-down"]
    assert watch.reopened == {"shop"}
    client.hset("ingest:breaker:shop", mapping={"state": "closed", "failures": 0, "until": 0})
    assert "circuit closed" in watch.changes()[0]


def test_the_rate_is_told_every_window() -> None:
    now = [0.0]
    stamps = [0.6 + i * 0.25 for i in range(20)]  # 4 a second, all within the last 5 s
    watch = RateWatch({"shop": lambda: stamps}, {"shop": 4}, lambda: now[0], window=5.0)
    assert watch.report() == []
    now[0] = 5.5
    assert watch.report() == ["shop: 4.0 requests/s in the last 5s (its limit: 4/s, for all workers together)"]
    assert watch.report() == []
