"""``http_json``: a JSON API, paginated by page number, offset/limit, a cursor token,
``Link`` headers, a next URL in the body (HAL-style) or the last record's key (Stripe-style
``starting_after`` with ``has_more``), with the records at a configurable path of each page.

Every request carries the source's static ``params`` and ``headers`` and its credentials
(:mod:`.auth`, read from the worker's environment per request). A next page's URL, from a
``Link`` header or the body, may be relative: it resolves against the URL of the page that
gave it, and one on another origin (scheme, host, port) is refused, so credentials never
leave the source's host.

A page whose body stays unreadable after the client's retries (not JSON, over the size
cap, a proxy's HTML page) is yielded as one :class:`LostPage` with the reason, and paging
goes on where the next page can be found without it (page and offset paging); several in
a row, or one in the other paginations (the next page's address is in the lost body),
fail the job. A record nested deeper than the client's ``max_nesting`` is rejected alone.
Paging stops with a :class:`PermanentError` when a page repeats the one before it (same
records, or the same token or next URL) or after ``max_pages`` pages. A lost page is a
gap: the pipeline keeps the cursor before it and ends the job ``partial``, so the next
run fetches it again.

A child source's ``{parent.PATH}`` (a partitioned one's ``{partition.NAME}``) in its url, params
and headers is filled in from its context when the source is built (:mod:`.templates`; a missing
value raises :class:`MissingParentValue` there, before any request). An answer the client skips
(``on_status``) is a page without records: paging ends there, and :attr:`HttpJsonSource.skipped`
counts it. With ``records_path = ""``, a body that is one object (a detail endpoint) is one record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from itertools import count
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from ..core.errors import ConfigError, PermanentError, UnreadableBody
from ..core.models import LostPage, Rejected, SourceSpec
from .auth import RequestAuth
from .base import SourceContext
from .http import HttpClient, JsonPage, safe_url
from .jsonlimits import DEEP_MARKER, too_deep
from .page_fetch import fetched_in_order, session_client
from .templates import rendered_request

PAGINATIONS = ("page", "offset", "cursor", "link", "next_url", "after_last", "none")
CONCURRENT_PAGINATIONS = ("page", "offset")  # the others find the next page's address in this one
MAX_BAD_PAGES_IN_A_ROW = 3  # then the source is broken, not one page: fail the job


class HttpJsonSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        """Raises :class:`MissingParentValue` when a placeholder of the request has no value in ``context``."""
        spec = rendered_request(spec, context.scope())
        if spec.pagination not in PAGINATIONS:
            raise ConfigError(f"source {spec.name}: pagination {spec.pagination!r}; known: {', '.join(PAGINATIONS)}")
        if not spec.url:
            raise ConfigError(f"source {spec.name}: http_json needs a url")
        if not isinstance(spec.max_pages, int) or isinstance(spec.max_pages, bool) or spec.max_pages <= 0:
            raise ConfigError(f"source {spec.name}: max_pages must be a whole number above 0, got {spec.max_pages!r}")
        self._spec = spec
        self._pages_fetched = 0
        self.skipped = 0  # requests whose answer the client skipped (on_status): no records, no error
        self._pages_lock = threading.Lock()  # page and offset paging fetch from several threads at once
        self._client = context.client
        self._start_page = 1
        # requests in flight at once (page and offset paging); the others fetch one page at a time
        self.concurrency = spec.concurrency or context.fetch_concurrency
        self._auth = RequestAuth(spec, context.secrets)
        # TOML booleans go out as the words JSON APIs expect, not Python's True/False.
        self._params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in spec.params.items()}
        self._filters: dict[str, Any] = dict(self._params)
        for param, value, what in ((spec.since_param, context.since, "since_param"),
                                   (spec.until_param, context.until, "until_param")):
            if value is None:
                continue
            if not param:
                raise ConfigError(f"source {spec.name}: cannot ask for records by time without {what}")
            self._filters[param] = value

    def stream(self) -> Iterator[Any]:
        """Yield the records of every page, fetching the next page only when asked for."""
        return getattr(self, f"_{self._spec.pagination}_pages")()

    def _at_page(self, page: int) -> None:
        """Page paging: the records yielded next are of ``page`` (a resumable source keeps it)."""

    def _page_pages(self) -> Iterator[Any]:
        return self._numbered_pages(self._spec.page_param, self._start_page, by_page=True)

    def _offset_pages(self) -> Iterator[Any]:
        return self._numbered_pages(self._spec.offset_param, 0, by_page=False)

    def _numbered_pages(self, param: str, position: int, by_page: bool) -> Iterator[Any]:
        """Pages addressed by number (``page=1, 2, ...``) or by offset (``offset=0, 500, ...``):
        the next page's address does not depend on this one, so pages are fetched ``concurrency``
        at a time (:mod:`.page_fetch`, in page order) and an unreadable page can be skipped."""
        spec, bad_in_a_row, previous = self._spec, 0, None
        name = "page" if by_page else "offset"

        def fetch(client: HttpClient, address: int) -> list[Any]:
            params = {param: address, **self._size_param()}
            return self._records(params, f"{name} {address}", client=client)[0]

        addresses = count(position, 1 if by_page else spec.page_size)
        pages = fetched_in_order(fetch, addresses, self.concurrency, lambda: session_client(self._client),
                                 is_last=lambda records: len(records) < spec.page_size)
        with closing(pages):
            for address, page in pages:
                if by_page:
                    self._at_page(address)
                try:
                    records = page.result()
                    bad_in_a_row = 0
                except UnreadableBody as exc:
                    bad_in_a_row += 1
                    yield self._rejected_page({name: address}, f"{name} {address}", exc, bad_in_a_row)
                    records, previous = [None] * spec.page_size, None  # a full page was lost: go on to the next
                else:
                    self._refuse_repeat(records, previous, f"{name} {address}")
                    previous = records
                    yield from records
                if len(records) < spec.page_size:
                    return

    def _cursor_pages(self) -> Iterator[Any]:
        spec, token, seen, previous = self._spec, None, set(), None
        while True:
            params = self._size_param()
            if token is not None:
                params[spec.token_param] = token
            records, body, _ = self._records_or_fail(params, "a page")
            self._refuse_repeat(records, previous, "a page")
            previous = records
            yield from records
            token = _at(body, spec.next_token_path)
            if token in (None, "") or not records:
                return
            if token in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} served the cursor token twice")
            seen.add(token)

    def _link_pages(self) -> Iterator[Any]:
        spec, origin = self._spec, _origin(self._spec.url)
        records, _, next_url = self._records_or_fail(self._size_param(), "page 1")
        seen: set[str] = set()
        while True:
            yield from records
            previous = records
            if not next_url:
                return
            if _origin(next_url) != origin:  # never send credentials to another host
                raise PermanentError(f"source {spec.name}: Link rel=next leaves {safe_url(spec.url)}")
            if next_url in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} links to the same page twice")
            seen.add(next_url)
            records, _, next_url = self._records_or_fail({}, "a linked page", next_url)
            self._refuse_repeat(records, previous, "a linked page")

    def _none_pages(self) -> Iterator[Any]:
        yield from self._records_or_fail({}, "the response")[0]

    def _refuse_repeat(self, records: list[Any], previous: list[Any] | None, where: str) -> None:
        """A full page equal to the one before: the server ignores the paging parameter, and
        would serve it forever."""
        if records and previous is not None and records == previous:
            raise PermanentError(f"source {self._spec.name}: {where} of {safe_url(self._spec.url)} repeats the "
                                 "page before it (the server ignores the paging parameters?); stopped")

    def _rejected_page(self, position: dict[str, int], where: str, error: UnreadableBody,
                       bad_in_a_row: int) -> LostPage:
        if bad_in_a_row >= MAX_BAD_PAGES_IN_A_ROW:
            raise PermanentError(f"source {self._spec.name}: {bad_in_a_row} pages in a row unreadable: "
                                 f"{error.reason}") from None
        return LostPage({**position, "url": safe_url(self._spec.url), "body_head": error.head},
                        f"{where}: {error.reason}", "fetch", where, position.get("page"))

    def _records_or_fail(self, params: dict[str, Any], where: str,
                         linked: str | None = None) -> tuple[list[Any], Any, str | None]:
        """:meth:`_records` where an unreadable page hides the way on: it fails the job."""
        try:
            return self._records(params, where, linked)
        except UnreadableBody as exc:
            raise PermanentError(f"source {self._spec.name}: {where} unreadable ({exc.reason}); "
                                 "the next page's address was in it") from None

    def _records(self, params: dict[str, Any], where: str, linked: str | None = None,
                 client: HttpClient | None = None) -> tuple[list[Any], Any, str | None]:
        """The records of one page, the page, and its Link next URL; ``linked`` is a URL to
        follow as given (it carries its own query); ``client``: a fetch thread's own."""
        records, page = self._document(params, where, linked, client)
        return records, page.body, page.next_link

    def _document(self, params: dict[str, Any], where: str, linked: str | None = None,
                  client: HttpClient | None = None) -> tuple[list[Any], JsonPage]:
        """The records of one page and the page itself (body, URL, Link)."""
        spec = self._spec
        with self._pages_lock:
            self._pages_fetched += 1
            pages = self._pages_fetched
        if pages > spec.max_pages:
            raise PermanentError(f"source {spec.name}: more than {spec.max_pages} pages from {safe_url(spec.url)} "
                                 "in one job (max_pages in the catalog); stopped")
        credentials, client = self._auth.credentials(), client or self._client
        headers = {**spec.headers, **credentials.headers}
        if linked:
            # The linked URL carries its own query: add only what it lacks (static params, an api key).
            present = {name for name, _ in parse_qsl(urlsplit(linked).query, keep_blank_values=True)}
            extra = {k: v for k, v in {**self._params, **credentials.params}.items() if k not in present}
            page = client.get_json_document(linked, params=extra, headers=headers)
        else:
            page = client.get_json_document(spec.url, params={**self._filters, **params, **credentials.params},
                                            headers=headers)
        if page.skipped is not None:
            with self._pages_lock:
                self.skipped += 1
            return [], page
        records = _at(page.body, spec.records_path)
        if isinstance(records, dict) and not spec.records_path:
            records = [records]  # a detail endpoint: the body is the one record
        if not isinstance(records, list):
            raise PermanentError(f"source {spec.name}: {where} of {safe_url(spec.url)} has no list at "
                                 f"{spec.records_path!r}")
        limit = self._client.max_nesting
        if any(type(r) in (dict, list) and too_deep(r, limit) for r in records):
            records = [_too_deep(r, where, limit) if type(r) in (dict, list) and too_deep(r, limit) else r
                       for r in records]
        return records, page

    def _next_url_pages(self) -> Iterator[Any]:
        """HAL-style: the next page's URL (absolute or relative) is at ``next_url_path`` in the body."""
        spec = self._spec
        records, page = self._document_or_fail(self._size_param(), "page 1")
        seen = {page.url}  # a page naming itself as the next one is a loop too
        while True:
            yield from records
            found = _at(page.body, spec.next_url_path)
            if found in (None, "") or not records:
                return
            if not isinstance(found, str):
                raise PermanentError(f"source {spec.name}: next_url_path {spec.next_url_path!r} holds "
                                     f"{type(found).__name__}, not a URL")
            next_url = self._follow(page.url, found, "next_url_path")
            if next_url in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} links to the same page twice")
            seen.add(next_url)
            records, page = self._document_or_fail({}, "a linked page", next_url)

    def _after_last_pages(self) -> Iterator[Any]:
        """Stripe-style: ask for the records after the last one's ``after_field``, while ``has_more_path``."""
        spec, after, seen = self._spec, None, set()
        while True:
            params = self._size_param()
            if after is not None:
                params[spec.after_param] = after
            records, page = self._document_or_fail(params, "a page")
            yield from records
            if not records or not self._has_more(page.body, len(records)):
                return
            last = records[-1]  # a record refused as too deep still names its key in its shallow payload
            after = _at(last.raw if isinstance(last, Rejected) else last, spec.after_field)
            if after in (None, "") or isinstance(after, (dict, list)):
                raise PermanentError(f"source {spec.name}: the last record of a page has no after_field "
                                     f"{spec.after_field!r}")
            if after in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} served the same last record twice")
            seen.add(after)

    def _has_more(self, body: Any, served: int) -> bool:
        spec = self._spec
        if not spec.has_more_path:
            return served >= spec.page_size
        more = _at(body, spec.has_more_path)
        if not isinstance(more, bool):
            raise PermanentError(f"source {spec.name}: has_more_path {spec.has_more_path!r} is "
                                 f"{'missing' if more is None else repr(more)} in a page, expected true or false")
        return more

    def _size_param(self) -> dict[str, Any]:
        spec = self._spec
        return {spec.page_size_param: spec.page_size} if spec.page_size_param else {}

    def _follow(self, page_url: str, found: str, key: str) -> str:
        """``found`` resolved against the page it came from; refused when it leaves the source's origin."""
        next_url = urljoin(page_url, found)
        if _origin(next_url) != _origin(self._spec.url):  # never send credentials to another host
            raise PermanentError(f"source {self._spec.name}: the next page ({key}) leaves {safe_url(self._spec.url)} "
                                 f"for {_origin(next_url)[1] or 'another origin'}")
        return next_url

    def _document_or_fail(self, params: dict[str, Any], where: str,
                          linked: str | None = None) -> tuple[list[Any], JsonPage]:
        """:meth:`_document` where an unreadable page hides the way on: it fails the job."""
        try:
            return self._document(params, where, linked)
        except UnreadableBody as exc:
            raise PermanentError(f"source {self._spec.name}: {where} unreadable ({exc.reason}); "
                                 "the next page's address was in it") from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def _too_deep(record: Any, where: str, limit: int) -> Rejected:
    """The record refused alone; its payload keeps only its top-level scalars (the rest cannot be stored)."""
    shallow = ({k: v if type(v) not in (dict, list) else DEEP_MARKER for k, v in record.items()}
               if isinstance(record, dict) else [DEEP_MARKER])
    return Rejected(shallow, f"{where}: record nested deeper than {limit} levels (max_nesting)", "fetch")


