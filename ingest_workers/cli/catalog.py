"""``ingest catalog``: help with writing the catalog."""

from __future__ import annotations

import os

import click

from ..catalog import NAME_PATTERN
from ..core.errors import ConfigError
from ..core.models import SourceSpec
from ..datasets import dataset_of
from ..datasets.catalog_diff import catalog_diff
from ..sources.auth import ApiRequest, AuthContext
from ..sources.auth_kinds import make_authenticator
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
@click.option("--oauth2-client-credentials", "client_credentials_url", metavar="TOKEN_URL",
              help="Get an OAuth2 access token from TOKEN_URL with the client credentials grant "
                   "(with --client-id-env and --client-secret-env).")
@click.option("--oauth2-refresh-token", "refresh_token_url", metavar="TOKEN_URL",
              help="Get an OAuth2 access token from TOKEN_URL with the refresh token grant "
                   "(with --client-id-env, --client-secret-env and --refresh-token-env).")
@click.option("--client-id-env", metavar="VAR", help="OAuth2: the variable holding the client id.")
@click.option("--client-secret-env", metavar="VAR", help="OAuth2: the variable holding the client secret.")
@click.option("--refresh-token-env", metavar="VAR", help="OAuth2: the variable holding the refresh token.")
@click.option("--scope", help="OAuth2: the scope to ask for.")
@click.option("--audience", help="OAuth2: the audience to ask for.")
@click.option("--client-auth", type=click.Choice(["basic", "body"]), default="basic", show_default=True,
              help="OAuth2: send the client's id and secret as HTTP Basic (RFC 6749 2.3.1) or in the form.")
@click.pass_obj
def catalog_draft(app: App, url: str, name: str | None, records_path: str | None, **options: str | None) -> None:
    """Print a catalog fragment (a dataset and a source) for the JSON API or CSV file at URL.

    It fetches the first page, finds the records and how the API pages (Link header, a next
    URL, a cursor token, page or offset numbers, has_more), fetches the second page, and
    types each column from the values seen; a list of objects in the records becomes a nested
    dataset (nested_in). Requests are retried as the workers retry them (INGEST_HTTP_MAX_ATTEMPTS).
    Read it, edit it, append it to your catalog.
    """
    auth = _auth_table(options)
    name = name or default_name(url)
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"--name: {name!r} is not a name: lowercase letters, digits and '_', starting with a letter")
    settings = app.settings  # the workers' retry policy: an API's passing 500 or 429 must not stop the draft
    client = HttpClient(make_session(), (settings.http_connect_timeout, settings.http_read_timeout),
                        RetryPolicy(max_attempts=settings.http_max_attempts, max_backoff=settings.http_max_backoff))
    request = ApiRequest(url)
    if auth:  # the same authenticator a worker builds from the drafted entry
        spec = SourceSpec(name=name, kind="http_json", dataset=name, url=url, auth=auth)
        request = make_authenticator(spec, AuthContext(name, os.environ, client)).authorize(request)
    shape = ApiProbe(client, url, records_path, dict(request.headers), dict(request.params)).shape()
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
    client = HttpClient(make_session(), (5.0, 30.0), RetryPolicy(max_attempts=2, max_backoff=5.0))
    request = ApiRequest(spec.url, dict(spec.params), dict(spec.headers))
    if spec.auth or spec.auth_env:  # the same authenticator a worker builds
        request = make_authenticator(spec, AuthContext(spec.name, os.environ, client)).authorize(request)
    records = client.get_json(request.url, request.params, request.headers)
    for part in spec.records_path.split(".") if spec.records_path else ():
        records = records.get(part) if isinstance(records, dict) else None
    if not isinstance(records, list):
        raise ConfigError(f"source {spec.name}: the page has no list of records at {spec.records_path!r}")
    lines = catalog_diff(dataset_of(spec.dataset, spec.declaration), spec.fields, spec.constants, records)
    click.echo("\n".join(lines) if lines else f"source {spec.name}: the page's {len(records)} records and the "
               "declaration agree")


def _auth_table(options: dict[str, str | None]) -> dict[str, str] | None:
    """The ``auth`` table the options describe (variables checked to be set), or None."""
    if options["token_env"]:
        _secret(options["token_env"], "--token-env")
        return {"kind": "bearer", "token_env": options["token_env"]}
    if options["basic_env"]:
        user_env, _, password_env = options["basic_env"].partition(",")
        _secret(user_env, "--basic-env"), _secret(password_env, "--basic-env")
        return {"kind": "basic", "username_env": user_env, "password_env": password_env}
    if options["api_key_env"]:
        key_name, _, variable = options["api_key_env"].partition("=")
        if not key_name or not variable:
            raise ConfigError(f"--api-key-env: expected NAME=VAR (e.g. api_key=EVENTS_KEY), "
                              f"got {options['api_key_env']!r}")
        _secret(variable, "--api-key-env")
        return {"kind": "api_key", "name": key_name, "location": options["api_key_in"] or "header",
                "value_env": variable}
    token_url = options["client_credentials_url"] or options["refresh_token_url"]
    if not token_url:
        return None
    grant = "client_credentials" if options["client_credentials_url"] else "refresh_token"
    needed = ["client_id_env", "client_secret_env"] + (["refresh_token_env"] if grant == "refresh_token" else [])
    auth = {"kind": f"oauth2_{grant}", "token_url": token_url}
    for key in needed:
        variable = options[key] or ""
        _secret(variable, f"--{key.replace('_', '-')}")
        auth[key] = variable
    auth.update({key: options[key] or "" for key in ("scope", "audience") if options[key]})
    if options["client_auth"] != "basic":
        auth["client_auth"] = options["client_auth"] or "basic"
    return auth


def _secret(variable: str, option: str) -> str:
    value = os.environ.get(variable) if variable else None
    if not value:
        raise ConfigError(f"{option}: environment variable {variable or '(none named)'} is not set")
    return value
