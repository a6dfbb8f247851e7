"""Security: workers refuse pickled jobs, and planted secrets never show in logs,
command output, the summary or the metrics."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.extensions
import pytest
import redis
import requests
from psycopg2 import sql
from rq import Callback, Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from ingest_workers.core.config import Settings
from ingest_workers.core.connections import connect_postgres
from ingest_workers.core.errors import ServiceUnavailable
from ingest_workers.core.models import SourceSpec
from ingest_workers.ops.failed import FailedJobs
from ingest_workers.ops.history import JobHistory
from ingest_workers.ops.watch import wait_for_jobs
from ingest_workers.runtime.producer import enqueue_run, make_queue
from ingest_workers.runtime.workerpool import local_workers, worker_command, worker_env
from ingest_workers.testing.devservices import Services, free_port
from ingest_workers.testing.fleet import WorkerFleet, children
from tests.helpers import private_redis, redis_contents, scalar, wait_until

pytestmark = pytest.mark.integration
TOKEN = "planted-token-7f3a9c"  # the auth header's value (auth_env)
URL_KEY = "planted-urlkey-c2e8"  # a ${VAR} in a URL's query
PATH_KEY = "planted-pathkey-4b1d"  # a ${VAR} in a URL's path
REDIS_PASSWORD = "planted-redispass-8e21"  # Redis's default user
REDIS_USER_PASSWORD = "planted-aclpass-93d7"  # a Redis ACL user
PG_PASSWORD = "planted-pgpass-51be0d"
HEADER_KEY = "planted-headerkey-77c1"  # a ${VAR} in a static header
BEARER = "planted-bearer-0a9f"  # auth kind bearer
BASIC_USER, BASIC_PASSWORD = "planted-user-5d2c", "planted-basicpass-e3b4"  # auth kind basic
API_KEY = "planted-apikey-61f0"  # auth kind api_key, in the query and in a header
BASIC = "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
# OAuth2: the client's id and secret, a refresh token, a refresh token the endpoint refuses, and the
# access token the endpoint issues (the worker never reads that one from its environment).
CLIENT_ID, CLIENT_SECRET = "planted-clientid-3f8e", "planted-clientsecret-a61c"
REFRESH, BAD_REFRESH, ACCESS = "planted-refresh-2b7d", "planted-badrefresh-c90e", "planted-access-5e4a"
CLIENT_BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
POSTS = 30
# Each gate path: the headers and query parameters a request must carry to be served (one source each).
GATES = {
    "/posts": ({"Authorization": TOKEN}, {"api_key": URL_KEY}),
    "/bearer": ({"Authorization": f"Bearer {BEARER}", "X-Client-Key": HEADER_KEY}, {}),
    "/basic": ({"Authorization": BASIC}, {}),
    "/key-in-query": ({}, {"key": API_KEY}),
    "/key-in-header": ({"X-Api-Key": API_KEY}, {}),
    "/oauth-client": ({"Authorization": f"Bearer {ACCESS}"}, {}),
    "/oauth-refresh": ({"Authorization": f"Bearer {ACCESS}"}, {}),
}


def test_a_worker_refuses_a_pickled_job(redis_client: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "the-pickled-job-ran"
    pickled = Queue(settings.queue, connection=redis_client)  # RQ's default serializer: pickle
    pickled.enqueue_call("os.mkdir", args=(str(marker),), job_id="pickled")
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    fleet.start(1)
    try:
        deadline = time.monotonic() + 20
        while redis_client.hget("rq:job:pickled", "status") != b"failed":
            assert time.monotonic() < deadline, "the worker never dealt with the pickled job"
            time.sleep(0.1)
        assert fleet.workers[0].poll() is None  # it refused the job and lives on
    finally:
        fleet.close()
    assert not marker.exists()
    assert "DeserializationError" in (tmp_path / "workers.log").read_text()


@pytest.mark.parametrize("worker_class", ["ingest_workers.runtime.worker.IngestWorker",
                                          "ingest_workers.runtime.worker.IngestSimpleWorker"])
def test_a_worker_refuses_a_job_naming_any_other_function(redis_client: redis.Redis, settings: Settings,
                                                           tmp_path: Path, worker_class: str) -> None:
    """A JSON job (no pickle needed) naming os.mkdir, and one of ours with a foreign callback: each is
    failed with its reason before anything runs, and never retried."""
    marker, called_back = tmp_path / "the-mkdir-job-ran", tmp_path / "the-callback-ran"
    queue = make_queue(redis_client, settings)
    queue.enqueue_call("os.mkdir", args=(str(marker),), job_id="mkdir", retry=Retry(max=3))
    queue.enqueue_call("ingest_workers.runtime.jobs.fetch_source", args=({"name": "x"}, str(called_back)),
                       job_id="callback", on_failure=Callback("os.mkdir"))
    assert redis_client.hget("rq:job:mkdir", "data")  # as an attacker writes it: plain JSON
    fleet = WorkerFleet(lambda name: worker_command(settings, name, worker_class), worker_env(settings, os.environ),
                        tmp_path / "workers.log")
    fleet.start(1)
    try:
        wait_until(lambda: all(redis_client.hget(f"rq:job:{job_id}", "status") == b"failed"
                               for job_id in ("mkdir", "callback")), timeout=30)
        assert fleet.workers[0].poll() is None  # it refused the jobs and lives on
    finally:
        fleet.close()
    assert not marker.exists() and not called_back.exists()
    failed = {job.job_id: job.error for job in FailedJobs(queue).list()}
    assert failed == {"mkdir": "refused: ingest workers only run ingest_workers jobs, not os.mkdir",
                      "callback": "refused: ingest workers only run ingest_workers jobs, not the callback os.mkdir"}
    assert Job.fetch("mkdir", connection=redis_client, serializer=JSONSerializer).retries_left == 0
    assert redis_client.llen(queue.intermediate_queue_key) == 0 and len(queue) == 0
    assert "not os.mkdir" in (tmp_path / "workers.log").read_text()


def test_jobs_asking_for_a_foreign_plugin_or_a_file_outside_the_allowed_directory_are_refused(
    redis_client: redis.Redis, pg: psycopg2.extensions.connection, settings: Settings, tmp_path: Path,
) -> None:
    """Whoever can write a job names its plugins and files; the worker allows tests.plugins and
    tmp/inside only. Each job fails at once with its reason, and nothing it asked for happens:
    the module is never imported, the file never read, the sink never written."""
    inside, outside, marker = tmp_path / "inside", tmp_path / "outside", tmp_path / "foreign-plugin-imported"
    inside.mkdir()
    outside.mkdir()
    (outside / "readings.csv").write_text("sensor_id,kind,value,read_at\ns1,temperature,20,2026-01-01T00:00:00Z\n")
    worker_settings = dataclasses.replace(settings, plugins="tests.plugins", files_dir=str(inside))
    specs = [SourceSpec(name="foreign_kind", kind="tests.foreign_plugin:Source", dataset="posts"),
             SourceSpec(name="foreign_auth", kind="http_json", dataset="posts", url="http://127.0.0.1:1/x",
                        auth={"kind": "tests.foreign_plugin:Signer"}),
             SourceSpec(name="foreign_paging", kind="http_json", dataset="posts", url="http://127.0.0.1:1/x",
                        pagination="tests.foreign_plugin:Scroll"),
             SourceSpec(name="outside_csv", kind="csv", dataset="sensors", url=str(outside / "readings.csv")),
             SourceSpec(name="outside_sink", kind="tests.plugins:CountingSource", dataset="posts",
                        fields={"post_id": "id", "user_id": "userId"}, options={"count": 3},
                        sinks=[{"name": "jsonl", "path": str(inside / ".." / "outside" / "rows.jsonl")}]),
             SourceSpec(name="allowed", kind="tests.plugins:CountingSource", dataset="posts",
                        fields={"post_id": "id", "user_id": "userId"}, options={"count": 3},
                        sinks=[{"name": "jsonl", "path": str(inside / "rows.jsonl")}])]
    queue = make_queue(redis_client, worker_settings)
    enqueued = enqueue_run(queue, worker_settings, specs, "run-refused")
    env = {**os.environ, "FOREIGN_PLUGIN_MARKER": str(marker)}
    with local_workers(worker_settings, 1, env, tmp_path / "workers.log"):
        state = wait_for_jobs(queue, [item.job_id for item in enqueued], lambda state: None, timeout=60)
    assert (state.done, state.failed) == (6, 5), (tmp_path / "workers.log").read_text()
    reasons = {
        "foreign_kind": "source foreign_kind key 'kind': source kind 'tests.foreign_plugin:Source': module "
                        "tests.foreign_plugin is not allowed by INGEST_PLUGINS (tests.plugins)",
        "foreign_auth": "source foreign_auth key 'auth.kind': auth kind 'tests.foreign_plugin:Signer': module "
                        "tests.foreign_plugin is not allowed by INGEST_PLUGINS (tests.plugins)",
        "foreign_paging": "source foreign_paging key 'pagination': pagination 'tests.foreign_plugin:Scroll': module "
                          "tests.foreign_plugin is not allowed by INGEST_PLUGINS (tests.plugins)",
        "outside_csv": f"source outside_csv: csv file '{outside / 'readings.csv'}' is not inside INGEST_FILES_DIR "
                       f"({inside})",
        "outside_sink": f"source outside_sink: jsonl sink path '{inside / '..' / 'outside' / 'rows.jsonl'}' is not "
                        f"inside INGEST_FILES_DIR ({inside})",
    }
    failed = {job.source: job.error for job in FailedJobs(queue).list()}
    assert failed == {source: f"ingest_workers.core.errors.Refused: {reason}" for source, reason in reasons.items()}
    assert {s.source: s.errors for s in JobHistory(pg).summarise("run-refused") if s.errors} \
        == {source: (f"Refused: {reason}",) for source, reason in reasons.items()}
    assert not marker.exists() and not (outside / "rows.jsonl").exists()
    assert scalar(pg, "SELECT count(*) FROM sensor_readings") == 0
    assert scalar(pg, "SELECT count(*) FROM posts WHERE source <> 'allowed'") == 0
    assert (inside / "rows.jsonl").read_text().count("\n") == 3  # the allowed plugin and path work


class Gate(BaseHTTPRequestHandler):
    """A source that serves each path of :data:`GATES` only to a request with its planted secrets,
    so the run proves the worker resolved and sent them; anything else is a 404."""

    authorised: list[str] = []
    gets: list[str] = []  # every GET's path and headers
    posts: list[str] = []  # every POST's headers and form

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        """The token endpoint: a token only to the planted client, for either grant (not BAD_REFRESH)."""
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        Gate.posts.append(f"{self.path} {dict(self.headers)} {form}")
        grant_ok = form.get("grant_type") == ["client_credentials"] or form.get("refresh_token") == [REFRESH]
        if self.headers.get("Authorization") != CLIENT_BASIC or not grant_ok:
            self.send_response(400)
            body = json.dumps({"error": "invalid_grant" if grant_ok is False else "invalid_client"}).encode()
        else:
            self.send_response(200)
            body = json.dumps({"access_token": ACCESS, "token_type": "bearer", "expires_in": 3600}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Gate.gets.append(f"{self.path} {dict(self.headers)}")
        url = urlsplit(self.path)
        headers, query = GATES.get(url.path, ({"": "no such path"}, {}))
        if any(self.headers.get(k) != v for k, v in headers.items()) \
                or any(parse_qs(url.query).get(k) != [v] for k, v in query.items()):
            self.send_error(404)
            return
        Gate.authorised.append(url.path)
        body = json.dumps([{"id": i, "userId": 1, "title": f"post {i}", "body": "b"} for i in range(1, POSTS + 1)])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


class ProcessWatch:
    """Polls ``/proc`` for the command lines of the processes it is given and of all their
    descendants (workers, their work horses and schedulers), for as long as they live."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.cmdlines: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            pending = list(self.roots)
            while pending:
                pid = pending.pop()
                try:
                    self.cmdlines.setdefault(pid, Path(f"/proc/{pid}/cmdline").read_bytes())
                except OSError:
                    continue
                pending += children(pid)

    def run(self, args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   **kwargs)
        self.roots.append(process.pid)
        stdout, stderr = process.communicate(timeout=180)
        return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)

    def close(self) -> bytes:
        self._stop.set()
        self._thread.join()
        return b"\n".join(self.cmdlines.values())


