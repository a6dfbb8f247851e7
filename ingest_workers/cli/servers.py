"""Long-running servers: the mock source and the metrics endpoint."""

from __future__ import annotations

import signal
import socketserver
import threading
from types import FrameType

import click

from ..ops.metrics_server import make_metrics_server
from ..testing.mock_faults import FaultConfig, FaultInjector
from ..testing.mock_sources import ROUTES, MockConfig, MockServer
from .app import App


def serve_until_stopped(server: socketserver.BaseServer) -> None:
    """Serve until SIGTERM (a process manager) or SIGINT (Ctrl+C), then close: exit status 0.

    The signal asks the serving loop to stop from another thread rather than raising in the handler:
    an exception raised while a request is being answered is caught by wsgiref's request handler (a
    bare ``except``, answered with a 500), so the stop would be lost and the server would run on.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, name="stop", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


@click.command("mock-sources")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--records", type=click.IntRange(min=0), default=20_000, show_default=True,
              help="Records served by each feed (the demo's and the Procfile's number).")
@click.option("--invalid-every", type=click.IntRange(min=0), default=97, show_default=True,
              help="Break every Nth product (0: none), to exercise rejections.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds added to every page.")
@click.option("--faults", "fault_spec", default="", metavar="NAME=VALUE,...",
              help="Fault rates per page, e.g. error=0.2,throttle=0.1,malformed=0.05 "
                   "(also drop, wrong_type, oversize, latency, retry_after, oversize_bytes, seed).")
@click.option("--cache-mb", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep served JSON pages up to this many MiB, so a page asked again costs no CPU (benchmarks).")
@click.option("--revision", type=click.IntRange(min=0), default=0, show_default=True,
              help="Serve revision N: every --changed-every-th valid record has another price, stock or text "
                   "(0: the feeds as they always were).")
@click.option("--changed-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --revision: which records change (every Kth).")
def mock_sources(host: str, port: int, records: int, invalid_every: int, latency: float, fault_spec: str,
                 cache_mb: int, revision: int, changed_every: int) -> None:
    """Serve the deterministic mock feeds of the five datasets on HOST:PORT until interrupted."""
    try:
        faults = FaultInjector(FaultConfig.parse(fault_spec))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    server = MockServer(host, port, MockConfig(records=records, invalid_every=invalid_every, latency=latency,
                                               cache_bytes=cache_mb * 2**20, revision=revision,
                                               changed_every=changed_every), faults)
    click.echo(f"serving {records} records per feed at {server.url}: {', '.join([*ROUTES, '/sensors.csv'])}",
               err=True)
    serve_until_stopped(server)


@click.command("metrics-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9108, show_default=True)
@click.pass_obj
def metrics_server(app: App, host: str, port: int) -> None:
    """Serve /metrics (Prometheus), /healthz (Redis, PostgreSQL, workers), /status (the JSON of
    `ingest status --json`) and / (the same as an HTML page that refreshes itself)."""
    client = app.redis()
    catalog = app.optional_catalog
    server = make_metrics_server(client, app.settings, host, port, list(catalog.sources.values()) if catalog else [])
    click.echo(f"metrics at http://{host}:{port}/metrics, status page at http://{host}:{port}/", err=True)
    serve_until_stopped(server)
