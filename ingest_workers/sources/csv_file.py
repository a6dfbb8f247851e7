"""``csv``: a CSV file (a path, or an http(s) URL) streamed row by row.

Rows are read through a small buffer, never the whole file, so a file of any size
runs in constant memory. Each row becomes a record ``{column: text}``; the
domain's check reads numbers and times from the text. Options: ``delimiter``. Over http(s),
the source's ``params``, ``headers`` and ``auth`` go with the request, as for ``http_json``.
A CSV has no query to ask for "records since": a csv source reads the whole file
every run and relies on dedup to load each row once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import urllib3

from ..core.errors import ConfigError, PermanentError, TransientError
from ..core.models import SourceSpec
from .auth import RequestAuth
from .base import SourceContext


class CsvSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        if not spec.url:
            raise ConfigError(f"source {spec.name}: csv needs a url (a file path or an http(s) URL)")
        delimiter = spec.options.get("delimiter", ",")
        if not (isinstance(delimiter, str) and len(delimiter) == 1):
            raise ConfigError(f"source {spec.name}: csv option delimiter must be one character")
        self._spec, self._client, self._delimiter = spec, context.client, delimiter
        self._auth = RequestAuth(spec, context.secrets)  # an http(s) file may need credentials too

    def stream(self) -> Iterator[Any]:
        """Each row as a dict; a row the csv module cannot parse is yielded as
        ``{"csv_error": ..., "line": n}`` so it is rejected with its reason, not lost."""
        with ExitStack() as stack:
            text = stack.enter_context(self._open())
            rows = csv.DictReader(text, delimiter=self._delimiter)
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    return
                except csv.Error as exc:
                    row = {"csv_error": str(exc), "line": rows.line_num}
                except (OSError, urllib3.exceptions.HTTPError) as exc:
                    raise TransientError(f"source {self._spec.name}: reading stopped at line {rows.line_num}: "
                                         f"{type(exc).__name__}") from None
                yield row

    def _open(self) -> io.TextIOBase:
        url = self._spec.url
        if url.startswith(("http://", "https://")):
            credentials = self._auth.credentials()
            response = self._client.open_stream(url, params={**self._spec.params, **credentials.params} or None,
                                                headers={**self._spec.headers, **credentials.headers} or None)
            response.raw.decode_content = True  # undo gzip/deflate transfer encodings
            return io.TextIOWrapper(response.raw, encoding="utf-8", errors="replace", newline="")
        try:
            return open(url, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115 (closed by stream)
        except OSError as exc:
            raise PermanentError(f"source {self._spec.name}: cannot open {url}: {exc.strerror}") from None
