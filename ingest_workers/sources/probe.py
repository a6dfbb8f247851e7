"""Look at an API the way a person writing its catalog entry would: fetch its first page,
find the records, work out how it pages, and fetch the second page for more samples.

Paging is recognised from what the first page shows (a ``Link`` header, a next URL or a
cursor token in the body, ``has_more``), and page or offset numbers are confirmed with a
few small requests (two records each): ``per_page=2`` must serve the first two records of
page 1, ``page=2`` the next two, ``offset=1`` the second and third. A parameter the API
ignores serves page 1 again and is not taken. Only the URL's own origin is requested.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

from ..core.errors import PermanentError, UnreadableBody
from ..core.paths import value_at
from ..datasets.infer import infer_columns, key_candidate
from .http import HttpClient, JsonPage, safe_url

SIZE_PARAMS = ("limit", "per_page", "page_size", "pageSize", "size", "_limit", "max_results", "maxResults",
               "perPage", "count", "rows", "take")
PAGE_PARAMS = ("page", "_page", "p", "pageNumber", "page_number", "pageNo")
OFFSET_PARAMS = ("offset", "skip", "start", "_start", "from", "startIndex")
TOKEN_PARAMS = ("cursor", "page_token", "pageToken", "pagination_token", "next_token", "nextToken", "token",
                "after", "continuation", "next_cursor", "next", "page")
AFTER_PARAMS = ("starting_after", "after", "after_id", "since_id", "cursor")
TOTAL_NAMES = ("total", "totalElements", "total_count", "totalCount", "total_results", "totalResults")
NEXT_WORDS = ("next", "cursor", "token", "continuation")
SAMPLE_ROWS = 200  # CSV rows read for the draft


@dataclass
class ApiShape:
    """What the probe found; ``source`` holds the catalog keys of the source entry."""

    url: str  # the URL without its query (static parameters go to ``source["params"]``)
    records: list[Any]  # the sample: page 1, and page 2 when there is one
    source: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was seen, for the draft's comments
    requests: int = 0


class ApiProbe:
    def __init__(self, client: HttpClient, url: str, records_path: str | None = None,
                 headers: Mapping[str, str] | None = None, secret_params: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PermanentError(f"catalog draft: {url!r} is not an http(s) URL")
        self._client, self._headers, self._records_path = client, dict(headers or {}), records_path
        self._secret_params = dict(secret_params or {})  # an api key in the query: sent, never drafted
        self._base = urlunsplit(parts._replace(query="", fragment=""))
        self._query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self._requests = 0

    def shape(self) -> ApiShape:
        try:
            page = self._get(self._query)
        except UnreadableBody as exc:
            if "csv" in exc.reason:
                return self._csv_shape()
            raise PermanentError(f"catalog draft: {safe_url(self._base)} did not answer JSON: {exc.reason}") from None
        path = self._records_path if self._records_path is not None else find_records(page.body)
        if path is None:
            raise PermanentError(f"catalog draft: no list of records in the answer of {safe_url(self._base)}; "
                                 "name it with --records-path (dotted, \"\" for a top-level list)")
        records = _records_at(page.body, path, self._base)
        shape = ApiShape(self._base, list(records), {"kind": "http_json", "records_path": path})
        shape.notes.append(f"records: {len(records)} on page 1, at {path!r}" if path
                           else f"records: {len(records)} on page 1, a top-level list")
        total = find_total(page.body, path)
        if total:
            shape.notes.append(f"the API reports a total at {total[0]!r}: {total[1]}")
        self._paging(page, records, shape)
        shape.source["params"] = {k: v for k, v in self._query.items() if k not in _paging_keys(shape.source)}
        shape.requests = self._requests
        return shape

    # --- paging -------------------------------------------------------------------------------

    def _paging(self, page: JsonPage, records: list[Any], shape: ApiShape) -> None:
        path, source = shape.source["records_path"], shape.source
        size_param = self._size_param(records)
        size = int(self._query[size_param]) if size_param in self._query and self._query[size_param].isdigit() \
            else len(records)
        source.update(page_size_param=size_param or "", page_size=max(size, 1))
        if size_param:
            shape.notes.append(f"page size: {size_param!r} (page 1 served {len(records)})")
        second: list[Any] | None = None
        next_url, next_path = page.next_link, None
        if not next_url:
            next_path, next_url = _find_next(page.body, path, page.url)
        if page.next_link:
            source["pagination"] = "link"
            shape.notes.append("pagination: a Link rel=\"next\" header")
        elif next_url and next_path:
            source.update(pagination="next_url", next_url_path=next_path)
            shape.notes.append(f"pagination: the next page's URL at {next_path!r} in the body")
        if source.get("pagination") in ("link", "next_url") and next_url:
            if _origin(next_url) == _origin(self._base):
                second = _records_at(self._get({}, next_url).body, path, self._base)
            else:
                shape.notes.append("the next page's URL is on another origin: ingest will refuse to follow it")
        elif (token := _find_token(page.body, path)) is not None:
            found = self._token_param(token[1], records)
            source.update(pagination="cursor", next_token_path=token[0], token_param=found[0] if found else "cursor")
            second = found[1] if found else None
            shape.notes.append(f"pagination: a cursor token at {token[0]!r}, sent back as "
                               + (repr(found[0]) if found else "an unknown parameter (set token_param)"))
        elif (more := _find_has_more(page.body)) is not None:
            second = self._after_last(more, records, shape)
        else:
            second = self._numbered(records, size_param, source, shape)
        if second:
            shape.records.extend(second)
            shape.notes.append(f"page 2: {len(second)} records")

    def _size_param(self, records: list[Any]) -> str | None:
        """The parameter that sets the page size: the URL's own numbers first, then the usual names."""
        given = [k for k, v in self._query.items() if v.isdigit()]
        if len(records) <= 2:
            return next((k for k in given if k in SIZE_PARAMS), None)
        for name in dict.fromkeys([*given, *SIZE_PARAMS]):
            if self._served({**self._query, name: 2}) == records[:2]:
                return name
        return None

    def _numbered(self, records: list[Any], size_param: str | None, source: dict[str, Any],
                  shape: ApiShape) -> list[Any] | None:
        sized = {size_param: source["page_size"]} if size_param else {}
        for kind, names, second in (("page", PAGE_PARAMS, 2), ("offset", OFFSET_PARAMS, len(records))):
            name = next((n for n in names if self._confirms(n, kind == "page", size_param, records)), None)
            if name:
                source.update(pagination=kind, **{f"{kind}_param": name})
                shape.notes.append(f"pagination: {kind} numbers ({name!r})")
                return self._served({**self._query, name: second, **sized})
        source["pagination"] = "none"
        shape.notes.append("pagination: none found (one request serves everything)")
        return None

    def _confirms(self, name: str, by_page: bool, size_param: str | None, records: list[Any]) -> bool:
        """Does ``name`` number pages (``by_page``) or offsets? With a size parameter, two records
        at a time must be the right ones of page 1; without, the next page must serve new records."""
        if size_param:
            if len(records) < (4 if by_page else 3):
                return False
            wanted = records[2:4] if by_page else records[1:3]
            return self._served({**self._query, size_param: 2, name: 2 if by_page else 1}) == wanted
        return self._new_records(self._served({**self._query, name: 2 if by_page else len(records)}), records)

    def _token_param(self, token: Any, records: list[Any]) -> tuple[str, list[Any]] | None:
        """The parameter that sends the token back: the first that serves records page 1 did not."""
        for name in TOKEN_PARAMS:
            served = self._served({**self._query, name: token})
            if served and self._new_records(served, records):
                return name, served
        return None

    def _after_last(self, more: tuple[str, bool], records: list[Any], shape: ApiShape) -> list[Any] | None:
        """Stripe-style: the key of the last record, sent back as the parameter that serves what follows."""
        source, columns = shape.source, infer_columns(records)
        key = key_candidate(columns, records)
        column = next((c for c in columns if len(key) == 1 and c.name == key[0]), None)
        source.update(pagination="after_last", has_more_path=more[0], after_field=column.path if column else "id",
                      after_param="starting_after")
        shape.notes.append(f"pagination: after the last record's {source['after_field']!r}, "
                           f"while {more[0]!r} is true")
        last = value_at(records[-1], source["after_field"]) if records else None
        if not more[1] or last is None:
            return None
        for name in AFTER_PARAMS:
            served = self._served({**self._query, name: last})
            if self._new_records(served, records):
                source["after_param"] = name
                return served
        shape.notes.append("no parameter asking for the records after the last one was found: set after_param")
        return None

    # --- requests -----------------------------------------------------------------------------

    def _get(self, params: Mapping[str, Any], url: str | None = None) -> JsonPage:
        self._requests += 1
        return self._client.get_json_document(url or self._base, params={**params, **self._secret_params},
                                              headers=self._headers)

    def _served(self, params: Mapping[str, Any]) -> list[Any] | None:
        """The records of the page ``params`` ask for; None when the API refuses them."""
        try:
            page = self._get(params)
        except (PermanentError, UnreadableBody):
            return None
        records = value_at(page.body, self._records_path if self._records_path is not None
                      else find_records(page.body) or "")
        return records if isinstance(records, list) else None

    @staticmethod
    def _new_records(served: list[Any] | None, records: list[Any]) -> bool:
        return bool(served) and bool(records) and served[0] not in records

    def _csv_shape(self) -> ApiShape:
        self._requests += 1
        response = self._client.open_stream(self._base, params={**self._query, **self._secret_params},
                                            headers=self._headers)
        with response:
            response.raw.decode_content = True
            text = io.TextIOWrapper(response.raw, encoding="utf-8", errors="replace", newline="")
            rows = list(itertools.islice(csv.DictReader(text), SAMPLE_ROWS))
        url = urlunsplit(urlsplit(self._base)._replace(query="&".join(f"{k}={v}" for k, v in self._query.items())))
        shape = ApiShape(url, rows, {"kind": "csv"}, [f"a CSV file: {len(rows)} rows read for the draft"])
        shape.requests = self._requests
        return shape


