"""Long-running servers: the mock source and the metrics endpoint."""

from __future__ import annotations

import signal
from types import FrameType

import click

from ..core.connections import connect_redis
from ..ops.metrics_server import serve
from ..testing.mock_faults import FaultConfig, FaultInjector
from ..testing.mock_sources import ROUTES, MockConfig, MockServer
from .app import App


def stop_on_sigterm() -> None:
    """Make SIGTERM (from a process manager) end the server like Ctrl+C: cleanly, exit status 0."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@click.command("mock-sources")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--records", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Records served by each feed.")
@click.option("--invalid-every", type=click.IntRange(min=0), default=97, show_default=True,
              help="Break every Nth product (0: none), to exercise rejections.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds added to every page.")
@click.option("--faults", "fault_spec", default="", metavar="NAME=VALUE,...",
              help="Fault rates per page, e.g. error=0.2,throttle=0.1,malformed=0.05 "
                   "(also drop, wrong_type, oversize, latency, retry_after, oversize_bytes, seed).")
@click.option("--cache-mb", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep served JSON pages up to this many MiB, so a page asked again costs no CPU (benchmarks).")
def mock_sources(host: str, port: int, records: int, invalid_every: int, latency: float, fault_spec: str,
                 cache_mb: int) -> None:
    """Serve the deterministic mock feeds of the five domains on HOST:PORT until interrupted."""
    try:
        faults = FaultInjector(FaultConfig.parse(fault_spec))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    server = MockServer(host, port, MockConfig(records=records, invalid_every=invalid_every, latency=latency,
                                               cache_bytes=cache_mb * 2**20), faults)
    click.echo(f"serving {records} records per feed at {server.url}: {', '.join([*ROUTES, '/sensors.csv'])}",
               err=True)
    stop_on_sigterm()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("metrics-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9108, show_default=True)
@click.pass_obj
def metrics_server(app: App, host: str, port: int) -> None:
    """Serve /metrics (Prometheus) and /healthz (Redis, PostgreSQL, workers)."""
    client = connect_redis(app.settings.redis_url)
    click.echo(f"metrics at http://{host}:{port}/metrics", err=True)
    stop_on_sigterm()
    try:
        catalog = app.optional_catalog
        serve(client, app.settings, host, port, list(catalog.sources.values()) if catalog else [])
    except KeyboardInterrupt:
        pass
