"""How ``http_json`` finds its next page: the :class:`Paginator` protocol and the built-in paginations.

A paginator is given the first request (the source's URL with its filters) to adjust, then, after
each page, the page's records, its response (:class:`.http.JsonPage`: body, URL, ``Link`` next)
and the request that read it; it returns the next request, or None when paging is over. The
catalog's ``pagination`` names a built-in one or a plugin ``package.module:Class`` (allowed by
``INGEST_PLUGINS`` like every plugin), built as ``Cls(spec)`` (its settings in ``spec.options``).

What the source does around any paginator: credentials are added to every request; a request
whose URL is not the source's own keeps its query and gets only the static parameters it lacks;
a request leaving the source's origin is refused before it is sent; a full page equal to the one
before, or more than ``max_pages`` pages, stop the job.

Page and offset pagination also implement :class:`NumberedPages`: their pages' addresses are known
before the pages arrive, so :mod:`.page_fetch` fetches several at once and an unreadable page can
be skipped. The others find the next page's address in the page just read.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urljoin

from ..core.errors import ConfigError, PermanentError
from ..core.models import Rejected, SourceSpec
from ..core.paths import value_at
from ..core.plugins import PluginAllowlist, resolve
from .auth import ApiRequest
from .http import JsonPage, safe_url


@runtime_checkable
class Paginator(Protocol):
    """Turns the page just read into the request for the next one."""

    def first_request(self, request: ApiRequest) -> ApiRequest:
        """The request for the first page, from the source's URL with its filters."""
        ...

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        """The request for the page after the one ``request`` read (its ``records`` and ``response``),
        or None when it was the last. May raise :class:`PermanentError` (a loop, a missing key)."""
        ...


@runtime_checkable
class NumberedPages(Protocol):
    """A paginator whose pages are addressed by a number known in advance (``page=3``, ``offset=500``)."""

    label: str  # "page" or "offset": how a page is named in messages and lost-page rows
    param: str  # the query parameter carrying the address

    def addresses(self, first_page: int) -> Iterator[int]:
        """The addresses in order, from the page ``first_page`` (1 unless a job resumes)."""
        ...


class _Sized:
    """Paginations that ask for ``page_size`` records per page (``page_size_param``)."""

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec

    def first_request(self, request: ApiRequest) -> ApiRequest:
        spec = self._spec
        return request.adding(params={spec.page_size_param: spec.page_size} if spec.page_size_param else {})


class PagePages(_Sized):
    """``page=1, 2, ...`` until a short page."""

    label = "page"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.param = spec.page_param

    def addresses(self, first_page: int) -> Iterator[int]:
        return count(first_page)

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        if len(records) < self._spec.page_size:
            return None
        return request.adding(params={self.param: int(request.params.get(self.param, 1)) + 1})


class OffsetPages(_Sized):
    """``offset=0, page_size, ...`` until a short page."""

    label = "offset"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.param = spec.offset_param

    def addresses(self, first_page: int) -> Iterator[int]:
        return count((first_page - 1) * self._spec.page_size, self._spec.page_size)

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        if len(records) < self._spec.page_size:
            return None
        return request.adding(params={self.param: int(request.params.get(self.param, 0)) + self._spec.page_size})


class CursorPages(_Sized):
    """The next page's token at ``next_token_path`` in the body, sent back as ``token_param``."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._seen: set[Any] = set()

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        spec = self._spec
        token = value_at(response.body, spec.next_token_path)
        if token in (None, "") or not records:
            return None
        if token in self._seen:
            raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} served the cursor token twice")
        self._seen.add(token)
        return request.adding(params={spec.token_param: token})


class LinkPages(_Sized):
    """The next page's URL in the ``Link: <...>; rel="next"`` header."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._seen: set[str] = set()

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        return _linked(self._spec, self._seen, response.next_link, request)


class NextUrlPages(_Sized):
    """HAL-style: the next page's URL (absolute or relative) at ``next_url_path`` in the body."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._seen: set[str] = set()

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        spec = self._spec
        self._seen.add(response.url)  # a page naming itself as the next one is a loop too
        found = value_at(response.body, spec.next_url_path)
        if found in (None, "") or not records:
            return None
        if not isinstance(found, str):
            raise PermanentError(f"source {spec.name}: next_url_path {spec.next_url_path!r} holds "
                                 f"{type(found).__name__}, not a URL")
        return _linked(spec, self._seen, urljoin(response.url, found), request)


class AfterLastPages(_Sized):
    """Stripe-style: the records after the last one's ``after_field``, while ``has_more_path`` says so."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self._seen: set[Any] = set()

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        spec = self._spec
        if not records or not self._has_more(response.body, len(records)):
            return None
        last = records[-1]  # a record refused as too deep still names its key in its shallow payload
        after = value_at(last.raw if isinstance(last, Rejected) else last, spec.after_field)
        if after in (None, "") or isinstance(after, (dict, list)):
            raise PermanentError(f"source {spec.name}: the last record of a page has no after_field "
                                 f"{spec.after_field!r}")
        if after in self._seen:
            raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} served the same last record twice")
        self._seen.add(after)
        return request.adding(params={spec.after_param: after})

    def _has_more(self, body: Any, served: int) -> bool:
        spec = self._spec
        if not spec.has_more_path:
            return served >= spec.page_size
        more = value_at(body, spec.has_more_path)
        if not isinstance(more, bool):
            raise PermanentError(f"source {spec.name}: has_more_path {spec.has_more_path!r} is "
                                 f"{'missing' if more is None else repr(more)} in a page, expected true or false")
        return more


class SinglePage:
    """One request, as configured (no page size asked for)."""

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec

    def first_request(self, request: ApiRequest) -> ApiRequest:
        return request

    def next_request(self, records: list[Any], response: JsonPage, request: ApiRequest) -> ApiRequest | None:
        return None


def _linked(spec: SourceSpec, seen: set[str], next_url: str | None, request: ApiRequest) -> ApiRequest | None:
    """A request for ``next_url`` as given (it carries its own query), or None when there is none."""
    if not next_url:
        return None
    if next_url in seen:
        raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} links to the same page twice")
    seen.add(next_url)
    return ApiRequest(next_url, {}, request.headers)


PAGINATIONS: dict[str, type] = {"page": PagePages, "offset": OffsetPages, "cursor": CursorPages, "link": LinkPages,
                                "next_url": NextUrlPages, "after_last": AfterLastPages, "none": SinglePage}
CONCURRENT_PAGINATIONS = ("page", "offset")  # the others find the next page's address in this one


def paginator_class(name: str, allow: PluginAllowlist | None = None) -> Any:
    """The class of a built-in pagination or of a plugin ``package.module:Class``; ConfigError otherwise.
    ``allow``: the plugin allowlist a name from a job is checked against before anything is imported."""
    cls = resolve(name, PAGINATIONS, "pagination", allow)
    if not (isinstance(cls, type) and issubclass(cls, Paginator)):
        raise ConfigError(f"pagination {name!r} has no first_request(request) and "
                          "next_request(records, response, request) methods")
    return cls


def make_paginator(spec: SourceSpec) -> Paginator:
    """The paginator ``spec.pagination`` names, built for ``spec``."""
    paginator = paginator_class(spec.pagination)(spec)
    if not isinstance(paginator, Paginator):
        raise ConfigError(f"source {spec.name}: pagination {spec.pagination!r} has no first_request(request) "
                          "and next_request(records, response, request) methods")
    return paginator
