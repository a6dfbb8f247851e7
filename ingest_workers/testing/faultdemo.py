"""The resilience demo (``ingest demo --faults``): faulty sources next to healthy ones, told as it happens.

Each faulty source is a copy of a catalog source pointed at a mock server of its own
with one fault profile (the fault knobs are per server):

- ``shop_down`` fails hard (every page a 503): retries with back-off, then its circuit
  breaker opens after ``breaker_failures`` failed requests, its job is deferred, the
  half-open probe fails and the circuit opens again;
- ``shop_throttled`` answers some pages with 429 and ``Retry-After``, and has a rate
  limit of :data:`THROTTLED_RATE` requests/s that the workers keep together;
- ``shop_flaky`` fails now and then (503, dropped connections, cut bodies): retries pass.

The healthy sources finish anyway. The run ends when they have and ``shop_down``'s probe
has failed (or after :data:`GIVE_UP_SECONDS`); its job is then cancelled, and the summary
marks it unhealthy with its reason.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg2.extensions
from rq.queue import Queue

from ..catalog import Catalog
from ..core.config import Settings
from ..core.connections import connect_postgres, postgres_errors
from ..core.envrefs import expand
from ..core.models import SourceSpec
from ..guards.breaker import BREAKER_PREFIX
from ..ops.watch import JobState, job_states
from ..runtime.localrun import RunOutcome
from ..runtime.producer import Enqueued, new_run_id
from ..runtime.workerrun import GiveUp, Pool, run_on_workers
from .mock_faults import FaultConfig, FaultInjector
from .mock_sources import MockConfig, MockServer
from .narrate import BreakerWatch, LogTail, RateWatch, describe_log_line

HEALTHY = ("market_quotes", "placeholder_posts", "twitter_mentions", "sensor_synthetic")
THROTTLED_RATE = 4.0  # requests/second, all workers together


@dataclass(frozen=True)
class FaultySource:
    name: str
    copies: str  # the catalog source whose shape it serves
    faults: str  # FaultConfig.parse syntax
    what: str  # in plain words
    rate_limit: float | None = None


FAULTY = (
    FaultySource("shop_down", "shop_c_products", "error=1.0", "fails hard: every page is a 503"),
    FaultySource("shop_throttled", "shop_b_catalog", "throttle=0.1,retry_after=1,seed=3",
                 f"rate-limited: some pages are 429 'too many requests'; we may call it {THROTTLED_RATE:g} "
                 "times a second", THROTTLED_RATE),
    # Page numbers (shop A's shape): a page that stays unreadable is rejected and paging goes on.
    FaultySource("shop_flaky", "shop_products", "error=0.15,drop=0.05,malformed=0.05,seed=7",
                 "flaky: a quarter of the pages fail (503, connection dropped, body cut short)"),
)
DOWN = "shop_down"
STOPPED_WAITING = "the demo stopped waiting for it"
# Short delays, so a newcomer sees the whole story in well under a minute.
SETTINGS = {"job_retries": 3, "job_retry_intervals": "1", "http_max_attempts": 3, "http_max_backoff": 2.0,
            "breaker_failures": 3, "breaker_cooldown": 5.0, "log_format": "json"}
GIVE_UP_SECONDS = 90.0


class CountingFaults(FaultInjector):
    """A fault injector that also notes when each data page was asked for (to show the rate)."""

    def __init__(self, config: FaultConfig) -> None:
        super().__init__(config)
        self.stamps: list[float] = []

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> bool:
        self.stamps.append(time.monotonic())
        return super().respond(handler, body)


@contextmanager
def mock_servers(records: int, port: int, faulty: Sequence[FaultySource] = FAULTY
                 ) -> Iterator[tuple[MockServer, dict[str, MockServer]]]:
    """The healthy mock server (on ``port``) and one per faulty source (any free port), for the block."""
    with ExitStack() as stack:

        def start(server_port: int, faults: str) -> MockServer:
            server = MockServer("127.0.0.1", server_port, MockConfig(records=records),
                                CountingFaults(FaultConfig.parse(faults)))
            stack.callback(server.server_close)
            server.start_in_thread()
            stack.callback(server.shutdown)
            return server

        healthy = start(port, "")
        yield healthy, {source.name: start(0, source.faults) for source in faulty}


def demo_specs(catalog: Catalog, healthy_url: str, servers: Mapping[str, MockServer]) -> list[SourceSpec]:
    """The faulty copies pointed at their servers, then the healthy sources as the catalog has them.

    The throttled source gets pages that take about ten seconds at its rate, whatever the records."""
    specs = []  # the faulty first, so their story starts at once
    for faulty in FAULTY:
        base = catalog.sources[faulty.copies]
        # Without a cursor, a faulty source reads all its pages again in every demo (and a job
        # that fails resumes at its first page not committed).
        changes: dict[str, Any] = {"name": faulty.name, "cursor_field": None,
                                   "url": expand(base.url, {"INGEST_MOCK_URL": healthy_url}, faulty.copies, "url")
                                   .replace(healthy_url, servers[faulty.name].url)}
        if base.pagination in ("page", "offset"):
            # One request at a time: the seeded faults then meet the pages in one order, so the story
            # (which retries pass) is the same in every demo; several in flight would deal them anew.
            changes["concurrency"] = 1
        if faulty.rate_limit is not None:
            records = servers[faulty.name].config.records
            changes.update(rate_limit=faulty.rate_limit,
                           page_size=max(1, min(base.page_size, records // int(10 * faulty.rate_limit) or 1)))
        specs.append(dataclasses.replace(base, **changes))
    return specs + [catalog.sources[name] for name in HEALTHY]


def introduction(settings: Settings) -> list[str]:
    """What the newcomer is about to see."""
    return [
        f"healthy sources: {', '.join(HEALTHY)}",
        *(f"{f.name}: {f.what}" for f in FAULTY),
        f"each request is tried {settings.http_max_attempts} times with growing waits; a job that still fails "
        f"runs again {settings.job_retries} times; {settings.breaker_failures} failed requests in a row open a "
        f"source's circuit breaker for {settings.breaker_cooldown:g}s",
    ]


def workers_needed(asked: int) -> int:
    """At least one worker per faulty source and one more: they mostly wait, so no core is idle."""
    return max(asked, len(FAULTY) + 1)


def run_demo(settings: Settings, specs: Sequence[SourceSpec], pool: Pool, servers: Mapping[str, MockServer],
             say: Callable[[str], None]) -> RunOutcome:
    """Run the healthy and faulty ``specs`` on the workers of ``pool``, telling it through ``say`` as
    it happens, until every job ended or only :data:`DOWN` is left, still down; what happened."""
    for words in introduction(settings):
        say(words)
    run_id = new_run_id()

    def watch(queue: Queue, enqueued: Sequence[Enqueued], recover: Callable[[], list[str]] | None) -> JobState:
        return tell_run(queue, enqueued, pool.log_path, servers, say)

    outcome = run_on_workers(settings, specs, run_id, pool, watch, GiveUp(STOPPED_WAITING, STOPPED_WAITING), say)
    with closing(connect_postgres(settings.database_url)) as conn:
        for words in unreadable_pages(conn, run_id):
            say(words)
    return outcome


def tell_run(queue: Queue, enqueued: Sequence[Enqueued], log_path: Path, servers: Mapping[str, MockServer],
             say: Callable[[str], None], give_up: float = GIVE_UP_SECONDS, poll: float = 0.25) -> JobState:
    """Narrate the run until its jobs end, or the others have and ``shop_down``'s probe failed,
    or ``give_up`` seconds passed; return the last state of the jobs."""
    job_ids = [item.job_id for item in enqueued]
    others = [item.job_id for item in enqueued if item.source != DOWN]
    log = LogTail(log_path)
    breakers = BreakerWatch(queue.connection, [item.source for item in enqueued], BREAKER_PREFIX)
    throttled = [f.name for f in FAULTY if f.rate_limit]
    rates = RateWatch({name: servers[name].faults.stamps.copy for name in throttled},
                      {f.name: f.rate_limit for f in FAULTY if f.rate_limit}, time.monotonic)
    deadline = time.monotonic() + give_up
    while True:
        for line in log.new_lines():
            if words := describe_log_line(line):
                say(words)
        for words in (*breakers.changes(), *rates.report()):
            say(words)
        state = job_states(queue, job_ids)
        if state.done == state.total or time.monotonic() >= deadline:
            return state
        if DOWN in breakers.reopened and job_states(queue, others).done == len(others):
            say(f"every other source is done, and {DOWN} is still down: the demo stops waiting for it")
            return state
        time.sleep(poll)


def unreadable_pages(conn: psycopg2.extensions.connection, run_id: str) -> list[str]:
    """Plain words for each page of the run that stayed unreadable (rejected whole, with its reason)."""
    with postgres_errors(), conn, conn.cursor() as cur:
        cur.execute("SELECT source, reason FROM rejected_records WHERE run_id = %s AND stage = 'fetch' "
                    "ORDER BY rejected_at", (run_id,))
        return [f"{source}: {reason} after every try: the page is in rejected_records with that reason "
                "(to fetch again later), and paging went on" for source, reason in cur.fetchall()]


def verdict(summary: Mapping[str, Any], sources: int) -> tuple[str, bool]:
    """What the demo showed, in one sentence, and whether it went as designed: every one of the
    ``sources`` but the one that fails hard (:data:`DOWN`) finished, from the run's ``summary``."""
    others = {name: s for name, s in summary["sources"].items() if name != DOWN}
    healthy = [name for name, s in others.items() if s["failed_jobs"] == 0 and name not in summary["unfinished"]]
    words = (f"{len(healthy)} of {len(others)} other sources finished despite the faults ({', '.join(healthy)}); "
             f"{DOWN} is {summary['sources'].get(DOWN, {}).get('health', 'not run')}")
    return words, len(healthy) == len(others) == sources - 1
