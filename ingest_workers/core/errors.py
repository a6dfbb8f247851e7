"""The one exception tree of ingest-workers.

    IngestError                  base: anything this package raises on purpose
    ├── ConfigError              bad catalog, flag or environment value; fix the input
    ├── ServiceUnavailable       Redis or PostgreSQL cannot be reached (URL masked)
    │   ├── SchemaMissing        PostgreSQL answers, but without the ingest schema: run `ingest db migrate`
    │   └── ServiceRefused       a malformed URL, or a service that answers no (no such database or user,
    │                            a wrong password): waiting cannot help, fix the setting
    ├── TransientError           safe to retry: timeouts, connection drops, 429, 5xx
    │   ├── UnreadableBody       a 200 whose body is not JSON, too large or not application/json
    │   │   └── ApiErrorBody     a 200 whose body says it failed (the source's ``error_path``)
    │   └── Deferral             the job must wait longer than a worker may sleep: defer it
    │       ├── CircuitOpen      the source's breaker is open: do not call it
    │       └── RetryLater       the server's Retry-After is longer than the HTTP back-off cap
    └── PermanentError           retrying cannot help: 4xx, a body that is not JSON, ...
        ├── Unauthorized         HTTP 401: an authenticator may renew its credentials once
        ├── Refused              the job asks for what this worker does not allow (a plugin, a file, a variable)
        ├── CountMismatch        a job's counts do not add up (a counting bug; raised with INGEST_STRICT_COUNTS)
        └── MissingParentValue   a child source's {parent.PATH} (or {partition.NAME}) has no value to fill in

Third-party errors (requests, psycopg2, redis) are translated into these at the
module that talks to the library, with ``raise ... from exc``, so callers above
never import a client library to decide what to do.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(IngestError):
    """A catalog entry, flag or environment variable is invalid; the message names it."""


class ServiceUnavailable(IngestError):
    """Redis or PostgreSQL did not answer. The message names the URL with its password masked."""


class SchemaMissing(ServiceUnavailable):
    """PostgreSQL answers but lacks the tables of ``ingest db migrate`` (or some of them).

    A job that meets it is retried later like any unavailable service: a migration may come first.
    """


class ServiceRefused(ServiceUnavailable):
    """The URL is malformed, or Redis or PostgreSQL answered and refused it (a database or user that
    does not exist, a wrong password): no wait can fix it, so nothing waits for it
    (``ops.readiness`` fails at once). The message names the URL with its password masked."""


class TransientError(IngestError):
    """A failure that may pass: retrying the same request or job later is safe.

    ``retry_after`` carries the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(IngestError):
    """A failure that retrying cannot fix (a 4xx answer, a body that is not JSON, ...)."""


class UnreadableBody(TransientError):
    """An answer whose body cannot be used: not JSON, over the size cap, or not a JSON content type.

    Retried like any transient failure (a truncated transfer or a proxy's error page may
    pass); when it persists, the source records the page in ``rejected_records`` with
    ``reason`` and moves on.
    """

    def __init__(self, message: str, reason: str, head: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.head = head  # the first characters of the body, for the audit trail


class ApiErrorBody(UnreadableBody):
    """A 200 answer whose body holds a value at the source's ``error_path``: the API says the
    request failed. Retried like any transient failure; when it persists the page is lost
    (``reason`` quotes the API's message, cut short)."""


class Deferral(TransientError):
    """The job must wait ``retry_after`` seconds, longer than a worker may sleep in it: defer it
    (re-enqueue it through RQ's scheduler with that delay), never sleep it out."""


class CircuitOpen(Deferral):
    """The source failed too often recently; ``retry_after`` says when a probe may try again."""


class RetryLater(Deferral):
    """The server asked (``Retry-After``) for a wait longer than the HTTP back-off cap
    (``INGEST_HTTP_MAX_BACKOFF``): the job is deferred by that wait instead of asking too early."""


class Unauthorized(PermanentError):
    """HTTP 401: the credentials were refused. An authenticator that can renew them (a new OAuth2
    token) is told once and the request repeated; a second 401 fails the job."""


class Refused(PermanentError):
    """A job asks for what the worker's own configuration does not allow: a plugin module outside
    ``INGEST_PLUGINS``, a local path outside ``INGEST_FILES_DIR``, one of the worker's own variables.
    The message names the source, what it asked for and the setting that decides."""


class CountMismatch(PermanentError):
    """A job's counts do not add up (``fetched != rejected + duplicate + loaded + updated``): a
    bug in the counting, never in the data. Raised only with ``strict_counts`` (tests); otherwise
    logged as an error and the job ends as it would have."""


class MissingParentValue(PermanentError):
    """A request template names ``{parent.PATH}`` (or ``{partition.NAME}``) and the parent record
    (or the partition) has no usable value there: no request is sent. Retrying cannot help; the
    fan-out marks that one parent failed with this message, which names the path (``path``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path  # "parent.user.login", "partition.board"
