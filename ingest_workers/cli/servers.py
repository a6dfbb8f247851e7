"""Long-running servers: the mock source, the fixture APIs and the metrics endpoint."""

from __future__ import annotations

import signal
import socketserver
import threading
from types import FrameType

import click

from ..ops.metrics_server import make_metrics_server
from ..testing.fixture_apis import FaultShares, FixtureApiConfig, FixtureApiServer
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


@click.command("fixture-api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True, help="0: any free port.")
@click.option("--issues", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--products", type=click.IntRange(min=0), default=40, show_default=True)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds per child request (comments page, product detail).")
@click.option("--error-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of paths answering 500 on their first request.")
@click.option("--throttle-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of paths answering 429 on their first request.")
@click.option("--retry-after", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--revision", type=click.IntRange(min=1), default=1, show_default=True,
              help="The revision served first (POST /_revision?revision=N changes it).")
def fixture_api(host: str, port: int, issues: int, products: int, latency: float, error_share: float,
                throttle_share: float, retry_after: int, revision: int) -> None:
    """Serve the GitHub-like and shop-like fixture APIs (fan-out, nested lists); print the URL."""
    try:
        faults = FaultShares(error=error_share, throttle=throttle_share, retry_after=retry_after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--error-share/--throttle-share") from None
    config = FixtureApiConfig(issues=issues, products=products, latency=latency, faults=faults)
    server = FixtureApiServer(config, host, port, revision)
    click.echo(server.url)  # on stdout, for scripts started with --port 0
    click.echo(f"{issues} issues at /repos/acme/widgets/issues, {products} products at /products", err=True)
    serve_until_stopped(server)


@click.command("metrics-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9108, show_default=True)
@click.pass_obj
def metrics_server(app: App, host: str, port: int) -> None:
    """Serve /metrics (Prometheus), /healthz (Redis, PostgreSQL, workers) and the operator's console:
    / (every source), /sources/NAME (a source's runs, rejects and cursor), /workers (workers and
    queues), each also as JSON under /status (/status is `ingest status --json`). Read-only."""
    client = app.redis()
    catalog = app.optional_catalog
    server = make_metrics_server(client, app.settings, host, port, list(catalog.sources.values()) if catalog else [],
                                 app.env)
    click.echo(f"metrics at http://{host}:{port}/metrics, status page at http://{host}:{port}/", err=True)
    serve_until_stopped(server)
