"""Every command against a service that is not there, or a database never migrated: a stated,
bounded wait, then one sentence and exit status 1 (never a traceback, never failed jobs); and a
bad value from the environment is reported under the variable's name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from redis.connection import parse_url
from rq import Queue, Worker

from ingest_workers.cli import main
from ingest_workers.testing.devservices import Services
from ingest_workers.testing.tcpproxy import CuttableProxy
from tests.helpers import wait_until, write_catalog

pytestmark = pytest.mark.integration

NEEDS_REDIS = [["enqueue", "--sources", "all"], ["run", "--workers", "0"], ["schedule"], ["status"],
               ["failed", "list"], ["failed", "retry", "--all"], ["failed", "purge", "--yes"], ["metrics-server"],
               ["workers", "--count", "1"]]
NEEDS_SCHEMA = [["enqueue", "--sources", "all"], ["run", "--workers", "0"], ["schedule"], ["status"],
                ["failed", "list"], ["workers", "--count", "1"]]
NO_SCHEMA = "error: the database has no ingest schema: run ingest db migrate (waited 1s)"


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output.splitlines()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "c.toml", "http://127.0.0.1:1/products", extra="interval_seconds = 60")


@pytest.mark.parametrize("command", NEEDS_REDIS, ids=lambda c: " ".join(c[:2]))
def test_unreachable_redis_waits_as_stated_then_fails_in_one_sentence(command: list[str], catalog: Path,
                                                                     services: Services) -> None:
    # A database that exists: a command that checks PostgreSQL first (status) must reach Redis's wait.
    code, lines = invoke(["--catalog", str(catalog), *command],
                         env={"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0", "DATABASE_URL": services.database_url,
                              "INGEST_SERVICE_WAIT": "1"})
    assert code == 1, lines
    assert lines[0].startswith("cannot reach Redis at redis://:***@127.0.0.1:1/0") \
        and lines[0].endswith("; waiting up to 1s"), lines
    assert lines[1].startswith("error: cannot reach Redis at redis://:***@127.0.0.1:1/0") \
        and lines[1].endswith("(waited 1s)"), lines
    assert len(lines) == 2 and "hunter2" not in "".join(lines)


@pytest.mark.parametrize("command", NEEDS_SCHEMA, ids=lambda c: " ".join(c[:2]))
def test_a_database_never_migrated_is_named_with_the_command_that_fixes_it(
    command: list[str], catalog: Path, services: Services, empty_database: str, redis_client: Redis,
) -> None:
    code, lines = invoke(["--catalog", str(catalog), *command],
                         env={"REDIS_URL": services.redis_url, "DATABASE_URL": empty_database,
                              "INGEST_SERVICE_WAIT": "1"})
    assert (code, lines[-1]) == (1, NO_SCHEMA), lines
    assert len(lines) <= 3 and not any("Traceback" in line or "enqueued" in line for line in lines), lines


def test_db_migrate_then_the_commands_work(services: Services, empty_database: str, redis_client: object) -> None:
    env = {"REDIS_URL": services.redis_url, "DATABASE_URL": empty_database, "INGEST_SERVICE_WAIT": "1"}
    code, lines = invoke(["db", "migrate"], env)
    assert code == 0 and "0001_initial" in lines, lines
    code, lines = invoke(["status"], env)
    assert code == 0, lines


@pytest.mark.parametrize(("variable", "value", "command"), [
    ("WORKERS", "x", ["workers"]), ("WORKERS", "0", ["workers"]), ("INGEST_TIMEOUT", "soon", ["run"]),
    ("INGEST_LOG_FORMAT", "xml", ["status"]),
])
def test_a_bad_value_from_the_environment_names_the_variable(variable: str, value: str, command: list[str]) -> None:
    result = CliRunner().invoke(main, command, env={variable: value})
    assert result.exit_code == 2
    assert f"Invalid value for environment variable {variable}: " in result.output, result.output
    assert "'--" not in result.output.splitlines()[-1]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def test_the_worker_pool_does_not_respawn_into_a_dead_redis(services: Services, redis_client: Redis,
                                                            tmp_path: Path) -> None:
    redis = parse_url(services.redis_url)
    proxy = CuttableProxy((redis.get("host", "127.0.0.1"), int(redis.get("port", 6379)))).start()
    host, port = proxy.address
    env = {**os.environ, "REDIS_URL": f"redis://{host}:{port}/{redis.get('db', 0)}",
           "DATABASE_URL": services.database_url, "INGEST_SERVICE_WAIT": "3", "INGEST_QUEUE": "pool-test"}
    pool = subprocess.Popen([sys.executable, "-m", "ingest_workers", "workers", "--count", "2"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(_children(pool.pid)) == 2, timeout=30)
        # Both workers registered on their queue: up, and past the pool's start-up wait for Redis.
        wait_until(lambda: Worker.count(queue=Queue("pool-test", connection=redis_client)) == 2, timeout=30)
        proxy.cut()
        for child in _children(pool.pid):
            os.kill(child, signal.SIGKILL)
        output = pool.communicate(timeout=90)[0]
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()
        proxy.close()
    assert pool.returncode == 1, output
    assert output.count("a worker exited") == 2, output  # the two killed; none started into the dead Redis
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach Redis at redis://{host}:{port}/") \
        and last.endswith("(waited 3s); stopping the workers"), output


def _refused_redis(services: Services) -> list[tuple[str, str]]:
    """(REDIS_URL, the words its refusal must contain): malformed, an unknown user, no such database number."""
    where = services.redis_url.split("://", 1)[1].rsplit("/", 1)[0]
    return [(f"http://{where}/0", "must specify one of the following schemes"),
            (f"redis://nobody-h:hunter2@{where}/0", "invalid username-password pair"),
            (f"redis://{where}/999", "DB index is out of range")]


def _refused_postgres(services: Services) -> list[tuple[str, str]]:
    """(DATABASE_URL, the words its refusal must contain): no such database, no such user, malformed."""
    base = services.database_url.rsplit("/", 1)[0]
    return [(f"{base}/no_such_database_h", 'database "no_such_database_h" does not exist'),
            (base.replace("://postgres@", "://no_such_user_h:hunter2@") + "/postgres", 'role "no_such_user_h"'),
            (base.rsplit(":", 1)[0] + ":notaport/x", 'invalid integer value "notaport"')]


@pytest.mark.parametrize("command", [["status"], ["run", "--workers", "0"], ["workers", "--count", "1"]],
                         ids=lambda c: " ".join(c[:2]))
def test_what_no_wait_can_fix_fails_at_once_in_one_sentence(command: list[str], catalog: Path, services: Services,
                                                            redis_client: object) -> None:
    """Only "not answering yet" waits: a malformed URL, an unknown user or database, fail at once."""
    cases = [({"REDIS_URL": url, "DATABASE_URL": services.database_url}, words)
             for url, words in _refused_redis(services)]
    cases += [({"REDIS_URL": services.redis_url, "DATABASE_URL": url}, words)
              for url, words in _refused_postgres(services)]
    for env, words in cases:
        started = time.monotonic()
        code, lines = invoke(["--catalog", str(catalog), *command], env={**env, "INGEST_SERVICE_WAIT": "30"})
        assert time.monotonic() - started < 10, (env, lines)
        assert code == 1 and len(lines) == 1, (env, lines)
        assert lines[0].startswith("error: ") and "refuses the connection" in lines[0] and words in lines[0], lines
        assert "hunter2" not in lines[0]
