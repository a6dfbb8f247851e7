"""The ``ingest`` command. It parses flags, builds the settings once, and calls one
function per subcommand; errors a user can fix end in one line, not a traceback."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from . import __version__
from .catalog import Catalog, load_catalog
from .config import DEFAULT_CATALOG, ENV_VARS, Settings, load_settings
from .connections import connect_postgres, connect_redis
from .errors import ConfigError, IngestError
from .migrate import migrate
from .producer import Enqueued, check_run_id, enqueue_run, make_queue, new_run_id
from .runs import JobHistory
from .watch import JobState, format_table, summary_document, wait_for_jobs, write_summary


@dataclass
class App:
    """What the subcommands share: the flags of the group, turned into settings on first use."""

    flags: dict[str, Any]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @cached_property
    def catalog(self) -> Catalog:
        path = self.flags.get("catalog_path") or self.env.get(ENV_VARS["catalog_path"]) or DEFAULT_CATALOG
        return load_catalog(Path(path), self.env)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.flags, self.env, self.catalog.settings, f"{self.catalog.path} [settings]")


class IngestGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=IngestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Source catalog (TOML). [env: INGEST_CATALOG; default: the packaged mock-source catalog]")
@click.option("--redis-url", help="Redis holding the queue, dedup sets and metrics. [env: REDIS_URL]")
@click.option("--database-url", help="PostgreSQL the records load into. [env: DATABASE_URL]")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def main(ctx: click.Context, catalog_path: Path | None, redis_url: str | None, database_url: str | None,
         log_level: str) -> None:
    """Ingest sources through RQ workers into PostgreSQL, exactly once.

    Typical use: `ingest db migrate`, start workers with `rq worker --serializer json
    --with-scheduler ingest`, then `ingest enqueue --sources all`. `ingest demo`
    does all of it on one machine.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = App({"catalog_path": catalog_path, "redis_url": redis_url, "database_url": database_url})


@main.group()
def db() -> None:
    """Manage the PostgreSQL schema."""


@db.command("migrate")
@click.pass_obj
def db_migrate(app: App) -> None:
    """Apply the numbered SQL migrations that are missing (safe to run again)."""
    applied = _migrate(app.settings)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


def _migrate(settings: Settings) -> list[str]:
    conn = connect_postgres(settings.database_url)
    try:
        return migrate(conn)
    finally:
        conn.close()


SOURCES_HELP = "'all', or source names separated by commas."


@main.command()
@click.option("--sources", required=True, help=SOURCES_HELP)
@click.option("--run-id", help="Reuse a run id to make enqueueing idempotent (default: a new run).")
@click.option("--wait", is_flag=True, help="Wait for the jobs, show progress, then print the summary.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="With --wait: give up after S seconds.")
@click.pass_obj
def enqueue(app: App, sources: str, run_id: str | None, wait: bool, timeout: float | None) -> None:
    """Enqueue one fetch job per source for a run; workers do the rest."""
    specs = app.catalog.select(sources)
    run_id = check_run_id(run_id) if run_id else new_run_id()
    client = connect_redis(app.settings.redis_url)
    queue = make_queue(client, app.settings)
    enqueued = enqueue_run(queue, app.settings, specs, run_id)
    for item in enqueued:
        click.echo(f"{'enqueued' if item.created else 'already enqueued'} {item.source} as job {item.job_id}")
    if wait:
        ok = _watch(app.settings, queue, run_id, enqueued, time.monotonic(), timeout, Path("out/summary.json"))
        sys.exit(0 if ok else 1)


@main.command()
@click.option("--sources", default="all", show_default=True, help=SOURCES_HELP)
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="cores",
              help="Local `rq worker` processes to start for this run.")
@click.option("--worker-class", help="RQ worker class, e.g. rq.worker.SimpleWorker (default: the forking Worker).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), envvar="INGEST_TIMEOUT",
              help="Give up after S seconds. [env: INGEST_TIMEOUT]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("out/summary.json"),
              show_default=True, help="Where to write the run's summary.")
@click.pass_obj
def run(app: App, sources: str, workers: int, worker_class: str | None, timeout: float | None, out: Path) -> None:
    """Run sources on this machine: enqueue, start N workers, wait, summarise, stop them."""
    ok = run_locally(app, sources, workers, worker_class, timeout, out)
    sys.exit(0 if ok else 1)


