"""The chaos run: ingest a known set under source faults, SIGKILLed workers and a
PostgreSQL outage, then prove that nothing was lost or duplicated.

What it does (``scripts/chaos``; a smaller plan runs in the test suite):

* serves ``sources x records`` products from the mock source with faults on
  (5xx, 429 with ``Retry-After``, dropped connections, malformed pages); every other
  source has a cursor (``updated_at``), one reaches its feed through a redirect, and
  one more (``chaos_stuck``) is a paginator that serves its first page forever;
* serves ``lossy_sources`` more (one with a cursor) from a second mock source where a
  share of the pages (``unreadable``) is malformed on every request: lost pages;
* runs ``workers`` real ``rq worker`` processes (:class:`IngestWorker`) whose
  ``DATABASE_URL`` points at a :class:`CuttableProxy` in front of PostgreSQL;
* every ``kill_every`` seconds SIGKILLs a busy worker: either its work horse alone
  (the worker notices at once) or the worker and its horse (the job is found
  abandoned by heartbeat deadline), and starts a replacement for a dead worker;
* cuts PostgreSQL at the network for ``pg_outage`` seconds, once;
* then runs every source once more with the faults off (a clean re-run);
* checks, per key across both runs (:mod:`.verdict`, shared with the hosts run): each served
  record is loaded once or rejected with a reason (never both, never lost); every job of the
  clean re-run finished, and the stuck paginator was stopped in both; prints one line of figures.
* meanwhile ``merge_sources`` more sources load a merge dataset ``passes`` times, the feed
  changing between passes (:mod:`.chaos_merge`): each key's final row must hold the last revision;
  and a fan-out source (:mod:`.chaos_fanout`): each comment of each issue stored once.

It only touches its own sources (``chaos_0``, ..., ``chaos_merge_0``, ...) and queue.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
import redis
from psycopg2 import sql
from rq import Queue

from ..core.config import Settings
from ..core.models import SourceSpec
from ..guards.breaker import BREAKER_PREFIX
from ..guards.ratelimit import RATE_PREFIX
from ..load.dedup import FINGERPRINT_PREFIX, SEEN_PREFIX
from ..load.migrate import migrate
from ..ops.watch import JobState, job_states
from ..runtime.producer import enqueue_run, make_queue, new_run_id
from ..runtime.workerpool import worker_command, worker_env
from .chaos_fanout import FanOutChaos, FanOutVerdict
from .chaos_merge import (
    CHAOS_DATASETS,
    MergePasses,
    MergeVerdict,
    check_merge,
    forget_merge,
    merge_source_names,
    merge_specs,
)
from .fleet import WorkerFleet, children, work_horses
from .mock_faults import FaultConfig, FaultInjector
from .mock_sources import MockConfig, MockServer
from .tcpproxy import CuttableProxy, dsn_through, postgres_address
from .verdict import judge, merge_expected, read_stored, served_keys

CHAOS_QUEUE = "chaos"
CHAOS_BATCH = 500
DEFAULT_FAULTS = FaultConfig(error=0.2, throttle=0.1, malformed=0.05, drop=0.02, retry_after=1)


@dataclass(frozen=True)
class ChaosPlan:
    sources: int = 10
    records: int = 10_000  # per source
    page_size: int = 500
    invalid_every: int = 97
    workers: int = 4
    rate_limit: float = 5.0  # requests/second per source
    faults: FaultConfig = DEFAULT_FAULTS
    lossy_sources: int = 2  # sources on a second mock source where some pages stay unreadable
    unreadable: float = 0.1  # the share of its pages that are malformed on every request
    kill_every: float = 5.0  # seconds between two SIGKILLs
    pg_outage_at: float = 15.0  # seconds after the start
    pg_outage: float = 25.0  # seconds PostgreSQL is unreachable
    timeout: float = 600.0
    seed: int | None = None
    merge_sources: int = 2  # sources of a merge dataset, run once per revision of the feed
    passes: int = 3  # revisions 0, 1, ... passes - 1
    fanout_issues: int = 150  # parents of the fan-out source (:mod:`.chaos_fanout`); 0: none


@dataclass
class ChaosResult:
    served: int = 0
    loaded: int = 0
    rejected: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0  # a valid record rejected, or a broken one loaded
    without_reason: int = 0
    page_rejections: int = 0  # lost pages, each rejected as one row (stage fetch)
    jobs: int = 0
    jobs_failed: int = 0  # jobs that failed without a reason to (a source that loses no page, or in the re-run)
    jobs_partial: int = 0  # jobs of the chaos run that ended partial (pages lost)
    jobs_unfinished: int = 0
    stuck_not_stopped: int = 0  # runs in which the repeating paginator was not stopped
    kills: int = 0
    pg_cut_seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    merge: MergeVerdict = field(default_factory=MergeVerdict)
    fanout: FanOutVerdict = field(default_factory=FanOutVerdict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.without_reason or self.jobs_failed
                    or self.jobs_unfinished or self.stuck_not_stopped or self.loaded + self.rejected != self.served
                    or not self.merge.ok or not self.fanout.ok)

    def line(self) -> str:
        faults = ",".join(f"{name}={count}" for name, count in sorted(self.faults.items()))
        return (f"chaos {'PASS' if self.ok else 'FAIL'}: served={self.served} loaded={self.loaded} "
                f"rejected={self.rejected} lost={self.lost} duplicated={self.duplicated} "
                f"{f'unexpected={self.unexpected} ' if self.unexpected else ''}"
                f"rejections_without_reason={self.without_reason} page_rejections={self.page_rejections} "
                f"jobs={self.jobs} failed={self.jobs_failed} partial={self.jobs_partial} "
                f"unfinished={self.jobs_unfinished} stuck_not_stopped={self.stuck_not_stopped} "
                f"kills={self.kills} merge[rows={self.merge.rows} revision={self.merge.revision} "
                f"updated={self.merge.updated} stale={self.merge.stale} missing={self.merge.missing} "
                f"extra={self.merge.extra} history_broken={self.merge.history_broken} "
                f"replace_revision={self.merge.replace_revision}] {self.fanout.text()} "
                f"pg_down={self.pg_cut_seconds:.0f}s faults[{faults}] elapsed={self.elapsed:.1f}s")


def chaos_settings(redis_url: str, database_url: str) -> Settings:
    """Worker settings for the run: enough retries to outlast the faults, short deadlines."""
    return Settings(redis_url=redis_url, database_url=database_url, queue=CHAOS_QUEUE, batch_size=CHAOS_BATCH,
                    job_timeout=600, job_retries=8, http_max_attempts=8, http_max_backoff=4.0,
                    breaker_cooldown=5.0, pg_retry_seconds=120.0, max_kills=10,
                    job_monitoring_interval=1, maintenance_interval=2, worker_ttl=17)


@dataclass(frozen=True)
class ChaosSource:
    spec: SourceSpec
    served: int  # records it serves: SKU-00000000 .. (the feed's first ``served``)
    lossy: bool = False  # some of its pages stay unreadable: it may end partial (or fail) in the chaos run
    stuck: bool = False  # a paginator that never ends: it must be stopped, in every run


def run_chaos(plan: ChaosPlan, redis_url: str, database_url: str, log_dir: Path,
              log: Callable[[str], None] = print) -> ChaosResult:
    rng = random.Random(plan.seed)
    client = redis.Redis.from_url(redis_url)
    conn = psycopg2.connect(database_url)
    merge_names = merge_source_names(plan.merge_sources)  # and a history and a replace source
    fanout = FanOutChaos(plan.fanout_issues, plan.seed, plan.rate_limit, conn)
    try:
        migrate(conn, [*CHAOS_DATASETS, *fanout.datasets])
        config = MockConfig(records=plan.records, invalid_every=plan.invalid_every)
        server = MockServer("127.0.0.1", 0, config, FaultInjector(dataclasses.replace(plan.faults, seed=plan.seed)))
        lossy = MockServer("127.0.0.1", 0, config, FaultInjector(
            dataclasses.replace(plan.faults, seed=plan.seed, unreadable=plan.unreadable)))
        injected = (server.faults, lossy.faults)  # the re-run swaps them for fault-free ones
        sources = chaos_sources(plan, server.url, lossy.url)
        names = [source.spec.name for source in sources]
        _forget(client, conn, [*names, *merge_names, "chaos_issues", "chaos_issue_comments"], CHAOS_QUEUE)
        forget_merge(conn, merge_names)
        fanout.start()
        for mock in (server, lossy):
            mock.start_in_thread()
        proxy = CuttableProxy(postgres_address(database_url)).start()
        try:
            passes = MergePasses(merge_specs(merge_names, server.url, plan.page_size, plan.rate_limit),
                                 plan.passes, server, database_url)
            result, run_ids = _run(plan, rng, client, (server, lossy), proxy, sources,
                                   chaos_settings(redis_url, dsn_through(database_url, proxy.address)), log_dir, log,
                                   passes, fanout)
        finally:
            fanout.stop()
            proxy.close()
            for mock in (server, lossy):
                mock.shutdown()
                mock.server_close()
        result.faults = dict(injected[0].injected + injected[1].injected)
        _check(conn, sources, run_ids, plan.invalid_every, result)
        result.merge = check_merge(conn, merge_names, plan.records, plan.invalid_every, passes)
        result.fanout = fanout.verdict() if plan.fanout_issues else FanOutVerdict()
    finally:
        conn.close()
        client.close()
    return result


def chaos_sources(plan: ChaosPlan, url: str, lossy_url: str) -> list[ChaosSource]:
    """``chaos_0..``: every other one with a cursor, ``chaos_1`` through a redirect; ``chaos_lossy_0..``
    on the lossy server (the first with a cursor); ``chaos_stuck``, whose pages never end."""
    def spec(name: str, base: str, cursor: bool, path: str = "/products", page_size: int = plan.page_size,
             ) -> SourceSpec:
        return SourceSpec(name=name, kind="http_json", dataset="products", url=f"{base}{path}",
                          page_size=page_size, fields={"product_id": "id", "name": "title"},
                          rate_limit=plan.rate_limit, **({"cursor_field": "updated_at",
                                                           "since_param": "updated_since"} if cursor else {}))
    sources = [ChaosSource(spec(f"chaos_{i}", url, i % 2 == 0, "/moved/products" if i == 1 else "/products"),
                           plan.records) for i in range(plan.sources)]
    sources += [ChaosSource(spec(f"chaos_lossy_{i}", lossy_url, i == 0), plan.records, lossy=True)
                for i in range(plan.lossy_sources)]
    # One page is one batch: it is loaded before the second page shows that the paging is stuck.
    sources.append(ChaosSource(spec("chaos_stuck", url, False, "/stuck/products", CHAOS_BATCH),
                               min(CHAOS_BATCH, plan.records), stuck=True))
    return sources


def _run(plan: ChaosPlan, rng: random.Random, client: redis.Redis, servers: tuple[MockServer, MockServer],
         proxy: CuttableProxy, sources: list[ChaosSource], settings: Settings, log_dir: Path,
         log: Callable[[str], None], passes: MergePasses, fanout: FanOutChaos) -> tuple[ChaosResult, list[str]]:
    """The chaos run (and the merge passes), then the clean re-run; returns the result so far and
    both run ids."""
    result = ChaosResult(served=sum(source.served for source in sources))
    specs = [source.spec for source in sources]
    queue = make_queue(client, settings)
    run_ids = [new_run_id(), f"{new_run_id()}-clean"]
    log_dir.mkdir(parents=True, exist_ok=True)
    fleet = WorkerFleet(lambda name: worker_command(settings, name), worker_env(settings, os.environ),
                        log_dir / "chaos-workers.log")
    started = time.monotonic()
    try:
        fleet.start(plan.workers)
        job_ids = [e.job_id for e in enqueue_run(queue, settings, [*specs, *fanout.specs()], run_ids[0])]
        job_ids += passes.advance(queue, settings)
        next_kill, cut_at, state = started + plan.kill_every, None, job_states(queue, job_ids)
        while (state.done < state.total or passes.pending(queue)) and time.monotonic() - started < plan.timeout:
            now = time.monotonic()
            cut_at = _outage_step(plan, proxy, result, started, cut_at, log)
            if now >= next_kill:
                next_kill = now + plan.kill_every
                result.kills += _kill_one(fleet, rng, _scheduler_pid(client, settings.queue), log)
            time.sleep(0.2)
            more = passes.advance(queue, settings, job_ids)
            if more:
                log(f"chaos: merge pass at revision {passes.revision}")
            job_ids += more + fanout.listed(run_ids[0], [*job_ids, *more])
            state = job_states(queue, job_ids)
        if cut_at is not None and not result.pg_cut_seconds:  # the jobs ended during the outage
            proxy.restore()
            result.pg_cut_seconds = time.monotonic() - cut_at
        result.jobs = len(job_ids)
        result.jobs_unfinished = state.total - state.done + passes.remaining * passes.jobs_per_pass
        log(f"chaos: the chaos run ended at {time.monotonic() - started:.0f}s; a clean re-run follows")
        for server in servers:
            server.faults = FaultInjector()
        rerun = [e.job_id for e in enqueue_run(queue, settings, specs, run_ids[1])]
        result.jobs += len(rerun)
        state = _wait_for(queue, rerun, plan.timeout)
        result.jobs_unfinished += state.total - state.done
    finally:
        fleet.close()
        result.elapsed = time.monotonic() - started
    return result, run_ids


def _outage_step(plan: ChaosPlan, proxy: CuttableProxy, result: ChaosResult, started: float,
                 cut_at: float | None, log: Callable[[str], None]) -> float | None:
    """Cut PostgreSQL once it is time, restore it after ``plan.pg_outage``; returns when it was cut."""
    now = time.monotonic()
    if cut_at is None and now - started >= plan.pg_outage_at:
        proxy.cut()
        log(f"chaos: PostgreSQL cut at {now - started:.0f}s")
        return now
    if cut_at is not None and not result.pg_cut_seconds and now - cut_at >= plan.pg_outage:
        proxy.restore()
        result.pg_cut_seconds = now - cut_at
        log(f"chaos: PostgreSQL back at {now - started:.0f}s")
    return cut_at


def _wait_for(queue: Queue, job_ids: list[str], timeout: float) -> JobState:
    """The jobs' states once all have ended, or after ``timeout`` seconds."""
    started = time.monotonic()
    state = job_states(queue, job_ids)
    while state.done < state.total and time.monotonic() - started < timeout:
        time.sleep(0.2)
        state = job_states(queue, job_ids)
    return state


