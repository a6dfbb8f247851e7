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
# seconds a command or role waits for Redis, PostgreSQL and the schema (INGEST_SERVICE_WAIT), also mid-run
SERVICE_WAIT = 10.0


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, with the defaults a local run wants."""

    redis_url: str = DEFAULT_REDIS_URL
    # Redis through Sentinel: "host:port,host:port" of the sentinels and the name they monitor; then
    # redis_url gives only the password, user and database number (its host is not used)
    redis_sentinels: str = ""
    redis_sentinel_master: str = ""
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
    # "compiled": map, check and stamp each record with code generated per dataset (issue 28);
    # "reference": the stage objects, one reader call per value (the oracle the compiled path is tested against)
    record_path: str = field(default="compiled", metadata={"choices": ("compiled", "reference")})
    # "text", or "json": one JSON object per line, with source, run id and job id
    log_format: str = field(default="text", metadata={"choices": ("text", "json")})
    http_max_body_bytes: int = 64 * 1024 * 1024  # a larger answer is refused (its page rejected)
    max_page_values: int = 500_000  # JSON values one page may decode to; a larger page is refused (lost)
    max_nesting: int = 512  # levels of lists and objects per record; a deeper record is rejected alone
    # seconds `ingest workers` gives its workers after SIGTERM to finish the job in hand, then SIGKILL
    # (keep it above job_timeout, and compose's stop_grace_period above it)
    stop_grace: float = 1830.0
    dedup_ttl: int = 30 * 86400  # seconds a source's dedup set lives after its last use
    breaker_failures: int = 3  # consecutive failed requests to a source that open its circuit
    breaker_cooldown: float = 30.0  # seconds a circuit stays open before a probe
    breaker_probe_timeout: float = 60.0  # seconds a half-open probe holds its slot before another may try
    pg_retry_seconds: float = 120.0  # how long a job waits out a PostgreSQL outage before failing
    max_kills: int = 3  # a job whose worker died this many times is quarantined
    # how long a command or role waits for Redis, PostgreSQL and the schema before it gives up in one line
    service_wait: float = field(default=SERVICE_WAIT, metadata={"minimum": 0})
    progress_interval: float = 5.0  # seconds between progress lines when the output is no terminal
    # A job whose worker died runs again within 3 * job_monitoring_interval + max(maintenance_interval,
    # worker_ttl - 15) seconds (RQ's defaults make that over 10 minutes); see ingest_workers/runtime/worker.py.
    job_monitoring_interval: int = 5
    maintenance_interval: int = 10
    worker_ttl: int = 25
    # The worker's own permissions (core.permissions), from its environment only, never a catalog:
    # modules plugin kinds, stages and sinks may come from (comma-separated; None: built-ins only),
    # and directories local files may be read or written in (os.pathsep-separated; None: no local file).
    plugins: str | None = field(default=None, metadata={"text": True, "worker_own": True})
    files_dir: str | None = field(default=None, metadata={"text": True, "worker_own": True})
    # environment variables a job's entry may name (comma-separated names, or prefixes ending in '*');
    # None: none (`ingest workers`, `run` and `demo` allow their catalog's references, Catalog.variables).
    # Never the worker's own (WORKER_OWN_VARIABLES).
    source_vars: str | None = field(default=None, metadata={"text": True, "worker_own": True})
    # a job whose counts do not add up fails (CountMismatch) instead of logging an error: tests turn it on
    strict_counts: bool = False


# Environment variable for each field; fields absent here are set by flag or file only.
ENV_VARS = {
    "redis_url": "REDIS_URL",
    "redis_sentinels": "REDIS_SENTINELS",
    "redis_sentinel_master": "REDIS_SENTINEL_MASTER",
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
    "record_path": "INGEST_RECORD_PATH",
    "http_max_backoff": "INGEST_HTTP_MAX_BACKOFF",
    "http_max_body_bytes": "INGEST_HTTP_MAX_BODY_BYTES",
    "breaker_failures": "INGEST_BREAKER_FAILURES",
    "breaker_cooldown": "INGEST_BREAKER_COOLDOWN",
    "max_kills": "INGEST_MAX_KILLS",
    "pg_retry_seconds": "INGEST_PG_RETRY_SECONDS",
    "service_wait": "INGEST_SERVICE_WAIT",
    "progress_interval": "INGEST_PROGRESS_INTERVAL",
    "plugins": "INGEST_PLUGINS",
    "files_dir": "INGEST_FILES_DIR",
    "source_vars": "INGEST_SOURCE_VARS",
    "breaker_probe_timeout": "INGEST_BREAKER_PROBE_TIMEOUT",
    "max_page_values": "INGEST_MAX_PAGE_VALUES",
    "max_nesting": "INGEST_MAX_NESTING",
    "stop_grace": "INGEST_STOP_GRACE",
    "dedup_ttl": "INGEST_DEDUP_TTL",
    "strict_counts": "INGEST_STRICT_COUNTS",
}

# What a worker keeps to itself: a job's catalog entry may never name these (core.permissions).
WORKER_OWN_VARIABLES = frozenset({*ENV_VARS.values(), "RQ_REDIS_URL", "PGPASSWORD", "REDISCLI_AUTH"})

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
    own = sorted(name for name in file_settings if _FIELDS[name].metadata.get("worker_own"))
    if own:
        raise ConfigError(f"{file_label} key {own[0]!r}: a worker's own permission, set only in its environment "
                          f"({ENV_VARS[own[0]]}), never by a catalog")

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
    settings = Settings(**values)
    if bool(settings.redis_sentinels) != bool(settings.redis_sentinel_master):
        raise ConfigError("REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: set both (Redis through "
                          "Sentinel) or neither (REDIS_URL alone)")
    sentinel_addresses(settings.redis_sentinels)  # fail now, naming the variable, not at first use
    return settings


def sentinel_addresses(text: str) -> list[tuple[str, int]]:
    """``"10.0.0.1:26379,10.0.0.2:26379"`` (REDIS_SENTINELS) as (host, port) pairs; ``""`` gives none."""
    addresses = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS: expected host:port separated by commas, got {part!r}")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _convert(name: str, raw: Any, origin: str) -> Any:
    default = _FIELDS[name].default
    if _FIELDS[name].metadata.get("path"):
        return Path(raw)
    if _FIELDS[name].metadata.get("text"):
        return str(raw)
    if isinstance(_FIELDS[name].default, bool):
        return _flag(raw, origin)
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


_FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _flag(raw: Any, origin: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word not in _FLAG_WORDS:
        raise ConfigError(f"{origin}: expected one of 1, true, yes, on, 0, false, no, off; got {raw!r}")
    return _FLAG_WORDS[word]
