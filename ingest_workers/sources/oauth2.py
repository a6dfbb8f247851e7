"""OAuth2 authenticators: the client credentials grant (RFC 6749 4.4) and the refresh token grant (6).

    auth = { kind = "oauth2_client_credentials", token_url = "...", client_id_env = "X",
             client_secret_env = "Y", scope = "...", audience = "...", client_auth = "basic" | "body" }
    auth = { kind = "oauth2_refresh_token", ..., refresh_token_env = "Z" }

The token endpoint is asked with a form-encoded POST through the source's HTTP client (timeouts,
429 and 5xx retried with its back-off; no redirect followed, so the client secret and the refresh
token go to ``token_url`` only). The client authenticates with HTTP Basic (RFC 6749 2.3.1, the
default) or in the form (``client_auth = "body"``). The access token goes only where the source's
requests go (its own origin: other origins are refused by :mod:`.http_json` and :mod:`.http`).

**Where the token lives.** In the authenticator, so in the job's process only: never in Redis, the
job, a log line or an error (its value is hidden from this process's messages). It is used until
shortly before ``expires_in`` runs out (a margin of ``min(60 s, 10 %)``: a token living 10 s is
renewed after 9 s, one living an hour after 59 min), and renewed once when the API answers 401.
So a job makes one token request, plus one per expiry during the job and one per 401; a forking
worker runs each job in a child process of its own, so a run makes one token request per job
(never one per page). Fetch threads of one job share the token (a lock keeps them to one request).

A refused grant (``invalid_client``, ``invalid_grant``, ...) fails the job with one sentence naming
the token URL and the variables to check, never a value. A rotated refresh token (a new one in the
answer) is kept for the rest of the job only: the worker cannot write its environment.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from ..core import redact
from ..core.errors import PermanentError
from .auth import ApiRequest, AuthContext
from .http import make_session, safe_url

MARGIN_SECONDS = 60.0  # renew at most this long before expiry ...
MARGIN_SHARE = 0.1  # ... and at most this share of the token's life before it
CLIENT_AUTH = ("basic", "body")
_ERROR_CODE = re.compile(r"[a-z_]{1,60}")


def renewal_margin(expires_in: float) -> float:
    """How long before its expiry a token living ``expires_in`` seconds is renewed."""
    return min(MARGIN_SECONDS, MARGIN_SHARE * expires_in)


class OAuth2ClientCredentials:
    """An access token from the client credentials grant, sent as ``Authorization: Bearer``."""

    grant_type = "client_credentials"

    def __init__(self, context: AuthContext, token_url: str, client_id_env: str, client_secret_env: str,
                 scope: str | None = None, audience: str | None = None, client_auth: str = "basic",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._context, self._token_url = context, token_url
        self._id_env, self._secret_env = client_id_env, client_secret_env
        self._extra = {k: v for k, v in (("scope", scope), ("audience", audience)) if v}
        self._client_auth = client_auth
        self._clock = clock
        self._client = context.client.with_session(make_session())  # token requests: a session of their own
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.token_requests = 0  # made by this authenticator (this job)
        self._variables()  # a missing variable fails the job before its first request

    def authorize(self, request: ApiRequest) -> ApiRequest:
        return request.adding(headers={"Authorization": f"Bearer {self._current()}"})

    def renew(self, rejected: ApiRequest) -> bool:
        """A 401: the token is dropped (unless another thread renewed it already) and the request repeated."""
        with self._lock:
            if rejected.headers.get("Authorization") == f"Bearer {self._token}":
                self._token = None
        return True

    def _current(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, expires_in = self._request_token()
                lifetime = math.inf if expires_in is None else expires_in - renewal_margin(expires_in)
                self._renew_at = self._clock() + lifetime
            return self._token

    def _variables(self) -> dict[str, str]:
        return {"client_id": self._context.secret(self._id_env, "auth.client_id_env"),
                "client_secret": self._context.secret(self._secret_env, "auth.client_secret_env")}

    def _grant(self) -> dict[str, str]:
        """The grant's own fields of the form."""
        return {"grant_type": self.grant_type}

    def _checked_variables(self) -> str:
        return f"{self._id_env} and {self._secret_env}"

    def _request_token(self) -> tuple[str, float | None]:
        client = self._variables()
        form, headers = {**self._grant(), **self._extra}, {"Accept": "application/json"}
        if self._client_auth == "body":
            form.update(client)
        else:  # RFC 6749 2.3.1: each form-encoded, then joined by ':'
            pair = f"{quote(client['client_id'], safe='')}:{quote(client['client_secret'], safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        self.token_requests += 1
        status, body = self._client.post_form(self._token_url, form, headers)
        if status >= 400 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise PermanentError(self._refusal(status, body))
        token = body["access_token"]
        _hide({"OAUTH2_ACCESS_TOKEN": token})
        if isinstance(body.get("refresh_token"), str):
            self._rotated(body["refresh_token"])
        expires_in = body.get("expires_in")
        valid = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0
        return token, float(expires_in) if valid else None

    def _rotated(self, refresh_token: str) -> None:
        """The endpoint sent a new refresh token (only the refresh token grant uses it)."""

    def _refusal(self, status: int, body: object) -> str:
        """One sentence naming the token URL, what the endpoint said and the variables to check."""
        code = body.get("error") if isinstance(body, dict) else None
        said = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else f"HTTP {status}"
        if status < 400:
            said = "no access_token in the answer"
        return (f"source {self._context.source}: the token endpoint {safe_url(self._token_url)} refused the "
                f"{self.grant_type} grant ({said}); check {self._checked_variables()}")


class OAuth2RefreshToken(OAuth2ClientCredentials):
    """An access token from the refresh token grant (``refresh_token_env``)."""

    grant_type = "refresh_token"

    def __init__(self, context: AuthContext, token_url: str, client_id_env: str, client_secret_env: str,
                 refresh_token_env: str, scope: str | None = None, audience: str | None = None,
                 client_auth: str = "basic", clock: Callable[[], float] = time.monotonic) -> None:
        self._refresh_env = refresh_token_env
        self._refresh_token = context.secret(refresh_token_env, "auth.refresh_token_env")
        super().__init__(context, token_url, client_id_env, client_secret_env, scope, audience, client_auth, clock)

    def _grant(self) -> dict[str, str]:
        return {"grant_type": self.grant_type, "refresh_token": self._refresh_token}

    def _checked_variables(self) -> str:
        return f"{self._id_env}, {self._secret_env} and {self._refresh_env}"

    def _rotated(self, refresh_token: str) -> None:
        _hide({self._refresh_env: refresh_token})
        self._refresh_token = refresh_token


def _hide(values: dict[str, str]) -> None:
    """Hide a token from the running job's messages (outside a job, e.g. ``ingest catalog draft``,
    no message quotes it and there is no redactor to tell)."""
    redactor = redact.active()
    if redactor is not None:
        redactor.hide(values)