def _at(body: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


class NumberedPagesSource(HttpJsonSource):
    """Page or offset paging: the pages' addresses are known in advance, so the source fetches
    ``concurrency`` of them at a time itself (:class:`~.base.FetchesAhead`)."""

    def pages_in_flight(self) -> int:
        return self.concurrency


class PagedSource(NumberedPagesSource):
    """Page paging: page numbers address the same records again, so a job that runs again starts
    at the page where an earlier attempt left off (:class:`~.base.ResumableSource`)."""

    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        super().__init__(spec, context)
        self._resume_page = 1

    @property
    def resume_page(self) -> int:
        """The first page whose records may not all have been taken yet."""
        return self._resume_page

    def resume_from(self, page: int) -> None:
        """Start at ``page`` (a job resuming after its worker died); call before :meth:`stream`."""
        self._start_page = self._resume_page = max(1, page)

    def _at_page(self, page: int) -> None:
        self._resume_page = page


def http_json_source(spec: SourceSpec, context: SourceContext) -> HttpJsonSource:
    """The ``http_json`` connector for ``spec``, with the capabilities its pagination gives."""
    if spec.pagination == "page":
        return PagedSource(spec, context)
    if spec.pagination in CONCURRENT_PAGINATIONS:
        return NumberedPagesSource(spec, context)
    return HttpJsonSource(spec, context)
