"""How a source proves who it is: the catalog's ``auth`` table (or the older ``auth_env``).

The catalog entry names only environment variables, never a secret: it travels in the RQ
job through Redis. The secret is read from the worker's environment each time a request
is made, so a rotated variable is used by the next request of a new worker process and a
secret never sits in the job, in Redis or in a message.

    auth = { kind = "bearer", token_env = "X" }                      Authorization: Bearer $X
    auth = { kind = "basic", username_env = "U", password_env = "P" } Authorization: Basic b64(U:P)
    auth = { kind = "api_key", name = "api_key", location = "query" | "header", value_env = "X" }
    auth_env = "X", auth_header = "Authorization"                    auth_header: $X, as given
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError
from ..core.models import SourceSpec

AUTH_KINDS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required keys, optional keys)
    "bearer": ({"token_env"}, set()),
    "basic": ({"username_env", "password_env"}, set()),
    "api_key": ({"name", "value_env"}, {"location"}),
}
API_KEY_LOCATIONS = ("header", "query")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_auth(where: str, auth: Any, spec_values: Mapping[str, Any]) -> None:
    """Refuse an ``auth`` table that names no kind, a wrong key, or holds a secret itself."""
    if not isinstance(auth, dict):
        raise ConfigError(f"{where} key 'auth': expected a table such as "
                          '{ kind = "bearer", token_env = "API_TOKEN" }')
    if spec_values.get("auth_env"):
        raise ConfigError(f"{where}: give either 'auth' or 'auth_env', not both")
    kind = auth.get("kind")
    if kind not in AUTH_KINDS:
        raise ConfigError(f"{where} key 'auth.kind': expected one of {', '.join(AUTH_KINDS)}, got {kind!r}")
    required, optional = AUTH_KINDS[kind]
    for key in sorted(set(auth) - required - optional - {"kind"}):
        hint = (f"; name the environment variable holding it with {key}_env" if f"{key}_env" in required
                else f"; known keys for {kind}: {', '.join(sorted(required | optional))}")
        raise ConfigError(f"{where} key 'auth.{key}': not a key of auth kind {kind!r}{hint}")
    for key in sorted(required - set(auth)):
        raise ConfigError(f"{where}: auth kind {kind!r} needs 'auth.{key}'")
    for key in sorted(k for k in auth if k.endswith("_env")):
        if not isinstance(auth[key], str) or not _ENV_NAME.fullmatch(auth[key]):
            raise ConfigError(f"{where} key 'auth.{key}': expected the name of an environment variable, "
                              f"got {auth[key]!r}")
    if kind == "api_key":
        if not isinstance(auth["name"], str) or not auth["name"]:
            raise ConfigError(f"{where} key 'auth.name': expected the header or query parameter name")
        if auth.get("location", "header") not in API_KEY_LOCATIONS:
            raise ConfigError(f"{where} key 'auth.location': expected one of {', '.join(API_KEY_LOCATIONS)}, "
                              f"got {auth['location']!r}")


@dataclass(frozen=True)
class Credentials:
    """What one request adds: headers and query parameters (both hold the secret: never log them)."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


class RequestAuth:
    """Builds a source's credentials from the worker's environment, per request."""

    def __init__(self, spec: SourceSpec, env: Mapping[str, str]) -> None:
        self._spec = spec
        self._env = env
        self.credentials()  # a missing variable fails the job before its first request

    def credentials(self) -> Credentials:
        spec, auth = self._spec, self._spec.auth
        if not auth:
            if not spec.auth_env:
                return Credentials()
            return Credentials(headers={spec.auth_header: self._secret(spec.auth_env, "auth_env")})
        kind = auth["kind"]
        if kind == "bearer":
            return Credentials(headers={"Authorization": f"Bearer {self._secret(auth['token_env'], 'auth.token_env')}"})
        if kind == "basic":
            pair = (f"{self._secret(auth['username_env'], 'auth.username_env')}:"
                    f"{self._secret(auth['password_env'], 'auth.password_env')}")
            return Credentials(headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()})
        value = self._secret(auth["value_env"], "auth.value_env")
        if auth.get("location", "header") == "query":
            return Credentials(params={auth["name"]: value})
        return Credentials(headers={auth["name"]: value})

    def _secret(self, variable: str, key: str) -> str:
        value = self._env.get(variable)
        if not value:
            raise ConfigError(f"source {self._spec.name}: environment variable {variable} ({key}) is not set "
                              "on this worker")
        return value
