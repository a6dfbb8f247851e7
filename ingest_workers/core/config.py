"""Settings: built once from CLI flags > environment > the catalog's [settings], then frozen.

Only the CLI and the per-process resource holder call :func:`load_settings`;
everything else receives a :class:`Settings` and reads no environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/ingest"


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, with the defaults a local run wants."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    # the catalog file; None: no catalog (commands that need one say so; `ingest demo` has its own)
    catalog_path: Path | None = field(default=None, metadata={"path": True})
    queue: str = "ingest"
    batch_size: int = 1000  # records per load transaction
    job_timeout: int = 1800  # seconds one fetch job may run
    job_retries: int = field(default=3, metadata={"minimum": 0})  # RQ re-runs of a transiently failed job
    job_retry_intervals: str = "5,30,120"  # seconds before each re-run (RQ repeats the first when short)
    result_ttl: int = 86400  # how long finished jobs and their counts stay in Redis
    failure_ttl: int = 7 * 86400  # how long failed jobs stay for `rq`/`ingest failed`
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 30.0
    http_max_attempts: int = 5  # tries per HTTP request, the first included
    http_max_backoff: float = 30.0  # seconds; also caps a server's Retry-After
    # pages of a source a job reads ahead while it processes and loads the current one (0: none)
    prefetch_pages: int = field(default=2, metadata={"minimum": 0})
    # requests one job keeps in flight for page and offset paging (a source's `concurrency` wins)
    fetch_concurrency: int = 4
    # "text", or "json": one JSON object per line, with source, run id and job id
    log_format: str = field(default="text", metadata={"choices": ("text", "json")})
    http_max_body_bytes: int = 64 * 1024 * 1024  # a larger answer is refused (its page rejected)
    breaker_failures: int = 3  # consecutive failed requests to a source that open its circuit
    breaker_cooldown: float = 30.0  # seconds a circuit stays open before a probe
    pg_retry_seconds: float = 120.0  # how long a job waits out a PostgreSQL outage before failing
    max_kills: int = 3  # a job whose worker died this many times is quarantined
    # A job whose worker died runs again within 3 * job_monitoring_interval + max(maintenance_interval,
    # worker_ttl - 15) seconds (RQ's defaults make that over 10 minutes); see ingest_workers/runtime/worker.py.
    job_monitoring_interval: int = 5
    maintenance_interval: int = 10
    worker_ttl: int = 25


# Environment variable for each field; fields absent here are set by flag or file only.
ENV_VARS = {
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "catalog_path": "INGEST_CATALOG",
    "queue": "INGEST_QUEUE",
    "batch_size": "INGEST_BATCH_SIZE",
    "job_timeout": "INGEST_JOB_TIMEOUT",
    "job_retries": "INGEST_JOB_RETRIES",
    "job_retry_intervals": "INGEST_JOB_RETRY_INTERVALS",
    "http_max_attempts": "INGEST_HTTP_MAX_ATTEMPTS",
    "prefetch_pages": "INGEST_PREFETCH_PAGES",
    "fetch_concurrency": "INGEST_FETCH_CONCURRENCY",
    "log_format": "INGEST_LOG_FORMAT",
    "http_max_backoff": "INGEST_HTTP_MAX_BACKOFF",
    "http_max_body_bytes": "INGEST_HTTP_MAX_BODY_BYTES",
    "breaker_failures": "INGEST_BREAKER_FAILURES",
    "breaker_cooldown": "INGEST_BREAKER_COOLDOWN",
    "max_kills": "INGEST_MAX_KILLS",
    "pg_retry_seconds": "INGEST_PG_RETRY_SECONDS",
}

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    file_settings: Mapping[str, Any] | None = None,
    file_label: str = "the catalog's [settings]",
) -> Settings:
    """Merge the three layers (flag > env > file > default), convert and check each value.

    ``flags`` values of ``None`` mean "not given". Raises :class:`ConfigError`
    naming the variable, flag or file key that holds a bad value.
    """
    flags, env, file_settings = flags or {}, env or {}, file_settings or {}
    unknown = sorted(set(file_settings) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{file_label}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_FIELDS))}")

    values: dict[str, Any] = {}
    for name in _FIELDS:
        if flags.get(name) is not None:
            raw, origin = flags[name], f"--{name.replace('_', '-')}"
        elif name in ENV_VARS and env.get(ENV_VARS[name]):
            raw, origin = env[ENV_VARS[name]], f"environment variable {ENV_VARS[name]}"
        elif name in file_settings:
            raw, origin = file_settings[name], f"{file_label} key {name!r}"
        else:
            continue
        values[name] = _convert(name, raw, origin)
    return Settings(**values)


def _convert(name: str, raw: Any, origin: str) -> Any:
    default = _FIELDS[name].default
    if _FIELDS[name].metadata.get("path"):
        return Path(raw)
    if isinstance(default, str):
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{origin}: expected a non-empty string, got {raw!r}")
        choices = _FIELDS[name].metadata.get("choices")
        if choices and raw not in choices:
            raise ConfigError(f"{origin}: expected one of {', '.join(choices)}, got {raw!r}")
        return raw
    kind = type(default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: expected a number, got {raw!r}") from None
    minimum = _FIELDS[name].metadata.get("minimum")
    if minimum is None and value <= 0:
        raise ConfigError(f"{origin}: must be greater than 0, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{origin}: must be at least {minimum}, got {raw!r}")
    return value
