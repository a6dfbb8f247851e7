"""How a source proves who it is: the :class:`Authenticator` protocol and the static kinds.

An authenticator is given each request about to be sent (:class:`ApiRequest`) and returns it with
what it needs added (a header, a query parameter, a signature). One that can renew its
credentials (an OAuth2 token) also implements :class:`RenewsCredentials`: told once of a 401, it
says whether the request may be repeated. The catalog's ``auth`` table names the kind (built in, or
a plugin ``package.module:Class`` allowed by ``INGEST_PLUGINS``) and its keys; a kind is built as
``Kind(context, **keys)`` (:mod:`.auth_kinds`).

The catalog entry names only environment variables, never a secret: it travels in the RQ job
through Redis. The built-in static kinds read the secret from the worker's environment for each
request, so a rotated variable is used by the next request of a new worker process and a secret
never sits in the job, in Redis or in a message.

    auth = { kind = "bearer", token_env = "X" }                      Authorization: Bearer $X
    auth = { kind = "basic", username_env = "U", password_env = "P" } Authorization: Basic b64(U:P)
    auth = { kind = "api_key", name = "api_key", location = "query" | "header", value_env = "X" }
    auth_env = "X", auth_header = "Authorization"                    auth_header: $X, as given
    auth = { kind = "oauth2_client_credentials" | "oauth2_refresh_token", ... }   :mod:`.oauth2`
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..core.errors import ConfigError
from .http import HttpClient


@dataclass(frozen=True)
class ApiRequest:
    """A request about to be sent: its URL, query parameters and headers (they may hold secrets once an
    authenticator has seen them: never log them), its method and its JSON body (None: no body)."""

    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"
    body: Any = None

    def adding(self, headers: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None) -> ApiRequest:
        """This request with ``headers`` and ``params`` added (replacing any of the same name)."""
        return ApiRequest(self.url, {**self.params, **(params or {})}, {**self.headers, **(headers or {})},
                          self.method, self.body)


@runtime_checkable
class Authenticator(Protocol):
    """Adds a source's credentials to each request."""

    def authorize(self, request: ApiRequest) -> ApiRequest:
        """``request`` with the credentials added. May raise :class:`ConfigError` (a variable unset)
        or :class:`PermanentError` (credentials refused where they are obtained)."""
        ...


@runtime_checkable
class RenewsCredentials(Protocol):
    """An authenticator whose credentials can be renewed when the API refuses them."""

    def renew(self, rejected: ApiRequest) -> bool:
        """Told that the API answered 401 to ``rejected`` (as this authenticator authorized it):
        True when the request, authorized again, may pass; it is repeated once."""
        ...


@dataclass(frozen=True)
class AuthContext:
    """What an authenticator is built with besides its ``auth`` keys: the source's name, the
    worker's environment (where ``*_env`` keys are looked up) and an HTTP client with the source's
    retry policy (for a token endpoint)."""

    source: str
    env: Mapping[str, str]
    client: HttpClient

    def secret(self, variable: str, key: str) -> str:
        """The value of ``variable`` (named by the catalog's ``key``); :class:`ConfigError` naming
        both when it is unset or empty on this worker."""
        value = self.env.get(variable)
        if not value:
            raise ConfigError(f"source {self.source}: environment variable {variable} ({key}) is not set "
                              "on this worker")
        return value


class NoAuth:
    """A source without credentials."""

    def authorize(self, request: ApiRequest) -> ApiRequest:
        return request


class HeaderAuth:
    """The older ``auth_env``: one header holding a variable's value as given."""

    def __init__(self, context: AuthContext, header: str, value_env: str) -> None:
        self._context, self._header, self._variable = context, header, value_env
        context.secret(value_env, "auth_env")  # a missing variable fails the job before its first request

    def authorize(self, request: ApiRequest) -> ApiRequest:
        return request.adding(headers={self._header: self._context.secret(self._variable, "auth_env")})


class BearerAuth:
    """``Authorization: Bearer $token_env``."""

    def __init__(self, context: AuthContext, token_env: str) -> None:
        self._context, self._variable = context, token_env
        context.secret(token_env, "auth.token_env")

    def authorize(self, request: ApiRequest) -> ApiRequest:
        token = self._context.secret(self._variable, "auth.token_env")
        return request.adding(headers={"Authorization": f"Bearer {token}"})


class BasicAuth:
    """``Authorization: Basic b64($username_env:$password_env)``."""

    def __init__(self, context: AuthContext, username_env: str, password_env: str) -> None:
        self._context, self._user, self._password = context, username_env, password_env
        self._pair()

    def _pair(self) -> str:
        return (f"{self._context.secret(self._user, 'auth.username_env')}:"
                f"{self._context.secret(self._password, 'auth.password_env')}")

    def authorize(self, request: ApiRequest) -> ApiRequest:
        return request.adding(headers={"Authorization": "Basic " + base64.b64encode(self._pair().encode()).decode()})


class ApiKeyAuth:
    """``$value_env`` in the header or query parameter ``name``."""

    def __init__(self, context: AuthContext, name: str, value_env: str, location: str = "header") -> None:
        self._context, self._name, self._variable, self._location = context, name, value_env, location
        context.secret(value_env, "auth.value_env")

    def authorize(self, request: ApiRequest) -> ApiRequest:
        value = self._context.secret(self._variable, "auth.value_env")
        if self._location == "query":
            return request.adding(params={self._name: value})
        return request.adding(headers={self._name: value})
