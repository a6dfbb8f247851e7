"""Log output: human-readable text by default, or JSON lines (``--log-format json``).

Every line carries the source, run id and job id of the job it was written for
(``null`` outside a job): :func:`job_context` sets them for the duration of a job,
in a context variable, so nothing has to pass them to each log call.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..core.errors import ConfigError
from ..core.redact import redact

LOG_FORMATS = ("text", "json")
CONTEXT_FIELDS = ("source", "run_id", "job_id")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("ingest_log_context", default=None)
_TEXT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"


@contextmanager
def job_context(source: str, run_id: str, job_id: str) -> Iterator[None]:
    """Stamp ``source``, ``run_id`` and ``job_id`` on every log line written inside the block."""
    token = _context.set({"source": source, "run_id": run_id, "job_id": job_id})
    try:
        yield
    finally:
        _context.reset(token)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [job id]: message`` (a job id names its run and source)."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        record.context = f" [{context['job_id']}]" if context else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, source, run_id, job_id (and the
    exception's traceback when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get() or {}
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{field: context.get(field) for field in CONTEXT_FIELDS},
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def redact_log_records() -> None:
    """From now on, every log record this process creates (ours, RQ's, any library's) carries its
    message through :func:`~ingest_workers.core.redact.redact`: URL passwords masked, the job's
    environment values shown as ``${NAME}``. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            return record  # a malformed call: logging reports it when the record is emitted
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger's lines to stderr in ``log_format`` ("text" or "json"), unless the
    root logger has a handler already (an embedding application's, or pytest's); every line redacted."""
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    redact_log_records()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
