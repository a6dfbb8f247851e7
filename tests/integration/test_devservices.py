"""ensure_services: embedded Redis/PostgreSQL when the URLs are unreachable, the real ones otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis

from ingest_workers.core.errors import ServiceUnavailable
from ingest_workers.testing import devservices
from ingest_workers.testing.devservices import ensure_services, postgres_reachable, redis_reachable

UNREACHABLE_REDIS = "redis://:secret@127.0.0.1:1/0"
UNREACHABLE_POSTGRES = "postgresql://x:secret@127.0.0.1:1/ingest_devsvc_test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _check_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.set("devservices:probe", "ok")
        assert client.get("devservices:probe") == b"ok"
        client.delete("devservices:probe")
    finally:
        client.close()


def _check_postgres(url: str, create: str) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
            cur.execute(create)
    finally:
        conn.close()


def test_embedded_services_start_work_and_stop(tmp_path: Path) -> None:
    lines: list[str] = []
    with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path / "state", log=lines.append) as svc:
        assert svc.started == ("redis", "postgres")
        _check_redis(svc.redis_url)
        _check_postgres(svc.database_url, "create table devsvc_probe as select 1 as id")
        assert psycopg2.extensions.parse_dsn(svc.database_url)["dbname"] == "ingest_devsvc_test"
        assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
    assert lines and not any("secret" in line for line in lines)
    assert any("starting embedded redis-server" in line for line in lines)
    assert any("starting embedded PostgreSQL" in line for line in lines)
    assert not redis_reachable(svc.redis_url, timeout=0.5)
    assert not postgres_reachable(svc.database_url)
    assert not (tmp_path / "state" / "postgres" / "postmaster.pid").exists()  # removed on clean shutdown

    # A second start reuses the data directory: the row written above is still there.
    with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path / "state", log=lines.append) as again:
        conn = psycopg2.connect(again.database_url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("select count(*) from devsvc_probe")
                assert cur.fetchone() == (1,)
        finally:
            conn.close()
    assert not postgres_reachable(again.database_url)


def test_embedded_redis_that_dies_raises_one_masked_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devservices, "_redis_server_executable", lambda: "/bin/false")
    with (
        pytest.raises(
            ServiceUnavailable, match=r"^Redis at redis://:\*\*\*@127\.0\.0\.1:1/0 is unreachable .*exited"
        ) as caught,
        ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path, log=lambda line: None),
    ):
        pass
    assert "secret" not in str(caught.value)


def test_nested_use_in_one_process_shares_embedded_postgres(tmp_path: Path) -> None:
    with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path, log=lambda line: None) as outer:
        with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path, log=lambda line: None) as inner:
            assert inner.database_url == outer.database_url
            assert inner.redis_url != outer.redis_url  # each context runs its own redis-server
        assert postgres_reachable(outer.database_url)  # the inner exit left the outer's server running
        assert redis_reachable(outer.redis_url)
    assert not postgres_reachable(outer.database_url)


def test_server_left_by_a_killed_process_is_stopped_by_the_next_user(tmp_path: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from ingest_workers.testing.devservices import ensure_services\n"
        "with ensure_services(sys.argv[1], sys.argv[2], Path(sys.argv[3]), log=lambda line: None) as svc:\n"
        "    print(svc.database_url, flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(devservices.__file__).parents[1])}
    args = [sys.executable, "-c", script, UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, str(tmp_path)]
    # Its own session, so that killing the group also kills its redis-server; PostgreSQL daemonizes and survives.
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True) as child:
        try:
            assert child.stdout is not None
            orphaned_url = child.stdout.readline().strip()
            assert postgres_reachable(orphaned_url)
            os.killpg(child.pid, signal.SIGKILL)  # no atexit, no cleanup: its pid stays in embedded-postgres's list
            with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path, log=lambda line: None) as svc:
                assert svc.database_url == orphaned_url
            assert not postgres_reachable(orphaned_url)
        finally:
            child.kill()  # leaving the Popen block reaps it
            pidfile = tmp_path / "postgres" / "postmaster.pid"
            if pidfile.exists():  # only after a failure: leave no server behind
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


@pytest.mark.integration
def test_reachable_services_are_used_as_given(tmp_path: Path) -> None:
    lines: list[str] = []
    with ensure_services(LOCAL_REDIS, LOCAL_POSTGRES, tmp_path, log=lines.append) as svc:
        assert svc == devservices.Services(LOCAL_REDIS, LOCAL_POSTGRES, ())
        _check_redis(svc.redis_url)
        _check_postgres(svc.database_url, "create temp table devsvc_probe (id int)")
    assert lines == [f"redis: using {LOCAL_REDIS}", f"postgres: using {LOCAL_POSTGRES}"]
    assert not any(tmp_path.iterdir())  # nothing was started, so no state was written


@pytest.mark.integration
def test_missing_database_on_reachable_server_is_created(tmp_path: Path) -> None:
    name = f"ingest_devsvc_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    lines: list[str] = []
    try:
        with ensure_services(LOCAL_REDIS, url, tmp_path, log=lines.append) as svc:
            assert svc.started == ()
            _check_postgres(svc.database_url, "create table devsvc_probe (id int)")
        assert f"postgres: created database {name!r}; using {url}" in lines
    finally:
        conn = psycopg2.connect(LOCAL_POSTGRES.replace("/test", "/postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'drop database if exists "{name}"')
        finally:
            conn.close()
