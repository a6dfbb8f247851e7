"""Runs: ``ingest enqueue``, ``ingest run`` (local workers) and ``ingest demo`` (everything)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ..core.config import Settings, load_settings
from ..core.connections import connect_postgres, redis_for
from ..core.errors import ConfigError
from ..core.models import SourceSpec
from ..ops.history import JobHistory
from ..ops.watch import (
    JobState,
    RecordProgress,
    format_table,
    progress_line,
    summary_document,
    wait_for_jobs,
    write_summary,
)
from ..runtime import resources
from ..runtime.fanout_plans import enqueue_with_fan_out
from ..runtime.localrun import INTERRUPTED, RunOutcome, run_inline_with_fan_out
from ..runtime.producer import (
    Enqueued,
    check_run_id,
    enqueue_backfill,
    make_queue,
    new_run_id,
    not_windowable,
)
from ..runtime.reconcile import reconcile_run
from ..runtime.workerrun import GiveUp, Pool, record_stopped, run_on_workers
from ..testing import DEMO_CATALOG, faultdemo
from ..testing.devservices import ALLOW_CHMOD_ENV, ensure_services
from ..testing.mock_sources import MockServer
from .app import App, Duration, EnvOption, IsoTime
from .db import apply_migrations, check_tables

SOURCES_HELP = "'all', or source names separated by commas."


@click.command()
@click.option("--sources", required=True, help=SOURCES_HELP)
@click.option("--run-id", help="Reuse a run id to make enqueueing idempotent (default: a new run).")
@click.option("--since", type=IsoTime(), help="Backfill: records at or after this time (ISO 8601, UTC if no zone).")
@click.option("--until", type=IsoTime(), help="Backfill: records before this time; needs --since.")
@click.option("--window", "window_size", type=Duration(), default="1d", show_default=True,
              help="Backfill: one job per source and window of this length (30m, 6h, 1d, ...).")
@click.option("--wait", is_flag=True, help="Wait for the jobs, show progress, then print the summary.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="With --wait: give up after S seconds.")
@click.pass_obj
def enqueue(app: App, sources: str, run_id: str | None, since: datetime | None, until: datetime | None,
            window_size: timedelta, wait: bool, timeout: float | None) -> None:
    """Enqueue one fetch job per source for a run; workers do the rest.

    Without --since, each source starts at its cursor (the highest mark loaded so far).
    With --since and --until, the range is backfilled in window jobs whose ids come
    from the range, so the same backfill enqueued again adds nothing.
    """
    specs = app.catalog.select(sources)
    if (since is None) != (until is None):
        raise ConfigError("a backfill needs both --since and --until")
    if since is not None and sources.strip() == "all":
        specs = _backfillable(specs)
    client = app.redis()
    queue = make_queue(client, app.settings)
    records = RecordProgress(client, [spec.name for spec in specs])
    conn = app.postgres()  # the run's job list (what Redis may lose); a database without the schema: one line
    try:
        job_list = JobHistory(conn)
        if since is not None and until is not None:
            run_id, enqueued = enqueue_backfill(queue, app.settings, specs, since, until, window_size, run_id,
                                                job_list)
        else:
            run_id = check_run_id(run_id) if run_id else new_run_id()
            enqueued = enqueue_with_fan_out(queue, app.settings, conn, specs, run_id, app.catalog.sources)
        for item in enqueued:
            click.echo(f"{'enqueued' if item.created else 'already enqueued'} {item.source} as job {item.job_id}")
        if wait:
            ok = _watch(app.settings, queue, run_id, enqueued, records, timeout, Path("out/summary.json"),
                        _recoverer(queue, app.settings, job_list, run_id), lambda: job_list.job_ids(run_id))
            sys.exit(0 if ok else 1)
    finally:
        conn.close()


def _recoverer(queue: Any, settings: Settings, job_list: JobHistory, run_id: str) -> Callable[[], list[str]]:
    """For the watch: enqueue again the jobs of the run that Redis lost, and say so."""
    def recover() -> list[str]:
        again = reconcile_run(queue, settings, job_list, run_id)
        for job_id in again:
            click.echo(f"Redis lost job {job_id}; enqueued it again", err=True)
        return again
    return recover


def _backfillable(specs: list[SourceSpec]) -> list[SourceSpec]:
    """The sources of ``--sources all`` that can be backfilled; each of the others is named, with why."""
    kept = []
    for spec in specs:
        reason = not_windowable(spec)
        if reason:
            click.echo(f"skipped {spec.name}: it cannot be backfilled by time: {reason}", err=True)
        else:
            kept.append(spec)
    if not kept:
        raise ConfigError("no source of the catalog can be backfilled by time (each is listed above, with why)")
    return kept


@click.command()
@click.option("--sources", default="all", show_default=True, help=SOURCES_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=os.cpu_count() or 1, show_default="cores",
              help="Local `rq worker` processes to start for this run; 0: run every job inline in this "
                   "process (RQ's synchronous mode: a breakpoint in a source or a stage is hit).")
@click.option("--worker-class", help="RQ worker class, e.g. ingest_workers.runtime.worker.IngestSimpleWorker "
              "(jobs in the worker process; default: the forking IngestWorker). Both run only this package's jobs.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), envvar="INGEST_TIMEOUT", cls=EnvOption,
              help="Time limit in seconds: then the jobs not finished are cancelled or stopped, what "
                   "finished stays loaded, and the exit status is 1. [env: INGEST_TIMEOUT]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/summary.json"),
              show_default=True, help="Where to write the run's summary.")
@click.pass_obj
def run(app: App, sources: str, workers: int, worker_class: str | None, timeout: float | None, out: Path) -> None:
    """Run sources on this machine: enqueue, run the jobs inline or on N workers started for
    this run, wait, summarise, stop the workers."""
    ok = run_locally(app, sources, workers, worker_class, timeout, out)
    sys.exit(0 if ok else 1)


def run_locally(app: App, sources: str, workers: int, worker_class: str | None, timeout: float | None,
                out: Path) -> bool:
    """Check the services and the schema, run ``sources`` inline or on ``workers`` local workers,
    report; True if every job succeeded."""
    specs = app.catalog.select(sources)
    settings = app.settings
    client = app.redis()
    app.postgres().close()  # fail now, in one line, rather than in every job
    check_tables(settings, [d for name, d in app.catalog.used_datasets().items()
                            if name in {spec.dataset for spec in specs}])
    records = RecordProgress(client, [spec.name for spec in specs])
    run_id = new_run_id()
    if workers == 0:
        outcome = _run_inline(app, client, specs, run_id, timeout)
    else:
        deadline = None if timeout is None else time.monotonic() + timeout

        def watch(queue: Any, enqueued: Sequence[Enqueued], recover: Callable[[], list[str]] | None) -> JobState:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return _progress(queue, [item.job_id for item in enqueued], records, left, settings, recover,
                             _listed(settings, run_id) if recover else None)

        limit = GiveUp(f"time limit {timeout:g}s", f"the run's time limit ({timeout:g}s) passed") if timeout \
            else GiveUp("", "")
        outcome = run_on_workers(settings, specs, run_id, Pool(workers, worker_class, out.parent / "workers.log",
                                                              app.env), watch, limit, _say, app.catalog.sources)
    return bool(_report(settings, outcome, records, out)["ok"])


def _run_inline(app: App, client: Any, specs: list[SourceSpec], run_id: str, timeout: float | None) -> RunOutcome:
    click.echo(f"run {run_id}: {len(specs)} job(s) inline in this process (pid {os.getpid()})")

    def on_job(index: int, total: int, item: Enqueued) -> None:
        click.echo(f"job {index + 1}/{total}: {item.source}", err=True)

    deadline = None if timeout is None else time.monotonic() + timeout
    with resources.using(app.settings, app.env), closing(app.postgres()) as conn:
        queue = make_queue(client, app.settings, is_async=False)
        enqueued, unfinished = run_inline_with_fan_out(queue, app.settings, conn, specs, run_id, app.catalog.sources,
                                                       deadline, on_job)
    outcome = RunOutcome(run_id, enqueued, unfinished, f"time limit {timeout:g}s" if timeout else "")
    if unfinished:  # the child jobs planned and never started: failed, saying why (a stopped job said so itself)
        interrupted = INTERRUPTED in unfinished.values() or timeout is None
        why = "Ctrl+C" if interrupted else f"the run's time limit ({timeout:g}s) passed"
        record_stopped(app.settings, outcome, why)
    return outcome


def _say(words: str) -> None:
    click.echo(words, err=True)


def _listed(settings: Settings, run_id: str) -> Callable[[], list[str]]:
    """The run's whole job list from PostgreSQL (child jobs fanned out included), read when asked."""
    def listed() -> list[str]:
        conn = connect_postgres(settings.database_url)
        try:
            return JobHistory(conn).job_ids(run_id)
        finally:
            conn.close()
    return listed


