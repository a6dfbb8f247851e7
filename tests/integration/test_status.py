"""`ingest status` reads the job history from PostgreSQL and the queues from Redis."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2.extensions
import pytest
import redis
from click.testing import CliRunner

from ingest_workers.catalog import load_catalog
from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.models import Counts
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.status import source_status
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers, worker_env
from ingest_workers.testing.mock_sources import MockConfig, MockServer
from tests.helpers import scalar, write_catalog

pytestmark = pytest.mark.integration


def status(settings: Settings, catalog: Path, *flags: str) -> str:
    env = {"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url, "INGEST_QUEUE": settings.queue}
    result = CliRunner().invoke(main, ["--catalog", str(catalog), "status", *flags], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_with_a_failing_source_shows_it_unhealthy_with_its_reason(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=700)
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products", name="shop_good",
                            extra=f'[sources.shop_broken]\nkind = "http_json"\ndataset = "products"\n'
                                  f'url = "{mock_server.url}/missing"\n'
                                  f'[sources.shop_idle]\nkind = "http_json"\ndataset = "products"\nurl = "http://x"\n'
                                  'schedule = "30 4 * * *"\n')
    specs = [s for s in load_catalog(catalog, {}).sources.values() if s.name != "shop_idle"]
    queue = make_queue(redis_client, settings)
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        enqueued = enqueue_run(queue, settings, specs, "run-1")
        assert wait_for_jobs(queue, [e.job_id for e in enqueued], lambda state: None, timeout=60).done == 2
        document = json.loads(status(settings, catalog, "--json"))
        text = status(settings, catalog)

    good, broken, idle = (document["sources"][name] for name in ("shop_good", "shop_broken", "shop_idle"))
    assert (good["health"], good["success_rate"], good["jobs"]) == ("healthy", 1.0, 1)
    assert good["loaded"] == scalar(pg, "SELECT count(*) FROM products") > 0
    assert good["last_run"]["status"] == "finished" and good["recent_failures"] == []
    assert (broken["health"], broken["success_rate"], broken["loaded"]) == ("unhealthy", 0.0, 0)
    assert broken["last_run"]["status"] == "failed"
    [failure] = broken["recent_failures"]
    assert failure["job_id"] == "run-1-shop_broken" and "HTTP 404" in failure["error"]
    assert (idle["health"], idle["last_run"]) == ("no runs", None)
    now = datetime.now(UTC)  # the next 04:30 UTC, the idle source's schedule
    expected = now.replace(hour=4, minute=30, second=0, microsecond=0)
    expected += timedelta(days=1) if expected <= now else timedelta(0)
    assert idle["next_run"] == expected.isoformat() and broken["next_run"] is None
    assert document["queues"][settings.queue] | {"started": 0} == {
        "queued": 0, "started": 0, "scheduled": 0, "deferred": 0, "failed": 1, "finished": 1, "workers": 2}

    lines = text.splitlines()
    assert any(line.startswith("shop_broken") and "failed" in line and "unhealthy" in line for line in lines)
    assert any(line.startswith("shop_good") and "healthy" in line and "100% of 1" in line for line in lines)
    assert any("run-1-shop_broken" in line and "HTTP 404" in line for line in lines)
    assert f"queue {settings.queue}: queued 0" in text and "live workers 2" in text
    assert any(line.startswith("shop_idle") and line.endswith(expected.strftime("%Y-%m-%d %H:%M:%SZ"))
               for line in lines)


def test_health_thresholds_over_the_window(pg: psycopg2.extensions.connection) -> None:
    history = JobHistory(pg)
    outcomes = {"shop_flaky": [True] * 9 + [False], "shop_fine": [True] * 20, "shop_bad": [True] * 3 + [False]}
    for source, results in outcomes.items():
        for index, ok in enumerate(results):
            job_id = f"r{index}-{source}"
            history.started(job_id, f"r{index}", source)
            if ok:
                history.finished(job_id, Counts(fetched=10, loaded=7, updated=3))
            else:
                history.failed(job_id, Counts(), "TransientError: HTTP 503")
    history.started("old-shop_fine", "old", "shop_fine")  # outside the window: not counted
    history.failed("old-shop_fine", Counts(), "PermanentError: long ago")
    with pg, pg.cursor() as cur:
        cur.execute("UPDATE ingest_jobs SET started_at = now() - interval '2 days' WHERE job_id = 'old-shop_fine'")

    report = source_status(pg, ["shop_fine"], hours=24)
    assert {name: (s["health"], s["success_rate"]) for name, s in report.items()} == {
        "shop_flaky": ("degraded", 0.9), "shop_fine": ("healthy", 1.0), "shop_bad": ("unhealthy", 0.75)}
    assert report["shop_fine"]["loaded"] == 140 and report["shop_fine"]["recent_failures"] == []
    assert report["shop_fine"]["updated"] == 60
    assert report["shop_fine"]["last_run"]["run_id"] != "old"
    assert [f["error"] for f in report["shop_bad"]["recent_failures"]] == ["TransientError: HTTP 503"]


def test_enqueue_wait_ends_with_the_table_and_fails_when_a_job_failed(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, mock_server: MockServer,
    tmp_path: Path,
) -> None:
    mock_server.config = MockConfig(records=300)
    catalog = write_catalog(tmp_path / "c.toml", f"{mock_server.url}/products", name="shop_good",
                            extra=f'[sources.shop_broken]\nkind = "http_json"\ndataset = "products"\n'
                                  f'url = "{mock_server.url}/missing"\n')
    settings = dataclasses.replace(settings, log_format="json")
    env = worker_env(settings, os.environ)
    with local_workers(settings, 2, os.environ, tmp_path / "workers.log"):
        done = subprocess.run([sys.executable, "-m", "ingest_workers", "--catalog", str(catalog), "--log-format",
                               "json", "enqueue", "--sources", "all", "--wait", "--timeout", "60"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert done.returncode == 1, done.stdout + done.stderr
    table = done.stdout.splitlines()
    assert any(line.startswith("shop_good") and line.endswith("healthy") for line in table)
    assert any(line.startswith("shop_broken") and line.endswith("unhealthy") for line in table)
    assert "jobs" in done.stderr  # the progress bar (drawn in full on a terminal)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["totals"]["loaded"] == scalar(pg, "SELECT count(*) FROM products") > 0
    assert summary["totals"]["updated"] == 0 and summary["sources"]["shop_good"]["updated"] == 0

    # The workers' own lines are JSON, each naming its source, run and job.
    ours = [json.loads(line) for line in (tmp_path / "workers.log").read_text().splitlines()
            if line.startswith("{")]
    assert {line["source"] for line in ours} == {"shop_good", "shop_broken"}
    for line in ours:
        assert line["logger"].startswith("ingest_workers")
        assert line["job_id"] == f"{line['run_id']}-{line['source']}"
    assert any(line["level"] == "ERROR" and "HTTP 404" in line["message"] for line in ours)
