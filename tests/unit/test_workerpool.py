"""The `rq worker` command line the pool runs carries no Redis URL: it goes in the environment."""

from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import worker_command, worker_env


def test_the_redis_url_reaches_rq_worker_in_its_environment_never_its_arguments() -> None:
    settings = Settings(redis_url="rediss://ingest:s3cret-pw@redis:6380/2?ssl_cert_reqs=required")
    command = worker_command(settings, "host.1.0", queues=["heavy", "ingest"])
    assert not any("s3cret-pw" in part or "redis:6380" in part for part in command)
    assert "--url" not in command and command[-2:] == ["heavy", "ingest"]
    env = worker_env(settings, {"RQ_REDIS_URL": "redis://stale/0", "PATH": "/bin"})
    assert env["RQ_REDIS_URL"] == env["REDIS_URL"] == settings.redis_url and env["PATH"] == "/bin"
