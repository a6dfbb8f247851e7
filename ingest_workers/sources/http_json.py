"""``http_json``: a JSON API, paginated by page number, offset/limit, a cursor token or
``Link`` headers, with the records at a configurable path of each page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, PermanentError
from ..http import safe_url
from ..models import SourceSpec
from .base import SourceContext

PAGINATIONS = ("page", "offset", "cursor", "link", "none")


class HttpJsonSource:
    def __init__(self, spec: SourceSpec, context: SourceContext) -> None:
        if spec.pagination not in PAGINATIONS:
            raise ConfigError(f"source {spec.name}: pagination {spec.pagination!r}; known: {', '.join(PAGINATIONS)}")
        if not spec.url:
            raise ConfigError(f"source {spec.name}: http_json needs a url")
        self._spec = spec
        self._client = context.client
        self._headers: dict[str, str] = {}
        if spec.auth_env:
            token = context.secrets.get(spec.auth_env)
            if not token:
                raise ConfigError(f"source {spec.name}: environment variable {spec.auth_env} (auth_env) is not set")
            self._headers[spec.auth_header] = token
        self._filters: dict[str, Any] = {}
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

    def _page_pages(self) -> Iterator[Any]:
        spec, page = self._spec, 1
        while True:
            records = self._records({spec.page_param: page, spec.page_size_param: spec.page_size}, f"page {page}")[0]
            yield from records
            if len(records) < spec.page_size:
                return
            page += 1

    def _offset_pages(self) -> Iterator[Any]:
        spec, offset = self._spec, 0
        while True:
            records = self._records({spec.offset_param: offset, spec.page_size_param: spec.page_size},
                                    f"offset {offset}")[0]
            yield from records
            if len(records) < spec.page_size:
                return
            offset += len(records)

    def _cursor_pages(self) -> Iterator[Any]:
        spec, token, seen = self._spec, None, set()
        while True:
            params: dict[str, Any] = {spec.page_size_param: spec.page_size}
            if token is not None:
                params[spec.token_param] = token
            records, body, _ = self._records(params, "a page")
            yield from records
            token = _at(body, spec.next_token_path)
            if token in (None, "") or not records:
                return
            if token in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} served the cursor token twice")
            seen.add(token)

    def _link_pages(self) -> Iterator[Any]:
        spec, origin = self._spec, urlsplit(self._spec.url)[:2]
        records, _, next_url = self._records({spec.page_size_param: spec.page_size}, "page 1")
        seen: set[str] = set()
        while True:
            yield from records
            if not next_url:
                return
            if urlsplit(next_url)[:2] != origin:  # never send the auth header to another host
                raise PermanentError(f"source {spec.name}: Link rel=next leaves {safe_url(spec.url)}")
            if next_url in seen:
                raise PermanentError(f"source {spec.name}: {safe_url(spec.url)} links to the same page twice")
            seen.add(next_url)
            records, _, next_url = self._records({}, "a linked page", next_url)

    def _none_pages(self) -> Iterator[Any]:
        yield from self._records({}, "the response")[0]

    def _records(self, params: dict[str, Any], where: str,
                 linked: str | None = None) -> tuple[list[Any], Any, str | None]:
        """The records of one page, the page, and its Link next URL; ``linked`` is a URL to
        follow as given (it carries its own query)."""
        spec = self._spec
        if linked:
            body, next_url = self._client.get_json_page(linked, headers=self._headers)
        else:
            body, next_url = self._client.get_json_page(spec.url, params={**self._filters, **params},
                                                        headers=self._headers)
        records = _at(body, spec.records_path)
        if not isinstance(records, list):
            raise PermanentError(f"source {spec.name}: {where} of {safe_url(spec.url)} has no list at "
                                 f"{spec.records_path!r}")
        return records, body, next_url


def _at(body: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body