def find_records(body: Any) -> str | None:
    """The dotted path of the longest list of objects in ``body`` ("" for a top-level list)."""
    best: tuple[int, int, str] | None = None
    for path, value in _walk(body):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            rank = (len(value), -path.count("."), path)
            if best is None or rank[:2] > best[:2]:
                best = rank
    if best is None and isinstance(body, list):
        return ""
    return best[2] if best else None


def find_total(body: Any, records_path: str) -> tuple[str, int] | None:
    for path, value in _walk(body):
        if path.rsplit(".", 1)[-1] in TOTAL_NAMES and isinstance(value, int) and not isinstance(value, bool) \
                and not _inside(path, records_path):
            return path, value
    return None


def _walk(body: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    yield prefix, body
    if isinstance(body, dict) and depth < 4:
        for key, value in body.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)


def _inside(path: str, records_path: str) -> bool:
    return records_path != "" and (path == records_path or path.startswith(f"{records_path}."))


def _next_candidates(body: Any, records_path: str) -> Iterator[tuple[str, Any]]:
    for path, value in _walk(body):
        if not path or _inside(path, records_path) or value in (None, "") or isinstance(value, (dict, list, bool)):
            continue
        words = path.lower().split(".")
        if any(w in part for part in words for w in NEXT_WORDS) and not any("prev" in p for p in words):
            yield path, value


