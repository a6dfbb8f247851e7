"""``http_json``: a JSON API, paginated by page number, offset/limit, a cursor token,
``Link`` headers, a next URL in the body (HAL-style), the last record's key (Stripe-style
``starting_after`` with ``has_more``) or a plugin paginator (:mod:`.paginators`), with the
records at a configurable path of each page.

Every request carries the source's static ``params`` and ``headers`` and its credentials
(:mod:`.auth`, read from the worker's environment per request). A next page's URL, from a
``Link`` header or the body, may be relative: it resolves against the URL of the page that
gave it, and one on another origin (scheme, host, port) is refused, so credentials never
leave the source's host.

A page whose body stays unreadable after the client's retries (not JSON, over the size
cap, a proxy's HTML page) is yielded as one :class:`LostPage` with the reason, and paging
goes on where the next page can be found without it (page and offset paging); several in
a row, or one in the other paginations (the next page's address is in the lost body),
fail the job. A page the API answered with an error (``error_path``) that persists is lost
likewise; in the other paginations it ends paging there (the job is ``partial``). A record
nested deeper than the client's ``max_nesting`` is rejected alone.
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

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import closing
from itertools import repeat
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..core.errors import ApiErrorBody, ConfigError, PermanentError, Unauthorized, UnreadableBody
from ..core.models import LostPage, Rejected, SourceSpec
from ..core.paths import value_at
from .auth import ApiRequest, AuthContext, RenewsCredentials
from .auth_kinds import make_authenticator
from .base import SourceContext
from .http import HttpClient, JsonPage, safe_url
from .jsonlimits import DEEP_MARKER, too_deep
from .page_fetch import fetched_in_order, session_client
from .paginators import CONCURRENT_PAGINATIONS, PAGINATIONS, NumberedPages, make_paginator
from .templates import filled_request, rendered_request, request_values_in

__all__ = ["CONCURRENT_PAGINATIONS", "PAGINATIONS", "HttpJsonSource", "http_json_source"]
MAX_BAD_PAGES_IN_A_ROW = 3  # then the source is broken, not one page: fail the job


class HttpJsonSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        """Raises :class:`MissingParentValue` when a placeholder of the request has no value in ``context``."""
        spec = rendered_request(spec, context.scope())
        if not spec.url:
            raise ConfigError(f"source {spec.name}: http_json needs a url")
        if not isinstance(spec.max_pages, int) or isinstance(spec.max_pages, bool) or spec.max_pages <= 0:
            raise ConfigError(f"source {spec.name}: max_pages must be a whole number above 0, got {spec.max_pages!r}")
        self._spec = spec
        self.skipped = 0  # requests whose answer the client skipped (on_status): no records, no error
        self._pages_lock = threading.Lock()  # page and offset paging fetch from several threads at once
        self._client = context.client
        # requests in flight at once (page and offset paging); the others fetch one page at a time
        self.concurrency = spec.concurrency or context.fetch_concurrency
        self._auth = make_authenticator(spec, AuthContext(spec.name, context.secrets, context.client))
        # TOML booleans go out as the words JSON APIs expect, not Python's True/False.
        self._params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in spec.params.items()}
        # {since}, {until}, {page}, ... in the request (:mod:`.templates`), filled per request
        self._placed = request_values_in(spec)
        self.read_range(context.since, context.until)

    def read_range(self, since: Any, until: Any) -> None:
        """Ask for the records at or after ``since`` and before ``until`` from the next :meth:`stream`
        on, from its first page (:class:`~.base.RangedSource`): a job reading windows keeps one source,
        and its credentials (one OAuth2 token per job, not one per window)."""
        spec = self._spec
        self._paginator = make_paginator(spec)
        self._pages_fetched, self._start_page = 0, 1
        self._values = {"since": since, "until": until}
        self._filters: dict[str, Any] = dict(self._params)
        for param, value, what in ((spec.since_param, since, "since"), (spec.until_param, until, "until")):
            if value is None or (not param and what in self._placed):
                continue
            if not param:
                raise ConfigError(f"source {spec.name}: cannot ask for records by time without {what}_param "
                                  f"or {{{what}}} in the request")
            self._filters[param] = value

    def stream(self) -> Iterator[Any]:
        """Yield the records of every page, fetching the next page only when asked for."""
        if isinstance(self._paginator, NumberedPages):
            return self._numbered_pages(self._paginator)
        return self._sequential_pages()

    def _at_page(self, page: int) -> None:
        """Page paging: the records yielded next are of ``page`` (a resumable source keeps it)."""

    def _first_request(self) -> ApiRequest:
        spec = self._spec
        return self._paginator.first_request(ApiRequest(spec.url, self._filters, spec.headers, spec.method, spec.body))

    def _numbered_pages(self, paginator: NumberedPages) -> Iterator[Any]:
        """Pages addressed by number (``page=1, 2, ...``) or by offset (``offset=0, 500, ...``):
        the next page's address does not depend on this one, so pages are fetched ``concurrency``
        at a time (:mod:`.page_fetch`, in page order) and an unreadable page can be skipped."""
        spec, bad_in_a_row, previous = self._spec, 0, None
        name, first = paginator.label, self._first_request()

        def fetch(client: HttpClient, address: int) -> list[Any]:
            return self._document(first.adding(params={paginator.param: address}), f"{name} {address}", client)[0]

        pages = fetched_in_order(fetch, paginator.addresses(self._start_page), self.concurrency,
                                 lambda: session_client(self._client),
                                 is_last=lambda records: len(records) < spec.page_size)
        with closing(pages):
            for address, page in pages:
                if name == "page":
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

    def _sequential_pages(self) -> Iterator[Any]:
        """Pages whose address is in the page before: the paginator gives each next request."""
        request: ApiRequest | None = self._first_request()
        previous, number = None, 0
        while request is not None:
            number += 1
            where = f"page {number}"
            try:
                records, page = self._document(request, where)
            except ApiErrorBody as exc:  # the page is lost, and the way on with it: the job ends partial
                yield self._rejected_page({"page": number}, where, exc, 1)
                return
            except UnreadableBody as exc:
                raise PermanentError(f"source {self._spec.name}: {where} unreadable ({exc.reason}); "
                                     "the next page's address was in it") from None
            self._refuse_repeat(records, previous, where)
            previous = records
            yield from records
            if page.skipped is not None:  # skipped (on_status): a page without records, paging ends
                return
            request = self._paginator.next_request(records, page, request)

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

    def _document(self, request: ApiRequest, where: str,
                  client: HttpClient | None = None) -> tuple[list[Any], JsonPage]:
        """The records of one page and the page itself (body, URL, Link); ``client``: a fetch thread's own."""
        spec = self._spec
        with self._pages_lock:
            self._pages_fetched += 1
            pages = self._pages_fetched
        if pages > spec.max_pages:
            raise PermanentError(f"source {spec.name}: more than {spec.max_pages} pages from {safe_url(spec.url)} "
                                 "in one job (max_pages in the catalog); stopped")
        if _origin(request.url) != _origin(spec.url):  # never send credentials to another host
            raise PermanentError(f"source {spec.name}: the next page leaves {safe_url(spec.url)} for "
                                 f"{_origin(request.url)[1] or 'another origin'}")
        page = self._send(client or self._client, request)
        if page.skipped is not None:
            with self._pages_lock:
                self.skipped += 1
            return [], page
        records = value_at(page.body, spec.records_path)
        if isinstance(records, dict) and not spec.records_path:
            records = [records]  # a detail endpoint: the body is the one record
        if not isinstance(records, list):
            raise PermanentError(f"source {spec.name}: {where} of {safe_url(spec.url)} has no list at "
                                 f"{spec.records_path!r}")
        limit = self._client.max_nesting
        if any(map(too_deep, records, repeat(limit))):  # a scalar is never too deep
            records = [_too_deep(r, where, limit) if type(r) in (dict, list) and too_deep(r, limit) else r
                       for r in records]
        return records, page

    def _send(self, client: HttpClient, request: ApiRequest) -> JsonPage:
        """``request`` completed, authorized and sent; after a 401, once more if the authenticator
        renewed its credentials. The authenticator sees the request as it is sent (a signer signs it)."""
        error_path, prepared = self._spec.error_path, self._prepared(request)
        authorized = self._authorized(prepared, request.url)
        try:
            return self._get(client, authorized, error_path)
        except Unauthorized:
            if not (isinstance(self._auth, RenewsCredentials) and self._auth.renew(authorized)):
                raise
        return self._get(client, self._authorized(prepared, request.url), error_path)

    def _prepared(self, request: ApiRequest) -> ApiRequest:
        """Another URL (a next link) carries its own query: the static params it lacks are added. Then
        ``{since}``, ``{page}``, ... are filled in: the paging position the paginator added as a
        parameter goes where its placeholder is instead (a POST body, a filter expression)."""
        if request.url != self._spec.url:
            present = _query_names(request.url)
            request = request.adding(params={k: v for k, v in self._params.items() if k not in present})
        if self._placed:
            request = filled_request(request, self._spec, self._values, self._placed)
        return request

    def _authorized(self, request: ApiRequest, asked: str) -> ApiRequest:
        """``request`` with its credentials; for a next link (``asked``), none its query has already."""
        authorized = self._auth.authorize(request)
        if asked == self._spec.url:
            return authorized
        present = _query_names(asked)
        return dataclasses.replace(authorized, params={k: v for k, v in authorized.params.items() if k not in present})

    @staticmethod
    def _get(client: HttpClient, request: ApiRequest, error_path: str) -> JsonPage:
        return client.get_json_document(request.url, request.params, request.headers, error_path,
                                        request.method, request.body)


def _query_names(url: str) -> set[str]:
    return {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def _too_deep(record: Any, where: str, limit: int) -> Rejected:
    """The record refused alone; its payload keeps only its top-level scalars (the rest cannot be stored)."""
    shallow = ({k: v if type(v) not in (dict, list) else DEEP_MARKER for k, v in record.items()}
               if isinstance(record, dict) else [DEEP_MARKER])
    return Rejected(shallow, f"{where}: record nested deeper than {limit} levels (max_nesting)", "fetch")


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
