"""The ``ingest`` group: global flags, the settings built from them once, and one-line errors."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import click
import psycopg2.extensions
import redis
from click.core import ParameterSource

from .. import __version__
from ..catalog import Catalog, load_catalog
from ..core.config import ENV_VARS, Settings, load_settings
from ..core.errors import IngestError
from ..ops.logs import LOG_FORMATS, configure_logging
from ..ops.readiness import wait_for_postgres, wait_for_redis


@dataclass
class App:
    """What the subcommands share: the flags of the group, turned into settings on first use."""

    flags: dict[str, Any]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @cached_property
    def optional_catalog(self) -> Catalog | None:
        """The catalog named by --catalog or INGEST_CATALOG; None when neither names one."""
        path = self.flags.get("catalog_path") or self.env.get(ENV_VARS["catalog_path"])
        return load_catalog(Path(path), self.env) if path else None

    @property
    def catalog(self) -> Catalog:
        """The catalog, for commands that cannot run without one."""
        if self.optional_catalog is None:
            raise NoCatalog("no catalog: pass --catalog FILE or set INGEST_CATALOG to your catalog "
                            "(`ingest demo` runs the packaged demo catalog; the README's \"Running it for real\" "
                            "shows a minimal one)")
        return self.optional_catalog

    @cached_property
    def settings(self) -> Settings:
        """With a catalog and no INGEST_SOURCE_VARS, the workers this process starts (``workers``,
        ``run``, ``demo``) and its inline jobs may read the variables the catalog refers to, and no other."""
        catalog = self.optional_catalog
        if catalog is None:
            return load_settings(self.flags, self.env)
        settings = load_settings(self.flags, self.env, catalog.settings, f"{catalog.path} [settings]")
        if settings.source_vars is None:
            settings = dataclasses.replace(settings, source_vars=",".join(catalog.variables()))
        return settings

    def redis(self) -> redis.Redis:
        """Redis, waited for up to ``service_wait`` seconds (saying so), else one-line error."""
        return wait_for_redis(self.settings, self.settings.service_wait, _say)

    def postgres(self, schema: bool = True) -> psycopg2.extensions.connection:
        """PostgreSQL (with the ingest schema when ``schema``), waited for like :meth:`redis`."""
        return wait_for_postgres(self.settings.database_url, self.settings.service_wait, _say, schema)


def _say(words: str) -> None:
    click.echo(words, err=True)


class EnvOption(click.Option):
    """An option that, when its bad value came from its environment variable, names the variable
    (``environment variable WORKERS``) rather than the flag the user never typed."""

    def get_error_hint(self, ctx: click.Context) -> str:
        if ctx.get_parameter_source(self.name or "") is ParameterSource.ENVIRONMENT and self.envvar:
            return f"environment variable {self.envvar}"
        return super().get_error_hint(ctx)


class NoCatalog(IngestError):
    """A command that needs a catalog was given none: a usage problem (exit status 2)."""


class IsoTime(click.ParamType):
    """An ISO 8601 time (``2026-01-01``, ``2026-01-01T06:00:00Z``); UTC when it names no zone."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2026-01-01T00:00:00Z", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Duration(click.ParamType):
    """A length of time: a number and a unit, ``s``, ``m``, ``h`` or ``d`` (``30m``, ``1d``)."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        if len(text) >= 2 and text[-1] in self._UNITS and text[:-1].isdigit() and int(text[:-1]) > 0:
            return timedelta(seconds=int(text[:-1]) * self._UNITS[text[-1]])
        self.fail(f"{value!r} is not a duration such as 30m, 6h or 1d", param, ctx)


class IngestGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IngestError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2 if isinstance(exc, NoCatalog) else 1)


@click.group(cls=IngestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Source catalog (TOML); enqueue, run and schedule need one. [env: INGEST_CATALOG]")
@click.option("--redis-url", help="Redis holding the queue, dedup sets and metrics (through Sentinel, with "
              "REDIS_SENTINELS and REDIS_SENTINEL_MASTER set: only its password and database). [env: REDIS_URL]")
@click.option("--database-url", help="PostgreSQL the records load into. [env: DATABASE_URL]")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", type=click.Choice(LOG_FORMATS), envvar="INGEST_LOG_FORMAT", cls=EnvOption,
              help="'text' (default), or 'json': one object per line with source, run id and job id; "
                   "workers started by `ingest run`/`demo` use it too. [env: INGEST_LOG_FORMAT]")
@click.pass_context
def main(ctx: click.Context, catalog_path: Path | None, redis_url: str | None, database_url: str | None,
         log_level: str, log_format: str | None) -> None:
    """Ingest sources through RQ workers into PostgreSQL, exactly once.

    Typical use: `ingest db migrate`, start workers with `ingest workers --count N`
    (plain `rq worker` processes), then `ingest enqueue --sources all`. `ingest demo`
    does all of it on one machine.
    """
    configure_logging(log_level, log_format or "text")
    ctx.obj = App({"catalog_path": catalog_path, "redis_url": redis_url, "database_url": database_url,
                   "log_format": log_format})