def _kill_one(fleet: WorkerFleet, rng: random.Random, scheduler_pid: int | None,
              log: Callable[[str], None]) -> int:
    """SIGKILL a random worker: its work horse only, or the worker and its horse.

    The worker whose child runs RQ's scheduler loses only its horse: RQ hands the
    scheduler lock to another worker after 120 s at the earliest, and until then no
    retry or deferred job would be enqueued; that would test RQ's patience, not ours.
    """
    victim = rng.choice(fleet.workers)
    holds_scheduler = scheduler_pid is not None and scheduler_pid in children(victim.pid)
    horse_only = holds_scheduler or rng.random() < 0.5
    if horse_only and not work_horses(victim.pid):
        return 0  # idle: nothing to kill mid-job
    fleet.kill_worker(victim, horse_only=horse_only)
    if not horse_only:
        fleet.start(1)
    log(f"chaos: SIGKILL {'work horse of ' if horse_only else 'worker '}{victim.pid}")
    return 1


def _scheduler_pid(client: redis.Redis, queue: str) -> int | None:
    """The pid of the process running RQ's scheduler for ``queue`` (from its lock and hash)."""
    name = client.get(f"rq:scheduler-lock:{queue}")
    pid = client.hget(f"rq:scheduler:{name.decode()}", "pid") if name else None
    return int(pid) if pid else None


