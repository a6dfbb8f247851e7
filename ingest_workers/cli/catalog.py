"""``ingest catalog``: help with writing the catalog."""

from __future__ import annotations

import base64
import os

import click

from ..catalog import NAME_PATTERN
from ..core.errors import ConfigError
from ..datasets import dataset_of
from ..datasets.catalog_diff import catalog_diff
from ..sources.auth import RequestAuth
from ..sources.draft import default_name, draft_catalog
from ..sources.http import HttpClient, RetryPolicy, make_session
from ..sources.probe import ApiProbe
from .app import App


@click.group()
def catalog() -> None:
    """Write catalog entries."""


@catalog.command("draft")
@click.argument("url")
@click.option("--name", help="Name of the dataset, its table and the source (default: from the URL's path).")
@click.option("--records-path", help='Dotted path to the records in a page ("" for a top-level list); '
                                     "default: the longest list of objects found.")
@click.option("--token-env", metavar="VAR",
              help="Send `Authorization: Bearer $VAR`; the draft names VAR, never the token.")
@click.option("--basic-env", metavar="USER_VAR,PASSWORD_VAR",
              help="Send HTTP basic auth with the user and password in these variables.")
@click.option("--api-key-env", metavar="NAME=VAR",
              help="Send the api key in VAR as the header or query parameter NAME (see --api-key-in).")
@click.option("--api-key-in", type=click.Choice(["header", "query"]), default="header", show_default=True)
@click.pass_obj
def catalog_draft(app: App, url: str, name: str | None, records_path: str | None, token_env: str | None,
                  basic_env: str | None, api_key_env: str | None, api_key_in: str) -> None:
    """Print a catalog fragment (a dataset and a source) for the JSON API or CSV file at URL.

    It fetches the first page, finds the records and how the API pages (Link header, a next
    URL, a cursor token, page or offset numbers, has_more), fetches the second page, and
    types each column from the values seen; a list of objects in the records becomes a nested
    dataset (nested_in). Requests are retried as the workers retry them (INGEST_HTTP_MAX_ATTEMPTS).
    Read it, edit it, append it to your catalog.
    """
    headers, secret_params, auth = {}, {}, None
    if token_env:
        headers["Authorization"] = f"Bearer {_secret(token_env, '--token-env')}"
        auth = {"kind": "bearer", "token_env": token_env}
    elif basic_env:
        user_env, _, password_env = basic_env.partition(",")
        pair = f"{_secret(user_env, '--basic-env')}:{_secret(password_env, '--basic-env')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        auth = {"kind": "basic", "username_env": user_env, "password_env": password_env}
    elif api_key_env:
        key_name, _, variable = api_key_env.partition("=")
        if not key_name or not variable:
            raise ConfigError(f"--api-key-env: expected NAME=VAR (e.g. api_key=EVENTS_KEY), got {api_key_env!r}")
        (secret_params if api_key_in == "query" else headers)[key_name] = _secret(variable, "--api-key-env")
        auth = {"kind": "api_key", "name": key_name, "location": api_key_in, "value_env": variable}
    name = name or default_name(url)
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"--name: {name!r} is not a name: lowercase letters, digits and '_', starting with a letter")
    settings = app.settings  # the workers' retry policy: an API's passing 500 or 429 must not stop the draft
    client = HttpClient(make_session(), (settings.http_connect_timeout, settings.http_read_timeout),
                        RetryPolicy(max_attempts=settings.http_max_attempts, max_backoff=settings.http_max_backoff))
    shape = ApiProbe(client, url, records_path, headers, secret_params).shape()
    click.echo(draft_catalog(shape, name, auth), nl=False)


@catalog.command("diff")
@click.argument("source")
@click.pass_obj
def catalog_diff_command(app: App, source: str) -> None:
    """Fetch one page of SOURCE and compare its records with the dataset's declaration: the
    column lines to add for fields no column reads, the declared columns the API no longer
    serves, and the columns whose type refuses values served."""
    [spec] = app.catalog.select(source)
    if spec.kind != "http_json":
        raise ConfigError(f"source {spec.name}: ingest catalog diff reads http_json sources, not {spec.kind}")
    credentials = RequestAuth(spec, os.environ).credentials()
    client = HttpClient(make_session(), (5.0, 30.0), RetryPolicy(max_attempts=2, max_backoff=5.0))
    body = client.get_json(spec.url, {**spec.params, **credentials.params}, {**spec.headers, **credentials.headers})
    records = body
    for part in spec.records_path.split(".") if spec.records_path else ():
        records = records.get(part) if isinstance(records, dict) else None
    if not isinstance(records, list):
        raise ConfigError(f"source {spec.name}: the page has no list of records at {spec.records_path!r}")
    lines = catalog_diff(dataset_of(spec.dataset, spec.declaration), spec.fields, spec.constants, records)
    click.echo("\n".join(lines) if lines else f"source {spec.name}: the page's {len(records)} records and the "
               "declaration agree")


def _secret(variable: str, option: str) -> str:
    value = os.environ.get(variable) if variable else None
    if not value:
        raise ConfigError(f"{option}: environment variable {variable or '(none named)'} is not set")
    return value
