"""What the scenario reads while it runs: RQ's worker registry in Redis, the job history in
PostgreSQL (``ingest_jobs``) and the metrics endpoint; nothing from a log."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg2
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from psycopg2 import sql
from rq.worker import Worker


def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; RuntimeError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def host_of(worker_name: str) -> str:
    """The host a worker runs on: worker names are ``<hostname>.<pid>.<index>``."""
    return worker_name.split(".", 1)[0]


class Probes:
    """Reads from the lab's Redis and PostgreSQL (a new connection per query: a run cuts links)."""

    def __init__(self, client: redis.Redis, database_url: str) -> None:
        self.client, self.database_url = client, database_url

    def workers(self) -> list[Worker]:
        return Worker.all(connection=self.client)

    def busy_job(self, host: str, wait: bool = True) -> str:
        """The job a worker of ``host`` runs now (with ``wait``, until it runs one; else "" if none)."""
        deadline = time.monotonic() + 60
        while True:
            for worker in self.workers():
                if worker.hostname == host and worker.get_current_job_id():
                    return str(worker.get_current_job_id())
            if not wait:
                return ""
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host} never took a job")
            time.sleep(0.2)

    def runner(self, job_id: str) -> str:
        """The host whose worker runs ``job_id`` now ("" if none does)."""
        for worker in self.workers():
            if worker.get_current_job_id() == job_id:
                return str(worker.hostname)
        return ""

    def has_workers(self, host: str) -> bool:
        return any(worker.hostname == host for worker in self.workers())

    def attempts(self, job_id: str) -> int:
        """Attempts of ``job_id`` started so far (the pipeline counts them in ``ingest_jobs``)."""
        return int(self.query("SELECT coalesce(max(attempts), 0) FROM ingest_jobs WHERE job_id = %s", job_id)[0])

    def finished(self, sources: Sequence[str]) -> int:
        """How many jobs of ``sources`` finished."""
        return int(self.query("SELECT count(*) FROM ingest_jobs WHERE source = ANY(%s) AND status = 'finished'",
                              list(sources))[0])

    def source_of(self, job_id: str) -> str:
        row = self.query("SELECT coalesce(max(source), '') FROM ingest_jobs WHERE job_id = %s", job_id)
        return str(row[0])

    def query(self, statement: str, *params: object) -> tuple[object, ...]:
        """The first row of ``statement``."""
        with psycopg2.connect(self.database_url, connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            row = cur.fetchone()
        conn.close()
        return tuple(row)


def wait_for_services(redis_url: str, database_url: str) -> redis.Redis:
    """A client of the lab's Redis once Redis and PostgreSQL answer (the database made if missing)."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    database = database_url.rsplit("/", 1)[1]

    def up() -> bool:
        try:
            client.ping()
            conn = psycopg2.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=1)
        except (redis.RedisError, psycopg2.Error):
            return False
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cur.fetchone():
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        conn.close()
        return True

    until(up, 60, "Redis and PostgreSQL on the services host")
    return client


def scrape_loaded(url: str, sources: Sequence[str]) -> int | None:
    """Records the metrics endpoint counts as loaded for ``sources`` (None: it did not answer)."""
    try:
        text = requests.get(url, timeout=5).text
    except requests.RequestException:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ingest_records_total" and sample.labels.get("outcome") == "loaded" and \
                    sample.labels.get("source") in sources:
                total += sample.value
    return int(total)