def _check(conn: psycopg2.extensions.connection, sources: list[ChaosSource], run_ids: list[str],
           invalid_every: int, result: ChaosResult) -> None:
    """The verdict, per key across both runs (:mod:`.verdict`), and per job."""
    # The merge passes revise the feed the sources share, but never whether a record is refused:
    # each valid record must end loaded once, each broken one rejected (in one run or both).
    expected = merge_expected(served_keys(source.spec.name, source.served, invalid_every) for source in sources)
    verdict = judge(expected, read_stored(conn, [source.spec.name for source in sources]))
    result.loaded, result.rejected = verdict.rows, verdict.rejected
    result.lost, result.duplicated, result.unexpected = verdict.lost, verdict.duplicated, verdict.unexpected
    result.page_rejections, result.without_reason = verdict.page_rejections, verdict.without_reason
    _check_jobs(conn, sources, run_ids, result)


def _check_jobs(conn: psycopg2.extensions.connection, sources: list[ChaosSource], run_ids: list[str],
                result: ChaosResult) -> None:
    """Every job of the clean re-run finished, the stuck paginator was stopped in both runs."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, source, status, coalesce(error, '') FROM ingest_jobs WHERE run_id = ANY(%s)",
                    (run_ids,))
        jobs = {(run_id, source): (status, error) for run_id, source, status, error in cur.fetchall()}
    for source in sources:
        for index, run_id in enumerate(run_ids):
            status, error = jobs.get((run_id, source.spec.name), ("never started", ""))
            if source.stuck:
                result.stuck_not_stopped += not (status == "failed" and "repeats the page" in error)
            elif status == "partial" and index == 0:
                result.jobs_partial += 1
            elif status != "finished" and not (source.lossy and index == 0):
                result.jobs_failed += 1


def _forget(client: redis.Redis, conn: psycopg2.extensions.connection, names: list[str], queue: str) -> None:
    """Start from nothing for the chaos sources only: their rows, filters, limits and breakers,
    and the scheduler lock a SIGKILLed scheduler of an earlier run may still hold (61 s)."""
    with conn, conn.cursor() as cur:
        for table in ("products", "rejected_records", "ingest_jobs", "source_cursors"):
            cur.execute(sql.SQL("DELETE FROM {} WHERE source = ANY(%s)").format(sql.Identifier(table)), (names,))
    client.delete(f"rq:scheduler-lock:{queue}",
                  *[prefix + name for name in names
                    for prefix in (SEEN_PREFIX, FINGERPRINT_PREFIX, BREAKER_PREFIX, RATE_PREFIX)])


def main(argv: list[str] | None = None) -> int:
    """``python -m ingest_workers.testing.chaos --redis-url URL --database-url URL [...]`` (see scripts/chaos)."""
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--sources", type=int, default=ChaosPlan.sources)
    parser.add_argument("--records", type=int, default=ChaosPlan.records, help="per source")
    parser.add_argument("--workers", type=int, default=ChaosPlan.workers)
    parser.add_argument("--kill-every", type=float, default=ChaosPlan.kill_every)
    parser.add_argument("--pg-outage", type=float, default=ChaosPlan.pg_outage)
    parser.add_argument("--pg-outage-at", type=float, default=ChaosPlan.pg_outage_at)
    parser.add_argument("--faults", default="error=0.2,throttle=0.1,malformed=0.05,drop=0.02,retry_after=1")
    parser.add_argument("--lossy-sources", type=int, default=ChaosPlan.lossy_sources)
    parser.add_argument("--unreadable", type=float, default=ChaosPlan.unreadable,
                        help="share of the lossy sources' pages that stay unreadable")
    parser.add_argument("--timeout", type=float, default=ChaosPlan.timeout)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--merge-sources", type=int, default=ChaosPlan.merge_sources,
                        help="sources of a merge dataset whose records change between passes")
    parser.add_argument("--passes", type=int, default=ChaosPlan.passes, help="revisions the merge sources load")
    parser.add_argument("--log-dir", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    plan = ChaosPlan(sources=args.sources, records=args.records, workers=args.workers, kill_every=args.kill_every,
                     pg_outage=args.pg_outage, pg_outage_at=args.pg_outage_at,
                     faults=FaultConfig.parse(args.faults), timeout=args.timeout, seed=args.seed,
                     lossy_sources=args.lossy_sources, unreadable=args.unreadable,
                     merge_sources=args.merge_sources, passes=args.passes)
    result = run_chaos(plan, args.redis_url, args.database_url, args.log_dir,
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    print(result.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
