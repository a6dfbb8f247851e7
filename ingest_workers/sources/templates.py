"""Placeholders in a source's request: ``{parent.PATH}`` and ``{partition.NAME}``.

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

from ..core.errors import MissingParentValue
from ..core.models import SourceSpec

ROOTS = ("parent", "partition")  # the placeholders' roots; issue 26 may add {since}, {page}, ...
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
        headers={k: render(v, scope) for k, v in spec.headers.items()})


def value_at(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (``""``: ``data`` itself); a numeric part indexes
    a list (``labels.0.name``); ``None`` where the path leads nowhere."""
    for part in filter(None, path.split(".")):
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _in_url(value: str) -> str:
    """``value`` percent-encoded as one path segment; ``.`` and ``..`` too, which a client or
    server would otherwise resolve as "this" or "the parent" segment."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if not encoded.strip(".") else encoded


def _has_placeholders(spec: SourceSpec) -> bool:
    texts = [spec.url, *spec.headers.values(), *(v for v in spec.params.values() if isinstance(v, str))]
    return any(next(placeholders(text), None) for text in texts)


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
