"""`ingest status` as text: its columns line up, the recent failures' too."""

from __future__ import annotations

from typing import Any

from ingest_workers.cli import main
from ingest_workers.ops.status import format_status


def _source(failures: list[dict[str, Any]]) -> dict[str, Any]:
    return {"last_run": None, "jobs": 1, "succeeded": 0, "success_rate": 0.0, "health": "unhealthy", "loaded": 0,
            "recent_failures": failures}


def test_recent_failures_line_up_in_columns() -> None:
    document = {"window_hours": 24, "queues": {}, "sources": {
        "a": _source([{"job_id": "run-1-a", "at": "2026-01-01T00:00:00+00:00", "error": "HTTP 404"}]),
        "a_much_longer_name": _source([{"job_id": "run-1-a_much_longer_name", "at": None, "error": "HTTP 503"}]),
    }}
    text = format_status(document)
    rows = text.split("recent failures:\n")[1].splitlines()[:2]
    assert [row.index("HTTP") for row in rows][0] == [row.index("HTTP") for row in rows][1], rows
    assert rows[1].split()[1] == "-"  # a failure without a time keeps its column


def test_mock_sources_serve_as_many_records_as_the_demo_by_default() -> None:
    defaults = {name: {p.name: p.default for p in main.commands[name].params} for name in ("mock-sources", "demo")}
    assert defaults["mock-sources"]["records"] == defaults["demo"]["records"] == 20_000
