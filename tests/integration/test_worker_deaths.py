"""Workers killed with SIGKILL mid-job: the job runs again elsewhere within the configured
deadline, and a job that keeps killing its worker is quarantined with its reason."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Callback, Queue, Retry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import Worker
from rq.worker_registration import clean_worker_registry

from ingest_workers.cli import main
from ingest_workers.core.config import Settings
from ingest_workers.core.models import SourceSpec
from ingest_workers.guards.quarantine import deaths
from ingest_workers.runtime.producer import make_queue
from ingest_workers.runtime.worker import IngestWorker
from ingest_workers.runtime.workerpool import worker_command, worker_env
from ingest_workers.testing.fleet import WorkerFleet

pytestmark = pytest.mark.integration


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    # Taken over within 3 * 1 + max(2, 17 - 15) = 5 seconds.
    return dataclasses.replace(settings, job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17)


@pytest.fixture
def fleet(fast_settings: Settings, tmp_path: Path) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(lambda name: worker_command(fast_settings, name), worker_env(fast_settings, os.environ),
                        tmp_path / "workers.log")
    yield fleet
    fleet.close()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def enqueue(client: redis.Redis, settings: Settings, kind: str, job_id: str, max_kills: int = 3,
            seconds: float = 30) -> None:
    """Our fetch job (workers run no other) for a source of ``kind`` (a plugin of tests/plugins.py)."""
    spec = SourceSpec(name="shop", kind=kind, dataset="posts", options={"seconds": seconds})
    make_queue(client, settings).enqueue_call(
        "ingest_workers.runtime.jobs.fetch_source", args=(spec.to_dict(), "run-1"), job_id=job_id, timeout=120,
        retry=Retry(max=1),
        on_failure=Callback("ingest_workers.runtime.jobs.on_failure"),
        meta={"source": "shop", "run_id": "run-1", "max_kills": max_kills})


def test_a_job_whose_whole_worker_died_runs_again_elsewhere_within_the_deadline(
        redis_client: redis.Redis, fast_settings: Settings, fleet: WorkerFleet) -> None:
    queue = make_queue(redis_client, fast_settings)
    fleet.start(1)
    enqueue(redis_client, fast_settings, "tests.plugins:SleepingSource", "sleepy")
    wait_until(lambda: queue.fetch_job("sleepy").get_status() == "started", 20, "the job to start")
    first_worker = queue.fetch_job("sleepy").worker_name
    fleet.start(1)  # the survivor
    fleet.kill_worker(fleet.workers[0])  # worker and horse: nobody is left to report the job
    killed_at = time.monotonic()

    def running_elsewhere() -> bool:
        job = queue.fetch_job("sleepy")
        return job.get_status() == "started" and job.worker_name != first_worker

    wait_until(running_elsewhere, 20, "another worker to take the job over")
    taken_over_after = time.monotonic() - killed_at
    assert taken_over_after < 5 + 4  # the deadline, plus a scheduler tick and process start-up
    assert deaths(redis_client, "sleepy") == 1
    for worker in list(fleet.workers):
        fleet.kill_worker(worker)  # rather than wait for the 30 s job to end


@pytest.mark.timeout(300)  # RQ looks again at a job held in an intermediate list after a minute
def test_a_job_taken_by_a_worker_killed_before_it_started_runs_all_the_same(
        redis_client: redis.Redis, fast_settings: Settings, fleet: WorkerFleet, pg: object) -> None:
    # Workers listen to their queue and its children queue: two lists, which RQ's BLPOP emptied at
    # once, so a worker killed between its take and the started registry lost the job for good.
    queue = make_queue(redis_client, fast_settings)
    enqueue(redis_client, fast_settings, "tests.plugins:SleepingSource", "taken", seconds=0)
    enqueue(redis_client, fast_settings, "tests.plugins:SleepingSource", "plain", seconds=0)
    # What a worker killed right after its take leaves: the job in its queue's intermediate list only
    assert redis_client.lmove(queue.key, queue.intermediate_queue_key) == b"taken"
    fleet.start(1)
    wait_until(lambda: queue.fetch_job("plain").get_status() == "finished", 30, "the plain job to finish")
    wait_until(lambda: queue.fetch_job("taken").get_status() == "finished", 150, "the taken job to run again")
    # a job run to its end leaves no trace in the intermediate lists (nothing for the maintenance to redo)
    children = Queue(f"{queue.name}-children", connection=redis_client)
    assert redis_client.llen(queue.intermediate_queue_key) == redis_client.llen(children.intermediate_queue_key) == 0


def test_a_job_that_kills_its_worker_is_quarantined_then_listed_retried_and_purged(
        redis_client: redis.Redis, fast_settings: Settings, fleet: WorkerFleet, pg: object) -> None:
    queue = make_queue(redis_client, fast_settings)
    fleet.start(1)
    enqueue(redis_client, fast_settings, "tests.plugins:AbortingSource", "killer", max_kills=2)
    wait_until(lambda: queue.fetch_job("killer").get_status() == "failed", 30, "the job to be quarantined")
    job = queue.fetch_job("killer")
    assert deaths(redis_client, "killer") == 2
    assert job.meta["quarantined"] == "quarantined: its worker died 2 times without progress (max_kills=2)"
    assert fleet.workers[0].poll() is None  # the worker itself survived both deaths of its horse

    env = {"REDIS_URL": fast_settings.redis_url, "DATABASE_URL": fast_settings.database_url,
           "INGEST_QUEUE": fast_settings.queue}
    runner = CliRunner()
    listed = runner.invoke(main, ["failed", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "killer" in listed.output and "shop" in listed.output and "died 2 times" in listed.output

    retried = runner.invoke(main, ["failed", "retry", "killer"], env=env)
    assert retried.exit_code == 0 and "requeued killer" in retried.output
    wait_until(lambda: queue.fetch_job("killer").get_status() == "failed", 30, "the job to fail again")
    assert deaths(redis_client, "killer") == 2  # counted afresh after the retry

    unknown = runner.invoke(main, ["failed", "retry", "nope"], env=env)
    assert unknown.exit_code != 0 and "not among the failed jobs: nope" in unknown.output
    purged = runner.invoke(main, ["failed", "purge", "--yes"], env=env)
    assert purged.exit_code == 0 and "purged 1 failed jobs" in purged.output
    assert runner.invoke(main, ["failed", "list"], env=env).output.strip() == "no failed jobs"


def test_a_worker_dropped_from_the_registry_while_cut_off_registers_again(redis_client: redis.Redis) -> None:
    """A host cut off longer than its worker key's TTL (scripts/hosts found it): another worker's clean-up
    removed it from RQ's registry, and RQ's heartbeat only recreated a bare key."""
    worker = IngestWorker(["ingest-test"], connection=redis_client, serializer=JSONSerializer, name="cut.1.0")
    worker.register_birth()
    redis_client.delete(worker.key)  # its TTL ran out while the host was cut off
    clean_worker_registry(Queue("ingest-test", connection=redis_client))
    assert Worker.all(connection=redis_client) == []
    worker.heartbeat()  # the host is back
    [found] = Worker.all(connection=redis_client)
    assert (found.name, found.hostname, found.queue_names()) == ("cut.1.0", worker.hostname, ["ingest-test"])


def test_the_scheduler_lock_of_a_dead_host_is_freed_within_seconds(redis_client: redis.Redis) -> None:
    """scripts/hosts found it: a host killed while its worker ran RQ's scheduler left the lock held for 61 s,
    and no retry or deferred job was enqueued meanwhile."""
    worker = IngestWorker(["ingest-test", "other"], connection=redis_client, serializer=JSONSerializer,
                          name="alive.1.0")
    worker.scheduler = RQScheduler(worker.queues, connection=redis_client, serializer=JSONSerializer)
    redis_client.set("rq:scheduler-lock:ingest-test", "dead-host-scheduler", ex=61 - 11)  # 11 s unrenewed
    redis_client.set("rq:scheduler-lock:other", "live-scheduler", ex=61 - 2)  # renewed 2 s ago
    worker.run_maintenance_tasks()
    assert not redis_client.exists("rq:scheduler-lock:ingest-test")
    assert redis_client.get("rq:scheduler-lock:other") == b"live-scheduler"
