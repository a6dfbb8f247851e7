"""``csv``: a CSV file (a path, or an http(s) URL) streamed row by row.

Rows are read through a small buffer, never the whole file, so a file of any size
runs in constant memory. Each row becomes a record ``{column: text}``; the
dataset's check reads numbers and times from the text. Options: ``delimiter``, and
``max_line_length`` (characters, default 1 MiB): a longer line is rejected with its
line number and never held whole, so a file without newlines cannot fill memory. Over
http(s), the source's ``params``, ``headers`` and ``auth`` go with the request, as for
``http_json``.
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
from .auth import ApiRequest, AuthContext
from .auth_kinds import make_authenticator
from .base import SourceContext

DEFAULT_MAX_LINE_LENGTH = 1024 * 1024
_SKIP_CHUNK = 64 * 1024


class CsvSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        if not spec.url:
            raise ConfigError(f"source {spec.name}: csv needs a url (a file path or an http(s) URL)")
        delimiter = spec.options.get("delimiter", ",")
        if not (isinstance(delimiter, str) and len(delimiter) == 1):
            raise ConfigError(f"source {spec.name}: csv option delimiter must be one character")
        self._spec, self._client, self._delimiter = spec, context.client, delimiter
        # an http(s) file may need credentials too
        self._auth = make_authenticator(spec, AuthContext(spec.name, context.secrets, context.client))
        max_line = spec.options.get("max_line_length", DEFAULT_MAX_LINE_LENGTH)
        if not isinstance(max_line, int) or isinstance(max_line, bool) or max_line <= 0:
            raise ConfigError(f"source {spec.name}: csv option max_line_length must be a whole number above 0")
        self._max_line = max_line

    def stream(self) -> Iterator[Any]:
        """Each row as a dict; a row the csv module cannot parse is yielded as
        ``{"csv_error": ..., "line": n}`` so it is rejected with its reason, not lost."""
        with ExitStack() as stack:
            text = stack.enter_context(self._open())
            rows = csv.DictReader(_CappedLines(text, self._max_line), delimiter=self._delimiter)
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
        # Everything below returns a text stream read line by line through _capped_lines.
        url = self._spec.url
        if url.startswith(("http://", "https://")):
            request = self._auth.authorize(ApiRequest(url, self._spec.params, self._spec.headers))
            response = self._client.open_stream(url, params=dict(request.params) or None,
                                                headers=dict(request.headers) or None)
            response.raw.decode_content = True  # undo gzip/deflate transfer encodings
            return io.TextIOWrapper(response.raw, encoding="utf-8", errors="replace", newline="")
        try:
            return open(url, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115 (closed by stream)
        except OSError as exc:
            raise PermanentError(f"source {self._spec.name}: cannot open {url}: {exc.strerror}") from None


class _CappedLines:
    """The lines of a text stream; a line longer than ``cap`` characters is skipped to its end
    (read in chunks, never held) and raises :class:`csv.Error` in its place, so its row is
    rejected and the next line is read as usual (an iterator class: a generator that raised is over)."""

    def __init__(self, text: io.TextIOBase, cap: int) -> None:
        self._text, self._cap = text, cap

    def __iter__(self) -> _CappedLines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(self._cap + 1)
        if not line:
            raise StopIteration
        if len(line) > self._cap and not line.endswith("\n"):
            while (rest := self._text.readline(_SKIP_CHUNK)) and not rest.endswith("\n"):
                pass
            raise csv.Error(f"line longer than {self._cap} characters (max_line_length); skipped")
        return line
