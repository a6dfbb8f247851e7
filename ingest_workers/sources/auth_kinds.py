"""The auth kinds the catalog names, checked in the catalog and built for a job.

A built-in kind (:data:`AUTH_KINDS`) or a plugin ``package.module:Class`` (allowed by
``INGEST_PLUGINS`` like every plugin) implementing :class:`.auth.Authenticator`; either is built as
``Kind(context, **keys)`` with the ``auth`` table's keys but ``kind``. Keys ending in ``_env`` name
environment variables; the catalog refuses a built-in kind's unknown keys and a secret written in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.errors import ConfigError, Refused
from ..core.models import SourceSpec
from ..core.plugins import PluginAllowlist, resolve
from .auth import ApiKeyAuth, AuthContext, Authenticator, BasicAuth, BearerAuth, HeaderAuth, NoAuth
from .oauth2 import CLIENT_AUTH, OAuth2ClientCredentials, OAuth2RefreshToken

_OAUTH2 = ({"token_url", "client_id_env", "client_secret_env"}, {"scope", "audience", "client_auth"})
# kind -> (class, required keys, optional keys)
AUTH_KINDS: dict[str, tuple[type, set[str], set[str]]] = {
    "bearer": (BearerAuth, {"token_env"}, set()),
    "basic": (BasicAuth, {"username_env", "password_env"}, set()),
    "api_key": (ApiKeyAuth, {"name", "value_env"}, {"location"}),
    "oauth2_client_credentials": (OAuth2ClientCredentials, *_OAUTH2),
    "oauth2_refresh_token": (OAuth2RefreshToken, _OAUTH2[0] | {"refresh_token_env"}, _OAUTH2[1]),
}
API_KEY_LOCATIONS = ("header", "query")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def authenticator_class(kind: str, allow: PluginAllowlist | None = None) -> Any:
    """The class of a built-in auth kind or of a plugin ``package.module:Class``; ConfigError otherwise.
    ``allow``: the plugin allowlist a name from a job is checked against before anything is imported."""
    return resolve(kind, {name: entry[0] for name, entry in AUTH_KINDS.items()}, "auth kind", allow)


def make_authenticator(spec: SourceSpec, context: AuthContext) -> Authenticator:
    """The authenticator of ``spec`` (its ``auth`` table, the older ``auth_env``, or none)."""
    if not spec.auth:
        return HeaderAuth(context, spec.auth_header, spec.auth_env) if spec.auth_env else NoAuth()
    keys = {key: value for key, value in spec.auth.items() if key != "kind"}
    try:
        authenticator = authenticator_class(spec.auth["kind"])(context, **keys)
    except TypeError as exc:  # a plugin's keys do not fit its constructor
        raise ConfigError(f"source {spec.name}: auth kind {spec.auth['kind']!r}: {exc}") from None
    if not isinstance(authenticator, Authenticator):
        raise ConfigError(f"source {spec.name}: auth kind {spec.auth['kind']!r} has no authorize(request) method")
    return authenticator


def check_auth(where: str, auth: Any, spec_values: Mapping[str, Any], allow: PluginAllowlist | None = None) -> None:
    """Refuse an ``auth`` table that names no kind, a wrong key, or holds a secret itself; ``allow``:
    see :func:`authenticator_class`."""
    if not isinstance(auth, dict):
        raise ConfigError(f"{where} key 'auth': expected a table such as "
                          '{ kind = "bearer", token_env = "API_TOKEN" }')
    if spec_values.get("auth_env"):
        raise ConfigError(f"{where}: give either 'auth' or 'auth_env', not both")
    kind = auth.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{where} key 'auth.kind': expected one of {', '.join(AUTH_KINDS)} or "
                          f"'package.module:Class', got {kind!r}")
    for key in sorted(k for k in auth if k.endswith("_env")):
        if not isinstance(auth[key], str) or not _ENV_NAME.fullmatch(auth[key]):
            raise ConfigError(f"{where} key 'auth.{key}': expected the name of an environment variable, "
                              f"got {auth[key]!r}")
    try:
        cls = authenticator_class(kind, allow)
    except (ConfigError, Refused) as exc:
        raise type(exc)(f"{where} key 'auth.kind': {exc}") from None
    if kind not in AUTH_KINDS:
        if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
            raise ConfigError(f"{where} key 'auth.kind': {kind} has no authorize(request) method")
        return
    _check_builtin_keys(where, kind, auth)


def _check_builtin_keys(where: str, kind: str, auth: dict[str, Any]) -> None:
    _, required, optional = AUTH_KINDS[kind]
    for key in sorted(set(auth) - required - optional - {"kind"}):
        hint = (f"; name the environment variable holding it with {key}_env" if f"{key}_env" in required
                else f"; known keys for {kind}: {', '.join(sorted(required | optional))}")
        raise ConfigError(f"{where} key 'auth.{key}': not a key of auth kind {kind!r}{hint}")
    for key in sorted(required - set(auth)):
        raise ConfigError(f"{where}: auth kind {kind!r} needs 'auth.{key}'")
    for key in sorted((required | optional) - {"kind"} & set(auth)):
        if not isinstance(auth[key], str) or not auth[key]:
            raise ConfigError(f"{where} key 'auth.{key}': expected text, got {auth[key]!r}")
    if kind == "api_key" and auth.get("location", "header") not in API_KEY_LOCATIONS:
        raise ConfigError(f"{where} key 'auth.location': expected one of {', '.join(API_KEY_LOCATIONS)}, "
                          f"got {auth['location']!r}")
    if "token_url" in auth and not auth["token_url"].startswith(("http://", "https://", "${")):
        raise ConfigError(f"{where} key 'auth.token_url': expected an http(s) URL, got {auth['token_url']!r}")
    if auth.get("client_auth", "basic") not in CLIENT_AUTH:
        raise ConfigError(f"{where} key 'auth.client_auth': expected one of {', '.join(CLIENT_AUTH)}, "
                          f"got {auth['client_auth']!r}")
