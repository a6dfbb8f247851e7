"""Two real `ingest schedule` processes (and a restart of one) enqueue each due source once
per slot, and never while the source's previous run is still in flight."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner
from rq.job import Job

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.core.schedules import next_run, period, slot_start
from ingest_workers.ops.metrics import METRICS_KEY, SLOTS_SKIPPED, _field
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.scheduler import STATE_PREFIX, SourceScheduler
from ingest_workers.runtime.workerpool import local_workers, worker_env
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import broken_products, scalar, wait_until, write_catalog

pytestmark = pytest.mark.integration

ENQUEUED = re.compile(r"source (\w+): enqueued job (\S+) for the slot")
SKIPPED = re.compile(r"source (\w+): skipping this slot, its last run \(job \S+\) is still in flight")
SPEC = SourceSpec(name="sched", kind="http_json", dataset="products", url="http://127.0.0.1:1/p")


def start_scheduler(settings: Settings, catalog: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "schedule",
                                 "--poll", "0.1"], env=worker_env(settings, os.environ), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    assert process.wait(timeout=10) == 0  # a clean stop on SIGTERM


def enqueued(logs: list[Path]) -> list[tuple[str, str]]:
    """(source, job id) of every job any scheduler says it enqueued."""
    return [match.groups() for log in logs if log.exists() for match in ENQUEUED.finditer(log.read_text())]


def skipped(logs: list[Path], source: str) -> int:
    """How many slots of ``source`` the schedulers skipped (its run in flight)."""
    return sum(match.group(1) == source for log in logs if log.exists() for match in SKIPPED.finditer(log.read_text()))


def test_two_schedulers_and_a_restart_fire_each_slot_once_with_one_run_in_flight(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=300)
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products", name="shop_fast",
                            extra="interval_seconds = 1\n[sources.shop_slow]\nkind = \"http_json\"\n"
                                  f"dataset = \"products\"\nurl = \"{mock_server.url}/products\"\n"
                                  "interval_seconds = 2\nfields = { product_id = \"id\", name = \"title\" }\n")
    logs = [tmp_path / f"scheduler-{name}.log" for name in ("a", "b", "a-restarted")]
    queue = make_queue(redis_client, settings)
    processes = [start_scheduler(settings, catalog, log) for log in logs[:2]]
    first, second = processes
    try:
        # No workers yet: the first run of each source stays queued, so later slots must be skipped.
        wait_until(lambda: len(enqueued(logs)) == 2, timeout=20)
        # Later slots came and went: two of shop_fast and one of shop_slow were skipped...
        wait_until(lambda: skipped(logs, "shop_fast") >= 2 and skipped(logs, "shop_slow") >= 1, timeout=20)
        assert sorted(source for source, _ in enqueued(logs)) == ["shop_fast", "shop_slow"]  # ...none enqueued
        assert queue.count == 2

        stop(first)
        restarted = start_scheduler(settings, catalog, logs[2])
        processes.append(restarted)
        with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
            def finished(source: str) -> int:
                return scalar(pg, "SELECT count(*) FROM ingest_jobs WHERE source = %s AND status = 'finished'",
                              source)
            wait_until(lambda: finished("shop_fast") >= 4 and finished("shop_slow") >= 2, timeout=30)
            stop(second)
            stop(restarted)
            wait_until(lambda: queue.count == 0 and queue.started_job_registry.count == 0, timeout=30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    fired = enqueued(logs)
    job_ids = [job_id for _, job_id in fired]
    assert len(job_ids) == len(set(job_ids)), "a slot was enqueued twice"
    with pg, pg.cursor() as cur:
        cur.execute("SELECT source, job_id, attempts, status, started_at, finished_at FROM ingest_jobs "
                    "ORDER BY source, started_at")
        history = cur.fetchall()
    assert sorted(job_id for _, job_id, *_ in history) == sorted(job_ids)  # what ran is what was fired
    assert all((attempts, status) == (1, "finished") for _, _, attempts, status, _, _ in history)
    for earlier, later in zip(history, history[1:]):
        if earlier[0] == later[0]:
            assert later[4] >= earlier[5], f"{later[1]} started while {earlier[1]} was in flight"
    valid = 300 - broken_products(300)
    assert scalar(pg, "SELECT count(*) FROM products") == 2 * valid


def test_schedule_without_scheduled_sources_is_a_one_line_error(settings: Settings, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.toml", "http://127.0.0.1:1/products")  # no interval_seconds
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "--redis-url", settings.redis_url, "schedule"])
    assert result.exit_code == 1
    assert result.output == ("error: no selected source has interval_seconds or schedule in the catalog; "
                             "nothing to schedule\n")


DAY = 86_400
THREE_AM = datetime(2026, 12, 4, 3, 0, tzinfo=UTC).timestamp()  # a slot of "0 3 * * *"


def test_a_cron_schedule_fires_its_slot_once_agreed_by_two_schedulers_and_counts_a_skipped_slot(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path,
) -> None:
    spec = SourceSpec(name="nightly", kind="http_json", dataset="products", url="http://127.0.0.1:1/p",
                      schedule="0 3 * * *")
    moment = [THREE_AM + 17 * 60]  # 03:17: the 03:00 slot is due (a scheduler started late makes it up)
    queue = make_queue(redis_client, settings)
    host_a, host_b = (SourceScheduler(queue, settings, [spec], clock=lambda: moment[0]) for _ in range(2))

    [fired] = host_a.tick()
    assert fired.job_id.startswith("sched-20261204T030000Z") and fired.created
    assert host_b.tick() == []  # the other host agrees the slot has fired
    moment[0] = THREE_AM + 23 * 3600  # 02:00 next day: still the same slot
    assert host_a.tick() == [] and host_b.tick() == [] and queue.count == 1

    moment[0] = THREE_AM + DAY + 5  # the next slot, while the first run is still queued: skipped, counted once
    assert host_a.tick() == [] and host_b.tick() == [] and host_a.tick() == []
    state = redis_client.hgetall(STATE_PREFIX + "nightly")
    assert int(state[b"skipped"]) == 1 and queue.count == 1
    assert int(redis_client.hget(METRICS_KEY, _field(SLOTS_SKIPPED, ("nightly",)))) == 1

    Job.fetch(fired.job_id, connection=redis_client, serializer=queue.serializer).delete()  # the run ended
    moment[0] = THREE_AM + 2 * DAY + 60
    [fired] = host_b.tick()
    assert fired.job_id.startswith("sched-20261206T030000Z")


def test_cron_slots_and_next_runs_come_from_the_expression() -> None:
    spec = SourceSpec(name="s", kind="http_json", dataset="products", schedule="*/15 6-7 * * 1-5")
    friday_0640 = datetime(2026, 12, 4, 6, 40, tzinfo=UTC).timestamp()
    assert slot_start(spec, friday_0640) == datetime(2026, 12, 4, 6, 30, tzinfo=UTC).timestamp()
    assert next_run(spec, friday_0640) == datetime(2026, 12, 4, 6, 45, tzinfo=UTC).timestamp()
    friday_0750 = datetime(2026, 12, 4, 7, 50, tzinfo=UTC).timestamp()
    assert next_run(spec, friday_0750) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC).timestamp()  # Monday
    exactly = datetime(2026, 12, 7, 6, 0, tzinfo=UTC).timestamp()
    assert slot_start(spec, exactly) == exactly  # a slot starts at its own time, not the one before
    every_ten_minutes = SourceSpec(name="m", kind="http_json", dataset="products", interval_seconds=600)
    assert slot_start(every_ten_minutes, exactly + 601) == exactly + 600
    assert next_run(every_ten_minutes, exactly + 601) == exactly + 1200


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC).timestamp()


def fire(redis_client: redis.Redis, settings: Settings, interval: int, moment: float) -> list[str]:
    """One tick of a scheduler of SPEC every ``interval`` seconds at ``moment``; the jobs it
    enqueued are deleted (ended), so a run in flight never holds a slot back here."""
    queue = make_queue(redis_client, settings)
    spec = dataclasses.replace(SPEC, interval_seconds=interval)
    fired = SourceScheduler(queue, settings, [spec], clock=lambda: moment).tick()
    for item in fired:
        redis_client.delete(f"rq:job:{item.job_id}")
    return [f"{item.slot_start:%H:%M}" for item in fired]


def test_scheduler_slots_survive_an_interval_change(redis_client: redis.Redis, settings: Settings) -> None:
    """300 s -> 3600 s fires at the next hour, and back to 300 s at the next 5 minutes."""
    assert fire(redis_client, settings, 300, at(10, 56)) == ["10:55"]
    assert fire(redis_client, settings, 3600, at(10, 58)) == []  # the hour's slot started before 10:55
    assert fire(redis_client, settings, 3600, at(11, 0, 30)) == ["11:00"]
    assert fire(redis_client, settings, 3600, at(11, 30)) == []
    assert fire(redis_client, settings, 300, at(11, 3)) == []  # 11:00 was fired already
    assert fire(redis_client, settings, 300, at(11, 5, 10)) == ["11:05"]


def test_a_cron_source_s_period_is_its_slot_for_the_staleness_alert() -> None:
    nightly = SourceSpec(name="n", kind="http_json", dataset="products", schedule="0 3 * * *")
    weekdays = SourceSpec(name="w", kind="http_json", dataset="products", schedule="0 9 * * 1-5")
    friday_noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()
    assert period(nightly, friday_noon) == DAY
    assert period(weekdays, friday_noon) == 3 * DAY  # Friday 09:00 to Monday 09:00
    assert period(SourceSpec(name="i", kind="http_json", dataset="products", interval_seconds=90), friday_noon) == 90
    assert period(SourceSpec(name="u", kind="http_json", dataset="products"), friday_noon) is None