def _watch(settings: Settings, queue: Any, run_id: str, enqueued: list[Enqueued], records: RecordProgress,
           timeout: float | None, out: Path, recover: Callable[[], list[str]],
           listed: Callable[[], list[str]] | None = None) -> bool:
    """Show progress until the jobs (and the child jobs they fan out) end or ``timeout``, then
    report (the jobs keep running)."""
    job_ids = [item.job_id for item in enqueued]
    state = _progress(queue, job_ids, records, timeout, settings, recover, listed)
    if state.done < state.total:
        click.echo(f"{state.total - state.done} job(s) did not finish within {timeout}s", err=True)
    return bool(_report(settings, RunOutcome(run_id, enqueued), records, out)["ok"]) and state.done == state.total


def _progress(queue: Any, job_ids: list[str], records: RecordProgress, timeout: float | None, settings: Settings,
              recover: Callable[[], list[str]] | None = None,
              listed: Callable[[], list[str]] | None = None) -> JobState:
    """Show jobs done/total with ETA, records fetched and their rate, until the jobs end or ``timeout``:
    a progress bar in a terminal, else (CI logs, `docker logs`, honcho) a line every ``progress_interval``
    seconds. Redis may stay away for up to ``service_wait`` seconds meanwhile."""
    if not sys.stderr.isatty():
        return _progress_lines(queue, job_ids, records, timeout, settings, recover, listed)
    with click.progressbar(length=len(job_ids), label="jobs", show_pos=True, show_eta=True, file=sys.stderr,
                           item_show_func=lambda text: text) as bar:
        def on_progress(state: JobState) -> None:
            bar.current_item = records.describe()
            if state.done > bar.pos:
                bar.update(state.done - bar.pos)
            else:
                bar.render_progress()  # the records moved on, the jobs did not

        return wait_for_jobs(queue, job_ids, on_progress, timeout, recover=recover,
                             outage_limit=settings.service_wait, listed=listed)


