"""An OAuth2 token endpoint and an API it guards, on two origins (two real local HTTP servers).

The token endpoint (``POST /oauth/token``, form-encoded) grants ``client_credentials`` and
``refresh_token`` (RFC 6749 4.4 and 6), authenticating the client by HTTP Basic or in the form. It
issues short-lived tokens (``lifetime`` seconds), counts its requests, can fail the next ones with
5xx, and rotates refresh tokens when asked. The API (``GET /v3/contacts?page=N&per_page=M``, or ``offset=K``) serves
:func:`contact` records only to a ``Bearer`` token the endpoint issued and that has not expired or
been revoked; anything else is a 401, counted. Both servers record every request they receive, so a
test can show a secret went only where it belongs.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers import answer

CLIENT_ID, CLIENT_SECRET = "crm-client-7c1e", "planted-client-secret-93ab"
REFRESH_TOKEN = "planted-refresh-token-5e07"
SCOPE = "contacts.read"


def contact(index: int) -> dict[str, Any]:
    return {"id": index + 1, "userId": index % 7, "title": f"contact {index}", "body": f"b{index}"}


@dataclass
class OAuthState:
    contacts: int = 45
    lifetime: float = 3600.0  # expires_in of each token, and when the API stops taking it
    page_delay: float = 0.0  # seconds the API takes per page
    fail_next_token_requests: int = 0  # answer these with 503
    rotate_refresh_token: bool = False
    issued: dict[str, float] = field(default_factory=dict)  # token -> when it expires (monotonic)
    refresh_token: str = REFRESH_TOKEN
    token_requests: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)  # (headers, form)
    api_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers)
    unauthorized: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke_all(self) -> None:
        with self.lock:
            self.issued.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: OAuthState, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Token(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        state = self.server.state
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
        with state.lock:
            state.token_requests.append((dict(self.headers), form))
            if state.fail_next_token_requests:
                state.fail_next_token_requests -= 1
                return _json(self, 503, {"error": "temporarily_unavailable"})
            client = _client(self.headers.get("Authorization", ""), form)
            if client != (CLIENT_ID, CLIENT_SECRET):
                return _json(self, 401, {"error": "invalid_client", "error_description": "bad client"})
            grant = form.get("grant_type")
            if grant == "refresh_token" and form.get("refresh_token") != state.refresh_token:
                return _json(self, 400, {"error": "invalid_grant", "error_description": "refresh token unknown"})
            if grant not in ("client_credentials", "refresh_token"):
                return _json(self, 400, {"error": "unsupported_grant_type"})
            token = f"access-{len(state.token_requests)}-{time.monotonic_ns()}"
            state.issued[token] = time.monotonic() + state.lifetime
            body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": state.lifetime}
            if grant == "refresh_token" and state.rotate_refresh_token:
                state.refresh_token = body["refresh_token"] = f"planted-rotated-{len(state.token_requests)}"
        _json(self, 200, body)

    def log_message(self, *args: object) -> None:
        pass


class _Api(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state
        state.api_requests.append((self.path, dict(self.headers)))
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with state.lock:
            valid = state.issued.get(token, 0) > time.monotonic()
            state.unauthorized += not valid
        if not valid:
            return _json(self, 401, {"error": "invalid_token"})
        time.sleep(state.page_delay)
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        size = int(query.get("per_page", 10))
        start = int(query["offset"]) if "offset" in query else (int(query.get("page", 1)) - 1) * size
        items = [contact(i) for i in range(start, min(start + size, state.contacts))]
        _json(self, 200, {"items": items})

    def log_message(self, *args: object) -> None:
        pass


def _client(authorization: str, form: dict[str, str]) -> tuple[str, str] | None:
    if authorization.startswith("Basic "):
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return unquote(user), unquote(password)
    if "client_id" in form:
        return form["client_id"], form.get("client_secret", "")
    return None


def _json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    answer(handler, status, {"Content-Type": "application/json"}, json.dumps(body).encode())


class OAuthFixture:
    """Both servers, started; ``token_url`` and ``api_url`` are on different ports (origins)."""

    def __init__(self, state: OAuthState | None = None) -> None:
        self.state = state or OAuthState()
        self.token_server = _Server(self.state, _Token)
        self.api_server = _Server(self.state, _Api)
        self.token_url = f"{self.token_server.url}/oauth/token"
        self.api_url = f"{self.api_server.url}/v3/contacts"
        for server in (self.token_server, self.api_server):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.token_server, self.api_server):
            server.shutdown()
            server.server_close()
