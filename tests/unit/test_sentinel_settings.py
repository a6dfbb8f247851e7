"""Redis through Sentinel: the settings, RQ's SENTINEL setting, and the worker's argv."""

from __future__ import annotations

import pytest

from ingest_workers.core.config import load_settings
from ingest_workers.core.connections import rq_sentinel_settings
from ingest_workers.core.errors import ConfigError
from ingest_workers.runtime.workerpool import worker_command, worker_env

SENTINEL_ENV = {"REDIS_URL": "redis://app:s3cret@ignored:1/4", "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26380",
                "REDIS_SENTINEL_MASTER": "ingest"}


def test_rq_gets_the_sentinels_master_database_and_credentials() -> None:
    rq = rq_sentinel_settings(load_settings(env=SENTINEL_ENV))
    assert rq["INSTANCES"] == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert (rq["MASTER_NAME"], rq["DB"], rq["USERNAME"], rq["PASSWORD"]) == ("ingest", 4, "app", "s3cret")


def test_the_worker_finds_the_master_from_its_environment_and_no_secret_is_in_its_argv() -> None:
    settings = load_settings(env=SENTINEL_ENV)
    argv = worker_command(settings, "host.1.0")
    assert "--url" not in argv and argv[argv.index("--config") + 1] == "ingest_workers.runtime.rq_config"
    assert not any("s3cret" in part for part in argv)
    env = worker_env(settings, {"RQ_REDIS_URL": "redis://elsewhere/0"})
    assert "RQ_REDIS_URL" not in env  # rq would prefer it to the Sentinel setting
    assert (env["REDIS_SENTINELS"], env["REDIS_SENTINEL_MASTER"]) == ("10.0.0.1:26379, 10.0.0.2:26380", "ingest")


def test_without_sentinels_the_worker_gets_the_url() -> None:
    settings = load_settings(env={"REDIS_URL": "redis://127.0.0.1:6379/3"})
    argv = worker_command(settings, "host.1.0")
    assert "--url" not in argv and "--config" not in argv  # the URL goes in the environment, never argv
    assert worker_env(settings, {})["RQ_REDIS_URL"] == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(("env", "named"), [
    ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"REDIS_SENTINEL_MASTER": "ingest"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS: expected host:port"),
    ({"REDIS_SENTINELS": "h:26379,h:x", "REDIS_SENTINEL_MASTER": "m"}, "got 'h:x'"),
])
def test_bad_sentinel_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env)