def _progress_lines(queue: Any, job_ids: list[str], records: RecordProgress, timeout: float | None,
                    settings: Settings, recover: Callable[[], list[str]] | None = None,
                    listed: Callable[[], list[str]] | None = None) -> JobState:
    interval = settings.progress_interval
    next_line = time.monotonic() + interval

    def on_progress(state: JobState) -> None:
        nonlocal next_line
        if time.monotonic() >= next_line:
            click.echo(progress_line(state, records.describe(), records.elapsed()), err=True)
            next_line = time.monotonic() + interval

    state = wait_for_jobs(queue, job_ids, on_progress, timeout, recover=recover,
                          outage_limit=settings.service_wait, listed=listed)
    click.echo(progress_line(state, records.describe(), records.elapsed()), err=True)
    return state


def _report(settings: Settings, outcome: RunOutcome, records: RecordProgress, out: Path) -> dict[str, Any]:
    """Print the table and write ``out``; the summary (its ``ok``: every job succeeded), which
    names the jobs that did not finish, what happened to them and why."""
    conn = connect_postgres(settings.database_url)
    try:
        document = summary_document(outcome.run_id, JobHistory(conn).summarise(outcome.run_id), records.elapsed(),
                                    outcome.unfinished_sources())
    finally:
        conn.close()
    write_summary(document, out)
    click.echo(format_table(document))
    click.echo(f"summary written to {out}")
    return document