def run_locally(app: App, sources: str, workers: int, worker_class: str | None, timeout: float | None,
                out: Path) -> bool:
    from .workerpool import local_workers

    specs = app.catalog.select(sources)
    settings = app.settings
    client = connect_redis(settings.redis_url)
    connect_postgres(settings.database_url).close()  # fail now, in one line, rather than in every job
    queue = make_queue(client, settings)
    started = time.monotonic()
    run_id = new_run_id()
    with local_workers(settings, workers, app.env, out.parent / "workers.log", worker_class):
        enqueued = enqueue_run(queue, settings, specs, run_id)
        click.echo(f"run {run_id}: {len(enqueued)} job(s) on {workers} worker(s); worker logs in "
                   f"{out.parent / 'workers.log'}")
        return _watch(settings, queue, run_id, enqueued, started, timeout, out)


def _watch(settings: Settings, queue: Any, run_id: str, enqueued: list[Enqueued], started: float,
           timeout: float | None, out: Path) -> bool:
    """Show progress until the jobs end, then print the table and write ``out``; True if all succeeded."""
    job_ids = [item.job_id for item in enqueued]
    with click.progressbar(length=len(job_ids), label="jobs", show_pos=True, file=sys.stderr) as bar:
        def on_progress(state: JobState) -> None:
            bar.update(state.done - bar.pos)

        state = wait_for_jobs(queue, job_ids, on_progress, timeout)
    conn = connect_postgres(settings.database_url)
    try:
        document = summary_document(run_id, JobHistory(conn).summarise(run_id), time.monotonic() - started)
    finally:
        conn.close()
    unfinished = state.total - state.done
    document["unfinished_jobs"] = unfinished
    document["ok"] = document["ok"] and unfinished == 0
    write_summary(document, out)
    click.echo(format_table(document))
    if unfinished:
        click.echo(f"{unfinished} job(s) did not finish within {timeout}s", err=True)
    click.echo(f"summary written to {out}")
    return bool(document["ok"])


@main.command()
@click.option("--records", type=click.IntRange(min=0), default=20_000, show_default=True,
              help="Products the mock source serves.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="cores")
@click.option("--worker-class", help="RQ worker class (default: the forking Worker).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port of the mock source (0: any free port).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".state"),
              show_default=True, help="Where embedded Redis/PostgreSQL keep their files, when they are needed.")
@click.pass_obj
def demo(app: App, records: int, workers: int, worker_class: str | None, port: int, state_dir: Path) -> None:
    """The whole system on this machine: services (embedded if none answer), schema,
    mock source, workers, one run of every source, and its summary."""
    from .devservices import ensure_services
    from .mock_sources import MockConfig, MockServer

    base = load_settings(app.flags, app.env)
    with ensure_services(base.redis_url, base.database_url, state_dir, log=click.echo) as services:
        try:
            server = MockServer("127.0.0.1", port, MockConfig(records=records))
        except OSError as exc:
            raise ConfigError(f"cannot serve the mock source on 127.0.0.1:{port} ({exc.strerror}); "
                              "pass --port 0 for any free port") from None
        server.start_in_thread()
        click.echo(f"mock source: {records} products at {server.url}")
        app.flags.update(redis_url=services.redis_url, database_url=services.database_url)
        app.env["INGEST_MOCK_URL"] = server.url
        try:
            applied = _migrate(app.settings)
            click.echo(f"schema: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
            ok = run_locally(app, "all", workers, worker_class, None, Path("out/summary.json"))
        finally:
            server.shutdown()
            server.server_close()
    sys.exit(0 if ok else 1)


@main.command("mock-sources")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--records", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Products served.")
@click.option("--invalid-every", type=click.IntRange(min=0), default=97, show_default=True,
              help="Break every Nth product (0: none), to exercise rejections.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds added to every page.")
def mock_sources(host: str, port: int, records: int, invalid_every: int, latency: float) -> None:
    """Serve deterministic paginated products on HOST:PORT until interrupted."""
    from .mock_sources import MockConfig, MockServer

    server = MockServer(host, port, MockConfig(records=records, invalid_every=invalid_every, latency=latency))
    click.echo(f"serving {records} products at {server.url}/products", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command("metrics-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9108, show_default=True)
@click.pass_obj
def metrics_server(app: App, host: str, port: int) -> None:
    """Serve /metrics (Prometheus) and /healthz (Redis, PostgreSQL, workers)."""
    from .metrics_server import serve

    client = connect_redis(app.settings.redis_url)
    click.echo(f"metrics at http://{host}:{port}/metrics", err=True)
    try:
        serve(client, app.settings, host, port)
    except KeyboardInterrupt:
        pass
