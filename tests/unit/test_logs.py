"""Log lines: JSON with the job's context, or text; the context ends with the job."""

import io
import json
import logging

import pytest

from ingest_workers.core.errors import ConfigError
from ingest_workers.ops.logs import JsonFormatter, TextFormatter, configure_logging, job_context


def emit(formatter: logging.Formatter, message: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("ingest_workers.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, "x")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_json_lines_carry_the_job_context_only_inside_the_job() -> None:
    with job_context("shop", "run-1", "run-1-shop"):
        inside = json.loads(emit(JsonFormatter(), "page %s failed"))
    outside = json.loads(emit(JsonFormatter(), "idle %s"))
    assert {k: inside[k] for k in ("level", "logger", "message", "source", "run_id", "job_id")} == {
        "level": "WARNING", "logger": "ingest_workers.test_logs", "message": "page x failed", "source": "shop",
        "run_id": "run-1", "job_id": "run-1-shop"}
    assert (outside["source"], outside["run_id"], outside["job_id"]) == (None, None, None)


def test_text_lines_name_the_job() -> None:
    with job_context("shop", "run-1", "run-1-shop"):
        assert "WARNING ingest_workers.test_logs [run-1-shop]: page x" in emit(TextFormatter(), "page %s")
    assert "ingest_workers.test_logs: idle x" in emit(TextFormatter(), "idle %s")


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="log format must be one of text, json"):
        configure_logging("INFO", "xml")