@click.command()
@click.option("--records", type=click.IntRange(min=0), default=20_000, show_default=True,
              help="Records each mock feed serves (and the synthetic source generates).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="cores")
@click.option("--worker-class", help="RQ worker class (default: the forking Worker).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port of the mock source (0: any free port).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".state"),
              show_default=True, help="Where embedded Redis/PostgreSQL keep their files, when they are needed.")
@click.option("--faults", is_flag=True,
              help="The resilience demo: healthy sources next to one that fails hard, one rate-limited with "
                   "429s and a flaky one, told in plain words as it happens.")
@click.pass_obj
def demo(app: App, records: int, workers: int, worker_class: str | None, port: int, state_dir: Path,
         faults: bool) -> None:
    """The whole system on this machine: services (embedded if none answer), schema,
    mock source, workers, one run of every source, and its summary. It runs the packaged demo
    catalog (the mock's feeds) unless --catalog names another."""
    flags = {**app.flags, "catalog_path": app.flags.get("catalog_path") or DEMO_CATALOG}
    base = load_settings(flags, app.env)
    with ensure_services(base.redis_url, base.database_url, state_dir, log=click.echo,
                         allow_permission_changes=app.env.get(ALLOW_CHMOD_ENV) == "yes") as services:
        flags.update(redis_url=services.redis_url, database_url=services.database_url,
                     **(faultdemo.SETTINGS if faults else {}))
        with ExitStack() as stack:
            try:
                healthy, faulty = stack.enter_context(
                    faultdemo.mock_servers(records, port, faultdemo.FAULTY if faults else ()))
            except OSError as exc:
                raise ConfigError(f"cannot serve the mock source on 127.0.0.1:{port} ({exc.strerror}); "
                                  "pass --port 0 for any free port") from None
            click.echo(f"mock sources: {records} records per feed at {healthy.url}")
            # The demo's own App, built once its services, flags and mock URL are known: its settings
            # and catalog (which reads INGEST_MOCK_URL) cannot have been read before.
            demo_app = App(flags, {**app.env, "INGEST_MOCK_URL": healthy.url,
                                   "INGEST_SYNTHETIC_RECORDS": str(records)})
            applied = apply_migrations(demo_app.settings, datasets=list(demo_app.catalog.datasets.values()))
            click.echo(f"schema: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
            if faults:
                ok = fault_demo(demo_app, workers, worker_class, healthy.url, faulty, Path("out/summary.json"))
            else:
                ok = run_locally(demo_app, "all", workers, worker_class, None, Path("out/summary.json"))
    sys.exit(0 if ok else 1)


def fault_demo(app: App, workers: int, worker_class: str | None, healthy_url: str,
               servers: dict[str, MockServer], out: Path) -> bool:
    """Run the healthy and faulty sources on local workers, narrating; True if every source but
    the one that fails hard succeeded (the demo went as designed)."""
    specs = faultdemo.demo_specs(app.catalog, healthy_url, servers)
    records = RecordProgress(redis_for(app.settings), [spec.name for spec in specs])
    started = time.monotonic()

    def say(words: str) -> None:
        click.echo(f"[{time.monotonic() - started:5.1f}s] {words}")

    pool = Pool(faultdemo.workers_needed(workers), worker_class, out.parent / "workers.log", app.env)
    outcome = faultdemo.run_demo(app.settings, specs, pool, servers, say)
    words, ok = faultdemo.verdict(_report(app.settings, outcome, records, out), len(specs))
    say(words)
    return ok