def _looks_like_url(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith(("http://", "https://", "/", "?", "./", "../"))
                                       or ("?" in value and "=" in value))


def _find_next(body: Any, records_path: str, page_url: str) -> tuple[str | None, str | None]:
    for path, value in _next_candidates(body, records_path):
        if _looks_like_url(value):
            return path, urljoin(page_url, value)
    return None, None


def _find_token(body: Any, records_path: str) -> tuple[str, Any] | None:
    for path, value in _next_candidates(body, records_path):
        if not _looks_like_url(value) and (isinstance(value, str) and " " not in value or isinstance(value, int)):
            return path, value
    return None


def _find_has_more(body: Any) -> tuple[str, bool] | None:
    for path, value in _walk(body):
        if path.rsplit(".", 1)[-1] in ("has_more", "hasMore") and isinstance(value, bool):
            return path, value
    return None


def _paging_keys(source: dict[str, Any]) -> set[str]:
    return {source.get(k) for k in ("page_size_param", "page_param", "offset_param", "token_param",
                                    "after_param")} - {None, ""}


def _records_at(body: Any, path: str, url: str) -> list[Any]:
    records = value_at(body, path)
    if not isinstance(records, list):
        raise PermanentError(f"catalog draft: no list at {path!r} in the answer of {safe_url(url)}")
    return records




def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
