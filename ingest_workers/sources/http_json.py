"""``http_json``: a JSON API paginated by page number (``?page=N&per_page=M``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigError, PermanentError, UnreadableBody
from ..http import HttpClient, safe_url
from ..models import Rejected, SourceSpec

MAX_BAD_PAGES_IN_A_ROW = 3  # then the source is broken, not one page: fail the job


class HttpJsonSource:
    def __init__(self, spec: SourceSpec, client: HttpClient, secrets: Mapping[str, str]) -> None:
        self._spec = spec
        self._client = client
        self._start_page = 1
        self.resume_page = 1  # the first page whose records may not all have been taken yet
        self._headers: dict[str, str] = {}
        if spec.auth_env:
            token = secrets.get(spec.auth_env)
            if not token:
                raise ConfigError(f"source {spec.name}: environment variable {spec.auth_env} (auth_env) is not set")
            self._headers[spec.auth_header] = token

    def resume_from(self, page: int) -> None:
        """Start at ``page`` (a job resuming after its worker died); call before :meth:`stream`."""
        self._start_page = self.resume_page = max(1, page)

    def stream(self) -> Iterator[Any]:
        """Yield the records of page 1, 2, ... until a short or empty page.

        A page whose body stays unreadable after the client's retries is yielded as one
        :class:`Rejected` (stage ``fetch``) and paging goes on; several in a row fail the job.
        """
        spec, page, bad_in_a_row = self._spec, self._start_page, 0
        while True:
            self.resume_page = page
            params = {spec.page_param: page, spec.page_size_param: spec.page_size}
            try:
                body = self._client.get_json(spec.url, params=params, headers=self._headers)
            except UnreadableBody as exc:
                bad_in_a_row += 1
                if bad_in_a_row >= MAX_BAD_PAGES_IN_A_ROW:
                    raise PermanentError(f"source {spec.name}: {bad_in_a_row} pages in a row unreadable: "
                                         f"{exc.reason}") from None
                yield Rejected({"page": page, "url": safe_url(spec.url), "body_head": exc.head},
                               f"page {page}: {exc.reason}", "fetch")
                page += 1
                continue
            bad_in_a_row = 0
            records = records_at(body, spec.records_path)
            if records is None:
                raise PermanentError(
                    f"source {spec.name}: page {page} of {safe_url(spec.url)} has no list at {spec.records_path!r}"
                )
            yield from records
            if len(records) < spec.page_size:
                return
            page += 1


def records_at(body: Any, path: str) -> list[Any] | None:
    """The list at a dotted ``path`` in ``body`` (``""`` for a top-level list), or None."""
    for part in filter(None, path.split(".")):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body if isinstance(body, list) else None
