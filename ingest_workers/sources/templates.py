"""Placeholders in a source's request: ``{parent.PATH}`` and ``{partition.NAME}``; and the
request's own values ``{since}``, ``{until}``, ``{page}``, ``{offset}``, ``{cursor}`` (:data:`REQUEST_VALUES`).

A child source names values of its parent record (as served) in its url, its params' and its
headers' values: ``.../issues/{parent.number}/comments``. A partitioned source names its
partition's values the same way: ``.../boards/{partition.board}/cards``. The values come from
the *scope* of the request (:meth:`.base.SourceContext.scope`): ``{"parent": record,
"partition": {...}}``. In a url a value is percent-encoded (a ``/`` in it stays inside its path
segment, and ``..`` is no way up); in params and headers it goes as text (requests encodes the query).

Only the roots of :data:`ROOTS` are placeholders; any other ``{...}`` stays as written (a URL
may hold braces of its own). A root the scope lacks, or a path with no usable value (missing,
null, empty text, an object or a list), raises :class:`MissingParentValue` naming the path: no request is
ever sent to ``.../None/comments``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..core.envrefs import REFERENCE
from ..core.errors import MissingParentValue, PermanentError
from ..core.models import SourceSpec
from ..core.paths import value_at
from .auth import ApiRequest

ROOTS = ("parent", "partition")  # the placeholders' roots that read a record or a partition
# The request's own values (issue 26): a window's bounds (or the mark), and the paging position, filled
# per request by :func:`fill` / :func:`filled_body`. A text holding one without a value (no mark yet,
# the first page of cursor paging) is left out of the request: a param, a header or a body key.
REQUEST_VALUES = ("since", "until", "page", "offset", "cursor")
PLACEHOLDER = re.compile(r"\{([a-z_]+)((?:\.[^{}.\s]+)*)\}")


def placeholders(text: str) -> Iterator[tuple[str, str]]:
    """``(root, path)`` of each placeholder in ``text``: ``("parent", "user.login")``; the path
    is ``""`` for a bare ``{parent}``. Only roots of :data:`ROOTS`."""
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) in ROOTS:
            yield match.group(1), match.group(2)[1:]


def render(text: str, scope: Mapping[str, Any], in_url: bool = False) -> str:
    """``text`` with each placeholder replaced by its value in ``scope`` (percent-encoded when
    ``in_url``); raises :class:`MissingParentValue` for one without a value."""

    def value(match: re.Match[str]) -> str:
        root, path = match.group(1), match.group(2)[1:]
        if root not in ROOTS:
            return match.group(0)
        found = _text(value_at(scope.get(root), path), f"{root}.{path}" if path else root, root in scope)
        return _in_url(found) if in_url else found

    return PLACEHOLDER.sub(value, text)


def rendered_request(spec: SourceSpec, scope: Mapping[str, Any]) -> SourceSpec:
    """``spec`` with its url, params' and headers' values rendered for ``scope``; ``spec`` itself
    when none holds a placeholder (every source without a parent or partitions)."""
    if not _has_placeholders(spec):
        return spec
    return dataclasses.replace(
        spec, url=render(spec.url, scope, in_url=True),
        params={k: render(v, scope) if isinstance(v, str) else v for k, v in spec.params.items()},
        headers={k: render(v, scope) for k, v in spec.headers.items()},
        body=_mapped_texts(spec.body, lambda text: render(text, scope)))


def _in_url(value: str) -> str:
    """``value`` percent-encoded as one path segment; ``.`` and ``..`` too, which a client or
    server would otherwise resolve as "this" or "the parent" segment."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if not encoded.strip(".") else encoded


def _has_placeholders(spec: SourceSpec) -> bool:
    texts = [spec.url, *spec.headers.values(), *(v for v in spec.params.values() if isinstance(v, str)),
             *texts_in(spec.body)]
    return any(next(placeholders(text), None) for text in texts)


def texts_in(value: Any) -> Iterator[str]:
    """Every text in a JSON value (a body), at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from texts_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts_in(item)


def request_values_in(spec: SourceSpec) -> set[str]:
    """The request values (:data:`REQUEST_VALUES`) named anywhere in ``spec``'s request."""
    texts = [spec.url, *spec.headers.values(), *(v for v in spec.params.values() if isinstance(v, str)),
             *texts_in(spec.body)]
    return {m.group(1) for text in texts for m in PLACEHOLDER.finditer(text)
            if m.group(1) in REQUEST_VALUES and not m.group(2)}


