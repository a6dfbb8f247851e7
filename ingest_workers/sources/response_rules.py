"""What an answer means beyond its status: an error the API reports in a 200's body (a source's
``error_path``), and how long the server asks a client to wait (``Retry-After``)."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
from typing import Any

import requests

from ..core.errors import ApiErrorBody

API_MESSAGE_CHARS = 200  # of an API's error message quoted in a lost page's reason


def refuse_error_body(body: Any, error_path: str, where: str) -> None:
    """Raise :class:`ApiErrorBody` quoting the API's message when ``body`` holds a value at ``error_path``."""
    found: Any = body
    for part in filter(None, error_path.split(".")):
        found = found.get(part) if isinstance(found, dict) else None
    if not found:  # absent, null, false, 0, "" or empty: no error
        return
    message = found.get("message", found) if isinstance(found, dict) else found
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str)
    quoted = text[:API_MESSAGE_CHARS] + ("..." if len(text) > API_MESSAGE_CHARS else "")
    raise ApiErrorBody(f"GET {where}: HTTP 200 with an error at {error_path!r}",
                       f"the API answered 200 with an error at {error_path!r}: {quoted}", quoted)



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
