"""The page of workers and queues, rendered from its document (``/status/workers``): which worker
on which host runs what since when, and where the backlog is (queue depths, the oldest waiting
job's age, scheduled and deferred jobs with their times)."""

from __future__ import annotations

from typing import Any

from .layout import cell, e, number, page, table
from .source_page import source_href

# What a worker is doing first: on a phone, the columns after these need a sideways scroll.
_WORKER_HEADERS = ("worker", "current job", "source", "since", "host", "pid", "state", "queues", "last heartbeat")
_QUEUE_HEADERS = ("queue", "queued", "oldest waiting", "started", "scheduled", "deferred", "failed", "finished",
                  "workers")
_QUEUE_COUNTS = ("queued", "oldest", "started", "scheduled", "deferred", "failed", "finished", "workers")


def render_workers_page(document: dict[str, Any]) -> str:
    """The HTML page of a workers document."""
    body = ["<h1>workers and queues</h1>", "<h2>workers</h2>",
            table("workers", _WORKER_HEADERS, (_worker_row(w) for w in document["workers"]), "no live worker"),
            "<h2>queues</h2>",
            table("queues", _QUEUE_HEADERS, (_queue_row(q) for q in document["queues"]), "no queue in Redis yet")]
    for queue in document["queues"]:
        for kind in ("scheduled", "deferred"):
            jobs = queue[f"{kind}_jobs"]
            if jobs:
                body += [f"<h2>{e(kind)} jobs of queue {e(queue['name'])}</h2>",
                         table(f"{kind}-{queue['name']}", ("job", "source", "run", "at" if kind == "deferred"
                                                           else "runs at"), (_job_row(job) for job in jobs), "")]
    return page("workers and queues", str(document["generated_at"]), "/status/workers", body)


def _worker_row(worker: dict[str, Any]) -> str:
    job = worker.get("current_job") or {}
    cells = [cell(worker["name"]), cell(job.get("job_id") or "idle", "job"), _source_cell(job.get("source")),
             cell(job.get("at") or "-", "since"), cell(worker.get("hostname") or "-", "host"),
             cell(worker.get("pid") or "-", "pid"), cell(worker["state"], "state"),
             cell(", ".join(worker.get("queues") or [])), cell(worker.get("last_heartbeat") or "-", "heartbeat")]
    return f'<tr data-worker="{e(worker["name"])}">{"".join(cells)}</tr>'


def _queue_row(queue: dict[str, Any]) -> str:
    age = queue.get("oldest_queued_seconds")
    waiting = "-" if age is None else f"{age:.0f} s (since {queue['oldest_queued_at']})"
    values = [queue["queued"], waiting, *(queue[name] for name in _QUEUE_COUNTS[2:])]
    cells = [cell(queue["name"])] + [cell(value if name == "oldest" else number(value), f"n {name}")
                                     for name, value in zip(_QUEUE_COUNTS, values)]
    return f'<tr data-queue="{e(queue["name"])}">{"".join(cells)}</tr>'


def _job_row(job: dict[str, Any]) -> str:
    return (f'<tr data-job="{e(job["job_id"])}">{cell(job["job_id"])}{_source_cell(job.get("source"))}'
            f'{cell(job.get("run_id") or "-")}{cell(job.get("at") or "-", "at")}</tr>')


def _source_cell(source: str | None) -> str:
    if not source:
        return '<td class="source">-</td>'
    return f'<td class="source"><a href="{e(source_href(source))}">{e(source)}</a></td>'