def unknown_placeholders(text: str) -> list[str]:
    """The ``{...}`` of ``text`` that name neither a root of :data:`ROOTS` nor a request value (a
    request value takes no path: ``{since.x}`` is unknown too); a ``${VAR}`` reference is none."""
    return [m.group(0) for m in PLACEHOLDER.finditer(REFERENCE.sub("", text))
            if not (m.group(1) in ROOTS or (m.group(1) in REQUEST_VALUES and not m.group(2)))]


def fill(text: str, values: Mapping[str, Any], in_url: bool = False) -> Any:
    """``text`` with its request values filled in (percent-encoded when ``in_url``); None when one
    has no value in ``values``. A text that is exactly one placeholder becomes the value itself (a
    page number stays a number in a JSON body); booleans go as ``true``/``false`` inside a text."""
    whole = PLACEHOLDER.fullmatch(text)
    if whole and whole.group(1) in REQUEST_VALUES and not whole.group(2) and not in_url:
        return values.get(whole.group(1))
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        if match.group(1) not in REQUEST_VALUES or match.group(2):
            return match.group(0)
        found = values.get(match.group(1))
        if found is None:
            missing = True
            return ""
        found = ("true" if found else "false") if isinstance(found, bool) else str(found)
        return quote(found, safe="") if in_url else found

    filled = PLACEHOLDER.sub(value, text)
    return None if missing else filled


def filled_body(body: Any, values: Mapping[str, Any]) -> Any:
    """A JSON body with its request values filled in; a key whose value has none is left out."""
    if isinstance(body, str):
        return fill(body, values)
    if isinstance(body, Mapping):
        filled = {key: filled_body(item, values) for key, item in body.items()}
        return {key: item for key, item in filled.items() if item is not None or body[key] is None}
    if isinstance(body, list):
        return [filled_body(item, values) for item in body]
    return body


def filled_request(request: ApiRequest, spec: SourceSpec, values: Mapping[str, Any], placed: set[str]) -> ApiRequest:
    """``request`` with the request values filled in: ``values`` gives ``since``/``until``; the paging
    position the paginator added as a parameter (``page_param``, ``offset_param``, ``token_param``)
    is taken out of the query when ``placed`` names its placeholder, and goes there instead."""
    params, values = dict(request.params), dict(values)
    paging = {"page": spec.page_param, "offset": spec.offset_param, "cursor": spec.token_param}
    for name, param in paging.items():
        if name in placed:
            values[name] = params.pop(param, None)
    url = request.url
    if PLACEHOLDER.search(url):
        url = fill(url, values, in_url=True)
        if url is None:
            raise PermanentError(f"source {spec.name}: the url names a value this request has none for "
                                 "(no mark yet? set initial_value)")
    params = {k: fill(v, values) if isinstance(v, str) else v for k, v in params.items()}
    headers = {k: fill(v, values) for k, v in request.headers.items()}
    return dataclasses.replace(request, url=url, params={k: v for k, v in params.items() if v is not None},
                               headers={k: str(v) for k, v in headers.items() if v is not None},
                               body=filled_body(request.body, values))


def _mapped_texts(value: Any, change: Any) -> Any:
    """``value`` (a JSON body) with ``change`` applied to each of its texts."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {key: _mapped_texts(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_mapped_texts(item, change) for item in value]
    return value


def _text(value: Any, path: str, root_given: bool) -> str:
    """A scalar as it goes into a request (JSON's words for booleans)."""
    if not root_given:
        raise MissingParentValue(f"{{{path}}}: this source runs without a {path.split('.')[0]} "
                                 "(no value to fill in)", path)
    if value is None or value == "":
        raise MissingParentValue(f"{{{path}}}: the {path.split('.')[0]} has no value at {path!r}", path)
    if isinstance(value, (dict, list)):
        raise MissingParentValue(f"{{{path}}}: the {path.split('.')[0]} holds a JSON "
                                 f"{'object' if isinstance(value, dict) else 'list'} at {path!r}, not a value", path)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
