from pathlib import Path

import pytest

from ingest_workers.core.config import Settings, load_settings
from ingest_workers.core.errors import ConfigError


def test_defaults_when_nothing_is_given() -> None:
    assert load_settings() == Settings()


def test_flag_beats_environment_beats_file() -> None:
    file = {"queue": "from-file", "batch_size": 10, "job_timeout": 60}
    env = {"INGEST_QUEUE": "from-env", "INGEST_BATCH_SIZE": "20"}
    settings = load_settings({"queue": "from-flag", "redis_url": None}, env, file)
    assert settings.queue == "from-flag"
    assert settings.batch_size == 20
    assert settings.job_timeout == 60
    assert settings.redis_url == Settings.redis_url


def test_paths_and_numbers_are_converted() -> None:
    settings = load_settings(env={"INGEST_CATALOG": "/tmp/c.toml", "INGEST_JOB_RETRIES": "5"})
    assert settings.catalog_path == Path("/tmp/c.toml")
    assert settings.job_retries == 5


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"env": {"INGEST_BATCH_SIZE": "lots"}}, "environment variable INGEST_BATCH_SIZE"),
        ({"env": {"INGEST_BATCH_SIZE": "0"}}, "must be greater than 0"),
        ({"file_settings": {"batch_size": -1}}, "key 'batch_size'"),
        ({"file_settings": {"bach_size": 1}}, "unknown key 'bach_size'"),
        ({"flags": {"job_timeout": "soon"}}, "--job-timeout"),
        ({"env": {"INGEST_LOG_FORMAT": "xml"}}, "INGEST_LOG_FORMAT: expected one of text, json, got 'xml'"),
    ],
)
def test_bad_values_name_where_they_came_from(kwargs: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(**kwargs)


def test_fetch_concurrency_defaults_to_4_and_comes_from_its_variable() -> None:
    assert Settings().fetch_concurrency == 4
    assert load_settings(env={"INGEST_FETCH_CONCURRENCY": "16"}).fetch_concurrency == 16
    with pytest.raises(ConfigError, match="INGEST_FETCH_CONCURRENCY: must be greater than 0"):
        load_settings(env={"INGEST_FETCH_CONCURRENCY": "0"})
