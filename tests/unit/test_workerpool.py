"""The `rq worker` command line the pool runs carries no Redis URL: it goes in the environment."""

from ingest_workers.core.config import Settings
from ingest_workers.runtime.workerpool import RespawnBackoff, supervise, worker_command, worker_env


def test_the_redis_url_reaches_rq_worker_in_its_environment_never_its_arguments() -> None:
    settings = Settings(redis_url="rediss://ingest:s3cret-pw@redis:6380/2?ssl_cert_reqs=required")
    command = worker_command(settings, "host.1.0", queues=["heavy", "ingest"])
    assert not any("s3cret-pw" in part or "redis:6380" in part for part in command)
    assert "--url" not in command and command[-2:] == ["heavy", "ingest"]
    env = worker_env(settings, {"RQ_REDIS_URL": "redis://stale/0", "PATH": "/bin"})
    assert env["RQ_REDIS_URL"] == env["REDIS_URL"] == settings.redis_url and env["PATH"] == "/bin"


class _Exited:
    """A worker process that has already exited."""

    returncode = 1

    def poll(self) -> int:
        return 1


def test_a_crashing_worker_is_restarted_after_a_growing_capped_back_off() -> None:
    """not every second; 0, 1, 2, 4, ... seconds, at most 60."""
    now = [0.0]
    starts: list[float] = []
    delays: list[float] = []

    def start() -> _Exited:
        starts.append(now[0])
        return _Exited()

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return now[0] > 400

    supervise(start, 1, wait, lambda: now[0], lambda processes: None,  # type: ignore[arg-type]
              on_exit=lambda status, delay: delays.append(delay))
    assert delays[:9] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert len(starts) < 15  # against 400 restarts at one a second
    backoff = RespawnBackoff()
    assert [backoff.delay(0), backoff.delay(0), backoff.delay(120)] == [0.0, 1.0, 0.0]  # a long run starts over


def test_a_dead_workers_replacement_waits_until_it_can_start() -> None:
    """no worker is started into a Redis that does not answer; it is started once it does."""
    now = [0.0]
    starts: list[float] = []

    def start() -> _Exited:
        starts.append(now[0])
        return _Exited()

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return now[0] > 30

    supervise(start, 1, wait, lambda: now[0], lambda processes: None,  # type: ignore[arg-type]
              can_start=lambda: now[0] >= 20)  # Redis answers again after 20 s
    assert starts[0] == 0.0 and starts[1] == 20.0  # the first replacement waited for it
