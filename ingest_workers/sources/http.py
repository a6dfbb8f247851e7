"""HTTP for sources: one ``requests.Session``, timeouts, and the retry policy.

Transient failures (connection errors, timeouts, 429, 5xx) are retried here with
tenacity: exponential back-off with jitter, bounded in attempts, and never sooner
than the server's ``Retry-After``. Everything leaves this module as a
:class:`TransientError` or a :class:`PermanentError`. Messages carry the URL
without its query string or password, and never a header value.
"""

from __future__ import annotations

import copy
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ..core.errors import PermanentError, TransientError, UnreadableBody
from ..core.redact import mask_url
from .json_decode import decode_json


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


DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


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
    ) -> None:
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
                          headers: Mapping[str, str] | None = None) -> JsonPage:
        """:meth:`get_json_page` with the URL the page came from."""
        retrying = self._retrying()
        return self._guard(lambda: retrying(self._get_once, url, params, headers))

    def open_stream(self, url: str, params: Mapping[str, Any] | None = None,
                    headers: Mapping[str, str] | None = None) -> requests.Response:
        """A successful ``GET url`` whose body is not read yet (for large files); the caller closes it.

        Opening is retried like :meth:`get_json`; a failure while reading the body is the caller's.
        """
        retrying = self._retrying()
        return self._guard(lambda: retrying(self._open_once, url, params, headers))

    def with_session(self, session: requests.Session) -> HttpClient:
        """This client (retries, rate limit, breaker, counters) over another session: one per
        thread when a job fetches pages concurrently (:mod:`.page_fetch`)."""
        twin = copy.copy(self)
        twin._session = session
        return twin

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self._policy.max_attempts),
            wait=self._backoff,
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    def _get_once(self, url: str, params: Mapping[str, Any] | None,
                  headers: Mapping[str, str] | None) -> JsonPage:
        where = safe_url(url)
        response = self._open_once(url, params, headers)
        try:
            with response:
                body = self._decode(response, where)
                link = response.links.get("next", {}).get("url")
                return JsonPage(body, response.url, urljoin(response.url, link) if link else None)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self._on_response("error")  # the connection broke while the body was read
            raise TransientError(f"GET {where}: {type(exc).__name__}") from None

    def _open_once(self, url: str, params: Mapping[str, Any] | None,
                   headers: Mapping[str, str] | None) -> requests.Response:
        """One GET whose status is 2xx or 3xx; its body is not read yet."""
        where = safe_url(url)
        self._before_attempt()
        try:
            response = self._session.get(url, params=params, headers=headers, timeout=self._timeout, stream=True)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self._on_response("error")
            raise TransientError(f"GET {where}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            self._on_response("error")
            raise PermanentError(f"GET {where}: {type(exc).__name__}") from None
        status = response.status_code
        self._on_response(f"{status // 100}xx")
        if status == 429 or status >= 500:
            response.close()
            raise TransientError(f"GET {where}: HTTP {status}", retry_after=parse_retry_after(response))
        if status >= 400:
            response.close()
            raise PermanentError(f"GET {where}: HTTP {status}")
        return response

    def _decode(self, response: requests.Response, where: str) -> Any:
        """The JSON body of a successful answer, or :class:`UnreadableBody` saying why not."""
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = self._read_capped(response, where)
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnreadableBody(f"GET {where}: content type {content_type[:60]!r}",
                                 f"content type {content_type[:60]!r} is not JSON", _head(body))
        try:
            return decode_json(body)
        except ValueError:
            raise UnreadableBody(f"GET {where}: the body is not JSON", "the body is not JSON", _head(body)) from None
        except RecursionError:
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


def _head(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace")


def make_session(user_agent: str = "ingest-workers") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    return session


def safe_url(url: str) -> str:
    """The URL fit for a message: no query string (tokens hide there), password masked."""
    parts = urlsplit(url)
    return mask_url(urlunsplit(parts._replace(query="", fragment="")))


def parse_retry_after(response: requests.Response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
