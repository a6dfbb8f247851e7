"""The one exception tree of ingest-workers.

    IngestError                  base: anything this package raises on purpose
    ├── ConfigError              bad catalog, flag or environment value; fix the input
    ├── ServiceUnavailable       Redis or PostgreSQL cannot be reached (URL masked)
    ├── TransientError           safe to retry: timeouts, connection drops, 429, 5xx
    └── PermanentError           retrying cannot help: 4xx, a body that is not JSON, ...

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


class TransientError(IngestError):
    """A failure that may pass: retrying the same request or job later is safe.

    ``retry_after`` carries the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(IngestError):
    """A failure that retrying cannot fix (a 4xx answer, a body that is not JSON, ...)."""