@contextmanager
def role_with_password(services: Services, password: str) -> Iterator[str]:
    """A PostgreSQL role of this test database's own that has ``password``; yields DATABASE_URL for
    it (sslmode passed through). Local trust authentication does not check the password: it is
    carried everywhere a real one would be, which is what the scan is about."""
    dsn = psycopg2.extensions.parse_dsn(services.database_url)
    role = f"leak_test_{dsn['dbname']}"
    admin = psycopg2.connect(services.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (password,))
    try:
        yield (f"postgresql://{role}:{password}@{dsn.get('host', '127.0.0.1')}:{dsn.get('port', '5432')}/"
               f"{dsn['dbname']}?sslmode=disable&application_name=leak-test")
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


def test_planted_secrets_never_leak(services: Services, pg: psycopg2.extensions.connection, tmp_path: Path) -> None:
    """The secrets go where secrets go: ${VAR}s in a URL's query and path and in a header, every
    auth kind (auth_env, bearer, basic, api_key in the query and in a header, OAuth2 client
    credentials and refresh token, one refused grant: its error quotes no secret), the ACL user's and the
    default user's Redis passwords (TLS to Redis), a PostgreSQL password. A whole run with real
    workers, one source failing (tracebacks are written); then nothing anywhere shows one of them."""
    gate = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    Gate.authorised.clear()
    Gate.gets.clear()
    Gate.posts.clear()
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("""
[sources.posts_secret]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/posts?api_key=${POSTS_URL_KEY}"
records_path = ""
pagination = "none"
auth_env = "POSTS_TOKEN"
fields = { post_id = "id", user_id = "userId" }

[sources.posts_bearer]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/bearer"
records_path = ""
pagination = "none"
headers = { "X-Client-Key" = "${POSTS_HEADER_KEY}" }
auth = { kind = "bearer", token_env = "POSTS_BEARER" }
fields = { post_id = "id", user_id = "userId" }

[sources.posts_basic]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/basic"
records_path = ""
pagination = "none"
auth = { kind = "basic", username_env = "POSTS_USER", password_env = "POSTS_PASSWORD" }
fields = { post_id = "id", user_id = "userId" }

[sources.posts_key_in_query]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/key-in-query"
records_path = ""
pagination = "none"
auth = { kind = "api_key", name = "key", location = "query", value_env = "POSTS_API_KEY" }
fields = { post_id = "id", user_id = "userId" }

[sources.posts_key_in_header]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/key-in-header"
records_path = ""
pagination = "none"
auth = { kind = "api_key", name = "X-Api-Key", location = "header", value_env = "POSTS_API_KEY" }
fields = { post_id = "id", user_id = "userId" }

[sources.posts_oauth_client]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/oauth-client"
records_path = ""
pagination = "none"
fields = { post_id = "id", user_id = "userId" }
[sources.posts_oauth_client.auth]
kind = "oauth2_client_credentials"
token_url = "${GATE_URL}/oauth/token"
client_id_env = "OAUTH_ID"
client_secret_env = "OAUTH_SECRET"
scope = "posts.read"

[sources.posts_oauth_refresh]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/oauth-refresh"
records_path = ""
pagination = "none"
fields = { post_id = "id", user_id = "userId" }
[sources.posts_oauth_refresh.auth]
kind = "oauth2_refresh_token"
token_url = "${GATE_URL}/oauth/token"
client_id_env = "OAUTH_ID"
client_secret_env = "OAUTH_SECRET"
refresh_token_env = "OAUTH_REFRESH"

[sources.posts_oauth_refused]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/oauth-refresh"
records_path = ""
pagination = "none"
fields = { post_id = "id", user_id = "userId" }
[sources.posts_oauth_refused.auth]
kind = "oauth2_refresh_token"
token_url = "${GATE_URL}/oauth/token"
client_id_env = "OAUTH_ID"
client_secret_env = "OAUTH_SECRET"
refresh_token_env = "OAUTH_BAD_REFRESH"

[sources.posts_broken]
kind = "http_json"
dataset = "posts"
url = "${GATE_URL}/missing/${POSTS_PATH_KEY}?api_key=${POSTS_URL_KEY}"
records_path = ""
pagination = "none"
auth_env = "POSTS_TOKEN"
fields = { post_id = "id", user_id = "userId" }
""", encoding="utf-8")
    watch = ProcessWatch()
    with private_redis(tmp_path / "redis", REDIS_PASSWORD, "ingest", REDIS_USER_PASSWORD) as server, \
            role_with_password(services, PG_PASSWORD) as database_url:
        secrets = {"POSTS_TOKEN": TOKEN, "POSTS_URL_KEY": URL_KEY, "POSTS_PATH_KEY": PATH_KEY,
                   "POSTS_HEADER_KEY": HEADER_KEY, "POSTS_BEARER": BEARER, "POSTS_USER": BASIC_USER,
                   "POSTS_PASSWORD": BASIC_PASSWORD, "POSTS_API_KEY": API_KEY, "OAUTH_ID": CLIENT_ID,
                   "OAUTH_SECRET": CLIENT_SECRET, "OAUTH_REFRESH": REFRESH, "OAUTH_BAD_REFRESH": BAD_REFRESH}
        base = {**os.environ, **secrets, "GATE_URL": f"http://127.0.0.1:{gate.server_address[1]}",
                "DATABASE_URL": database_url, "INGEST_QUEUE": "ingest-secret-test", "INGEST_JOB_RETRIES": "0"}
        # The workers and the run: TLS to the ACL user; the operator's commands: the default user.
        run_env, ops_env = {**base, "REDIS_URL": server.tls_user_url()}, {**base, "REDIS_URL": server.url()}
        ingest = [sys.executable, "-m", "ingest_workers"]
        run = watch.run([*ingest, "--catalog", str(catalog), "run", "--workers", "2", "--timeout", "90"], run_env,
                        cwd=tmp_path)
        # `ingest workers` as an operator runs it: it logs each worker's command line.
        supervisor = subprocess.Popen([*ingest, "workers", "--count", "1"], env=ops_env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        watch.roots.append(supervisor.pid)
        client = redis.Redis.from_url(server.url())
        wait_until(lambda: client.scard("rq:workers:ingest-secret-test") == 1, timeout=30)
        supervisor.terminate()
        supervisor_log = supervisor.communicate(timeout=60)[0]
        failed = watch.run([*ingest, "failed", "list"], ops_env)
        status = watch.run([*ingest, "status", "--json"], ops_env)
        port = free_port()
        with (tmp_path / "metrics.log").open("wb") as metrics_log:
            metrics_server = subprocess.Popen([*ingest, "--catalog", str(catalog), "metrics-server", "--port",
                                               str(port)], env=ops_env, stdout=metrics_log, stderr=subprocess.STDOUT)
        watch.roots.append(metrics_server.pid)
        try:
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/metrics"), timeout=20)
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            metrics_server.terminate()
            metrics_server.wait(timeout=10)
        in_redis = redis_contents(client)
        client.close()
    gate.shutdown()
    cmdlines = watch.close()
    workers_log = (tmp_path / "out" / "workers.log").read_text()

    # What happened is what the fixture set up: one source loaded through the gate, one failed.
    assert run.returncode == 1, run.stdout + run.stderr
    assert sorted(Gate.authorised) == sorted(GATES)  # the worker resolved every secret, and sent it
    assert scalar(pg, "SELECT count(*) FROM posts WHERE source NOT IN ('posts_broken', 'posts_oauth_refused')") \
        == POSTS * len(GATES)
    assert "invalid_grant" in workers_log and "check OAUTH_ID, OAUTH_SECRET and OAUTH_BAD_REFRESH" in workers_log
    # The client secret and the refresh tokens go to the token endpoint only, the access token to the API only.
    assert not any(secret in get for get in Gate.gets for secret in (CLIENT_SECRET, CLIENT_BASIC, REFRESH,
                                                                      BAD_REFRESH))
    assert not any(ACCESS in post for post in Gate.posts) and len(Gate.posts) == 3  # one token request per job
    assert "HTTP 404" in workers_log and "Traceback" in workers_log and b"Traceback" in in_redis
    assert b"rq.cli" in cmdlines and b"metrics-server" in cmdlines  # the workers and servers were seen
    assert "starting 1 x" in supervisor_log and "rq.cli worker" in supervisor_log
    assert "posts_broken" in failed.stdout and "posts_broken" in status.stdout and "posts_secret" in metrics
    with pg, pg.cursor() as cur:
        cur.execute("SELECT coalesce(string_agg(row_to_json(j)::text, ' '), '') FROM ingest_jobs j")
        history = cur.fetchone()[0]
    captured = {
        "redis": in_redis.decode("utf-8", "replace"), "command lines": cmdlines.decode("utf-8", "replace"),
        "run output": run.stdout + run.stderr, "workers.log": workers_log, "ingest workers": supervisor_log,
        "redis.log": (tmp_path / "redis" / "redis.log").read_text(),
        "metrics.log": (tmp_path / "metrics.log").read_text(),
        "summary.json": (tmp_path / "out" / "summary.json").read_text(), "failed list": failed.stdout + failed.stderr,
        "status --json": status.stdout + status.stderr, "/metrics": metrics, "ingest_jobs": history,
    }
    for where, text in captured.items():
        for secret in (TOKEN, URL_KEY, PATH_KEY, REDIS_PASSWORD, REDIS_USER_PASSWORD, PG_PASSWORD, HEADER_KEY,
                       BEARER, BASIC_USER, BASIC_PASSWORD, BASIC.split()[1], API_KEY, CLIENT_ID, CLIENT_SECRET,
                       CLIENT_BASIC.split()[1], REFRESH, BAD_REFRESH, ACCESS):
            assert secret not in text, f"{secret} leaked into {where}"
    assert b"${POSTS_URL_KEY}" in in_redis  # the job carries the reference, not the value
    assert "${POSTS_PATH_KEY}" in captured["summary.json"]  # the failure names the URL as the catalog writes it


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return False
    return True


def test_postgresql_ssl_settings_reach_the_driver_through_database_url(services: Services) -> None:
    """sslmode (and the other libpq parameters) in DATABASE_URL are libpq's own: this server has no
    TLS, so requiring it fails, saying so, the password masked."""
    url = services.database_url.replace("postgres@", f"postgres:{PG_PASSWORD}@")
    connect_postgres(f"{url}?sslmode=disable&application_name=ssl-test").close()
    with pytest.raises(ServiceUnavailable, match="SSL") as refused:
        connect_postgres(f"{url}?sslmode=require")
    assert PG_PASSWORD not in str(refused.value) and "postgres:***@" in str(refused.value)
