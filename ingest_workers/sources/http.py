"""HTTP for sources: one ``requests.Session``, timeouts, and the retry policy.

Transient failures (connection errors, timeouts, 429, 5xx) are retried here with
tenacity: exponential back-off with jitter, bounded in attempts, and never sooner
than the server's ``Retry-After``. A ``Retry-After`` longer than the back-off cap
(``max_backoff``) is honoured, not cut: the request is not tried again in this job but
raises :class:`RetryLater`, which defers the job by that wait through RQ's scheduler.
A 200 whose body holds a value at the source's ``error_path`` is a failed request
(:class:`ApiErrorBody`, retried like any). A 401 is :class:`Unauthorized`. Everything
leaves this module as a :class:`TransientError` or a :class:`PermanentError`. Messages
carry the URL without its query string or password, and never a header value.

Only ``http`` and ``https`` URLs are fetched. Redirects are followed here, not by
requests, and only within the source's origin (scheme, host and port): a redirect to
another origin is refused, so the source's credentials (any auth header, not only
``Authorization``) never reach another host. A decoded page is bounded in values and
nesting (:mod:`.jsonlimits`).

A source's ``on_status`` (``{404: "skip"}``) overrides what a status means, in one place
(:meth:`HttpClient._status_action`): ``skip`` makes the request an empty answer
(``JsonPage.skipped``, no error, nothing retried), ``retry`` a transient failure, ``fail`` a
permanent one.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ..core.errors import ApiErrorBody, PermanentError, RetryLater, TransientError, Unauthorized, UnreadableBody
from ..core.redact import redact
from .json_decode import decode_json
from .jsonlimits import DEFAULT_MAX_NESTING, DEFAULT_MAX_PAGE_VALUES, cut_deeper_than, values_at_most
from .response_rules import parse_retry_after, refuse_error_body


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0


@dataclass(frozen=True)
class JsonPage:
    """One decoded answer: its body, the URL it came from (after redirects; relative links in it
    resolve against this), and its ``Link: <...>; rel="next"`` resolved to an absolute URL."""

    body: Any
    url: str
    next_link: str | None
    skipped: int | None = None  # the status of an answer on_status says to skip (body None, no records)


DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
# A whole 200 answer whose body is unreadable rarely mends on a retry (a cut transfer does, and is
# retried like a dropped connection): two more tries, not max_attempts, before its page is lost;
# counted apart from the request's other failed tries (within max_attempts in all).
UNREADABLE_BODY_ATTEMPTS = 3
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
STATUS_ACTIONS = ("skip", "retry", "fail")  # what a source's on_status may make of a status


class _Skip(Exception):  # noqa: N818 (not an error: an answer on_status says to skip)
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HttpClient:
    """GETs JSON documents, retrying what may pass.

    ``on_response(status_class)`` is called once per answer or failure
    (``"2xx"``, ``"4xx"``, ``"5xx"``, ``"error"``), ``on_retry(error, delay)``
    before each back-off sleep: the caller counts them (metrics, logs).
    """

    def __init__(
        self,
        session: requests.Session,
        timeout: tuple[float, float],
        policy: RetryPolicy,
        on_response: Callable[[str], None] = lambda status_class: None,
        on_retry: Callable[[TransientError, float], None] = lambda error, delay: None,
        sleep: Callable[[float], None] = time.sleep,
        before_attempt: Callable[[], None] = lambda: None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        guard: Callable[[Callable[[], Any]], Any] = lambda request: request(),
        max_nesting: int = DEFAULT_MAX_NESTING,
        max_page_values: int = DEFAULT_MAX_PAGE_VALUES,
        on_status: Mapping[int, str] | None = None,
    ) -> None:
        self._on_status = dict(on_status or {})  # status -> one of STATUS_ACTIONS (the source's on_status)
        self.max_nesting = max_nesting  # levels per record; sources refuse deeper records alone
        self._max_page_values = max_page_values
        self._guard = guard  # runs each whole request (all its tries), e.g. under a circuit breaker
        self._session = session
        self._before_attempt = before_attempt  # e.g. take a token from the source's rate limit
        self._max_body_bytes = max_body_bytes
        self._timeout = timeout
        self._policy = policy
        self._on_response = on_response
        self._on_retry = on_retry
        self._sleep = sleep
        # Exponential from initial_backoff, plus up to initial_backoff of jitter so that
        # many workers retrying one source do not hit it in lockstep.
        self._exponential = (wait_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)
                             + wait_random(0, policy.initial_backoff))

    def get_json(self, url: str, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON body of ``GET url``, after at most ``policy.max_attempts`` tries."""
        return self.get_json_page(url, params, headers)[0]

    def get_json_page(self, url: str, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None) -> tuple[Any, str | None]:
        """The decoded JSON body of ``GET url`` and the URL of its ``Link: <...>; rel="next"``, if any."""
        page = self.get_json_document(url, params, headers)
        return page.body, page.next_link

    def get_json_document(self, url: str, params: Mapping[str, Any] | None = None,
                          headers: Mapping[str, str] | None = None, error_path: str = "",
                          method: str = "GET", body: Any = None) -> JsonPage:
        """:meth:`get_json_page` with the URL the page came from. ``error_path``: a dotted path where a
        body that holds a (truthy) value is a failed request (:class:`ApiErrorBody`). ``method`` POST
        sends ``body`` as JSON (a search endpoint, GraphQL); a retry sends the same body again."""
        retrying = self._retrying()
        return self._guard(lambda: retrying(self._get_once, url, params, headers, error_path, method, body))

    def post_form(self, url: str, form: Mapping[str, str], headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """POST ``form`` (form-encoded) to ``url`` (an OAuth2 token endpoint): ``(status, JSON body or
        None)`` of a 2xx or 4xx answer. Timeouts, 429 and 5xx are retried like a GET; a redirect is
        refused (what is posted goes to ``url`` only). Not under the source's rate limit or breaker."""
        return self._retrying()(self._post_once, url, form, headers)

    def open_stream(self, url: str, params: Mapping[str, Any] | None = None,
                    headers: Mapping[str, str] | None = None) -> requests.Response:
        """A successful ``GET url`` whose body is not read yet (for large files); the caller closes it.

        Opening is retried like :meth:`get_json`; a failure while reading the body is the caller's.
        """
        retrying = self._retrying()
        try:
            return self._guard(lambda: retrying(self._open_once, url, params, headers))
        except _Skip as skip:  # a file is one request: skipping it would load nothing, silently
            raise PermanentError(f"GET {safe_url(url)}: HTTP {skip.status} (on_status skip is for JSON "
                                 "sources)") from None

    def with_session(self, session: requests.Session) -> HttpClient:
        """This client (retries, rate limit, breaker, counters) over another session: one per
        thread when a job fetches pages concurrently (:mod:`.page_fetch`)."""
        twin = copy.copy(self)
        twin._session = session
        return twin

    def _retrying(self) -> Retrying:
        unreadable = [0]  # the unreadable bodies this request was answered with so far
        return Retrying(
            retry=lambda state: self._should_retry(state, unreadable),
            stop=stop_after_attempt(self._policy.max_attempts),
            wait=self._backoff,
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    def _get_once(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                  error_path: str = "", method: str = "GET", body: Any = None) -> JsonPage:
        where = safe_url(url)
        try:
            response = self._open_once(url, params, headers, method, body)
        except _Skip as skip:
            return JsonPage(None, url, None, skipped=skip.status)
        try:
            with response:
                body = self._decode(response, where)
                link = response.links.get("next", {}).get("url")
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self._on_response("error")  # the connection broke while the body was read
            raise TransientError(f"{method} {where}: {type(exc).__name__}") from None
        if error_path:
            refuse_error_body(body, error_path, where)
        return JsonPage(body, response.url, urljoin(response.url, link) if link else None)

    def _post_once(self, url: str, form: Mapping[str, str], headers: Mapping[str, str] | None) -> tuple[int, Any]:
        where = safe_url(url)
        _origin(url, where)  # http(s) only
        try:
            response = self._session.post(url, data=dict(form), headers=headers, timeout=self._timeout,
                                          allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(f"POST {where}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise PermanentError(f"POST {where}: {type(exc).__name__}") from None
        status = response.status_code
        self._raise_for_retry(response, f"POST {where}")
        if 300 <= status < 400:
            raise PermanentError(f"POST {where}: HTTP {status} redirect; not followed")
        try:
            return status, _json(response.content[:self._max_body_bytes])
        except (ValueError, RecursionError):
            return status, None

    def _open_once(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                   method: str = "GET", body: Any = None) -> requests.Response:
        """One request whose status is 2xx, after at most :data:`MAX_REDIRECTS` redirects within
        ``url``'s origin; its body is not read yet."""
        origin = _origin(url, safe_url(url))
        for _ in range(MAX_REDIRECTS + 1):
            response = self._get_one(url, params, headers, method, body)
            if response.status_code not in _REDIRECTS:
                return response
            response.close()
            target = urljoin(response.url or url, response.headers.get("Location", ""))
            if _origin(target, safe_url(target)) != origin:
                raise PermanentError(f"GET {safe_url(url)}: HTTP {response.status_code} redirects to another "
                                     f"origin ({safe_url(target)}); not followed, the source's credentials "
                                     "stay with its own host")
            url, params = target, None  # the Location carries its own query
        raise PermanentError(f"GET {safe_url(url)}: more than {MAX_REDIRECTS} redirects")

    def _get_one(self, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                 method: str = "GET", body: Any = None) -> requests.Response:
        where = f"{method} {safe_url(url)}"
        self._before_attempt()
        try:
            response = self._session.request(method, url, params=params, headers=headers, json=body,
                                             timeout=self._timeout, stream=True, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self._on_response("error")
            raise TransientError(f"{where}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            self._on_response("error")
            raise PermanentError(f"{where}: {type(exc).__name__}") from None
        status = response.status_code
        self._on_response(f"{status // 100}xx")
        if status in self._on_status:
            response.close()
            self._status_action(status, where, response)
        if status >= 400:
            response.close()
        self._raise_for_retry(response, where)
        if status == 401:
            raise Unauthorized(f"{where}: HTTP 401")
        if status >= 400:
            raise PermanentError(f"{where}: HTTP {status}")
        return response

    def _raise_for_retry(self, response: requests.Response, what: str) -> None:
        """A 429 or 5xx: :class:`TransientError`, or :class:`RetryLater` when the server's ``Retry-After``
        is longer than the back-off cap (the job is deferred by it instead of asking again too early)."""
        status = response.status_code
        if status != 429 and status < 500:
            return
        retry_after = parse_retry_after(response)
        if retry_after is not None and retry_after > self._policy.max_backoff:
            raise RetryLater(f"{what}: HTTP {status} with Retry-After {retry_after:.0f}s, beyond the "
                             f"{self._policy.max_backoff:.0f}s back-off cap: deferred", retry_after=retry_after)
        raise TransientError(f"{what}: HTTP {status}", retry_after=retry_after)

    def _status_action(self, status: int, where: str, response: requests.Response) -> None:
        """Raise what the source's ``on_status`` makes of ``status``; ``where``: ``"GET https://..."``."""
        action = self._on_status[status]
        if action == "skip":
            raise _Skip(status)
        if action == "retry":
            raise TransientError(f"{where}: HTTP {status} (on_status: retry)",
                                 retry_after=parse_retry_after(response))
        raise PermanentError(f"{where}: HTTP {status}" + (" (on_status: fail)" if action == "fail" else
                                                              f" (on_status: unknown action {action!r})"))

    def _decode(self, response: requests.Response, where: str) -> Any:
        """The JSON body of a successful answer, or :class:`UnreadableBody` saying why not."""
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = self._read_capped(response, where)
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnreadableBody(f"GET {where}: content type {content_type[:60]!r}",
                                 f"content type {content_type[:60]!r} is not JSON", _head(body))
        if len(body) > self._max_page_values and values_at_most(body) > self._max_page_values:
            raise UnreadableBody(f"GET {where}: more than {self._max_page_values} values",
                                 f"the page holds more than {self._max_page_values} JSON values", _head(body))
        try:
            return _json(body)
        except ValueError:
            raise UnreadableBody(f"GET {where}: the body is not JSON", "the body is not JSON", _head(body)) from None
        except RecursionError:
            pass
        # Too deep for the decoder: cut what is deeper than any acceptable record (records sit a
        # few levels down the page); the sources then refuse the record that held the cut alone.
        try:
            return _json(cut_deeper_than(body, self.max_nesting + 16))
        except (ValueError, RecursionError):
            raise UnreadableBody(f"GET {where}: JSON nested too deeply", "the body is JSON nested too deeply",
                                 _head(body)) from None

    def _read_capped(self, response: requests.Response, where: str) -> bytes:
        """The body, refusing it as soon as it passes ``max_body_bytes`` (memory stays bounded)."""
        cap = self._max_body_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise UnreadableBody(f"GET {where}: body of {declared} bytes", f"response over the size cap ({cap} bytes)")
        chunks, size = [], 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise UnreadableBody(f"GET {where}: body over {cap} bytes", f"response over the size cap ({cap} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _should_retry(self, state: RetryCallState, unreadable: list[int]) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryLater):
            return False  # the job is deferred instead
        if isinstance(error, ApiErrorBody):  # a failed request, retried as many times as any
            return state.attempt_number < self._policy.max_attempts
        if isinstance(error, UnreadableBody):  # its own tries: the 5xx and timeouts before it took none
            unreadable[0] += 1
            return unreadable[0] < UNREADABLE_BODY_ATTEMPTS
        return isinstance(error, TransientError)

    def _backoff(self, state: RetryCallState) -> float:
        delay = self._exponential(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return min(delay, self._policy.max_backoff)

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError):
            self._on_retry(error, state.upcoming_sleep)


def _json(body: bytes) -> Any:
    # orjson first; what it refuses or would change goes through json (invalid UTF-8 as U+FFFD).
    return decode_json(body)


def _origin(url: str, where: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``; a scheme other than http or https is refused."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise PermanentError(f"GET {where}: only http and https URLs are fetched, not {scheme or 'no scheme'!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise PermanentError(f"GET {where}: the URL's port is not a number") from None
    return scheme, (parts.hostname or "").lower(), port


def _head(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace")


def make_session(user_agent: str = "ingest-workers") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    return session


def safe_url(url: str) -> str:
    """The URL fit for a message: no query string (tokens hide there), password masked, the
    values of the job's environment references shown as ``${NAME}``."""
    parts = urlsplit(url)
    return redact(urlunsplit(parts._replace(query="", fragment="")))
